"""The README's quick start is what CI runs first: two commands, on a bare machine."""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from conftest import ROOT


def quickstart():
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / ".ci" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quick_start_is_two_commands_install_and_train_then_install_tests_and_run_them():
    commands = quickstart().commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 2, commands
    train, test = commands
    assert "python3 -m venv .venv" in train and 'pip install ".[plot]"' in train and train.endswith("lamina train")
    assert 'pip install -e ".[test]"' in test and test.endswith("python -m pytest")


def test_ci_runs_the_readme_commands_verbatim_before_anything_else():
    ci = (ROOT / ".ci" / "run").read_text()
    stage_one, _, stage_two = ci.partition("# -- stage 2")
    # the commands come from the README itself, so the two cannot drift apart
    assert "quickstart=$(python3 .ci/quickstart.py)" in stage_one
    assert 'bash -euo pipefail -c "$quickstart"' in stage_one
    assert "git clone" in stage_one  # on a clean checkout
    assert "pip install" not in stage_one  # nothing installed beside what the README says
    for version in ("3.11", "3.13"):  # the oldest and the newest supported Python
        assert version in stage_one
    assert "python -m pytest" in stage_two and "python -O -m pytest" in stage_two
    # Stage 1 on BLAS's Haswell kernels (an AMD CPU's), stage 2 on this CPU's own: a float32
    # tolerance that holds under one kernel only fails CI.
    assert re.search(r'OPENBLAS_CORETYPE=Haswell[^()]*bash -euo pipefail -c "\$quickstart"', stage_one)
    assert "OPENBLAS_CORETYPE" not in stage_two and "export OPENBLAS_CORETYPE" not in ci


def test_the_supported_pythons_agree():
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest = re.search(r'requires-python = ">=(3\.\d+)"', pyproject).group(1)
    assert f"Python {oldest} or newer" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"for version in {oldest} " in (ROOT / ".ci" / "run").read_text()


def test_the_tests_command_in_the_readme_is_what_ci_runs_with_the_extras():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in readme and "\npython -m pytest\n" in ci


# -- the suite's own settings ----------------------------------------------------------------------


def test_the_suite_turns_numpy_warnings_into_errors():
    with pytest.raises(RuntimeWarning):
        np.exp(np.array([1e4]))
