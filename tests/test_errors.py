"""Errors: the library has no assert (gone under python -O), and every error type is exported and
documented."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

import lamina


def test_the_library_never_uses_assert():
    asserts = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for folder in ("core", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []


def test_argument_checks_work_under_python_dash_o():
    result = subprocess.run(
        [sys.executable, "-O", "-c",
         "import lamina\ntry:\n    lamina.layer('Linear', units=0)\nexcept lamina.ArgumentError as e:\n"
         "    print('caught', e)"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stdout.startswith("caught Linear(units=0)")


def test_every_error_type_is_exported_and_documented():
    import lamina.errors as errors

    types = {name for name, value in vars(errors).items()
             if isinstance(value, type) and issubclass(value, (Exception, Warning))}
    documented = (ROOT / "docs" / "pages" / "errors.md").read_text()
    for name in types:
        assert getattr(lamina, name) is getattr(errors, name)
        assert f"`{name}`" in documented, f"{name} is not in docs/pages/errors.md"
