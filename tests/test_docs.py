"""Every code block in the README and the docs site runs, so a stale sample fails CI.

A page's blocks run top to bottom in a fresh temporary folder (with `examples/` linked in):
- ```python blocks share one namespace, as a reader typing them into one session would;
- ```toml blocks are `lamina train` configs (or, starting `# pyproject.toml`, a package's
  metadata, which must parse): trained as they are (epochs capped at 2, so the
  suite stays fast), or, under a `<!-- file: NAME -->` comment, written to NAME for a later
  command of the page to use (which must then name it);
- ```bash blocks are commands, each line run in a shell and expected to succeed; ```console
  blocks hold `$ command` lines, each followed by the output it must print ("..." stands for
  any text);
- a ```text block under an `<!-- output -->` comment is what the block before it prints.
Install commands (pip, venv) are what CI's first stage runs verbatim from the README, so they
are not run here. A page that needs an optional extra says so with `<!-- requires: MODULE -->`
and is skipped, with the reason, where the module is missing.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs" / "pages").rglob("*.md")])
BLOCK = re.compile(r"(?:<!--\s*(?P<directive>[^>]*?)\s*-->\s*\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```\s*$",
                   re.S | re.M)
INSTALL = re.compile(r"^\s*(python3? -m venv|\. \.venv|pip install|python3? -m pip install)")
EPOCHS_CAP = "2"


def shown(page: Path) -> str:
    """The page's path as a reader of the repository knows it."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, directive, body) of each fenced block, in order."""
    text = page.read_text(encoding="utf-8")
    return [(m["lang"], (m["directive"] or "").strip(), m["body"]) for m in BLOCK.finditer(text)]


def matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected` line for line (trailing space ignored); '...' matches any text, and a
    line of only '...' any number of lines, none included."""
    def lines(s: str) -> list[str]:
        return [line.rstrip() for line in s.strip("\n").splitlines()]
    pattern = "".join(r"(?:[^\n]*\n)*?" if line == "..." else ".*?".join(map(re.escape, line.split("..."))) + r"\n"
                      for line in lines(expected))
    return re.fullmatch(pattern, "".join(line + "\n" for line in lines(actual)), re.S) is not None


class Reader:
    """Runs one page's blocks the way a reader would, in `folder`."""

    def __init__(self, page: Path, folder: Path) -> None:
        self.page, self.folder = page, folder
        self.namespace: dict[str, object] = {"__name__": "__docs__"}
        self.written: list[str] = []  # config files a later command must use
        self.commands: list[str] = []
        self.last_output = ""
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}

    def where(self, number: int) -> str:
        return f"{shown(self.page)}, code block {number + 1}"

    def python(self, number: int, body: str) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(body, self.where(number), "exec"), self.namespace)
        self.last_output = out.getvalue()

    def shell(self, number: int, command: str) -> str:
        if command.startswith("lamina train") and "--epochs" not in command:
            command += f" --epochs {EPOCHS_CAP}"
        self.commands.append(command)
        done = subprocess.run(["bash", "-c", command], cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            pytest.fail(f"{self.where(number)}: `{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def toml(self, number: int, body: str, directive: str) -> None:
        if body.startswith("# pyproject.toml"):  # a plugin package's metadata: valid TOML, nothing to train
            tomllib.loads(body)
            return
        if directive.startswith("file:"):
            name = directive.removeprefix("file:").strip()
            (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_text(body, encoding="utf-8")
            self.written.append(name)
            return
        config = self.folder / f"block{number + 1}.toml"
        config.write_text(body, encoding="utf-8")
        self.last_output = self.shell(number, f"lamina train {shlex.quote(config.name)} --quiet")

    def bash(self, number: int, body: str) -> None:
        output = []
        for line in body.splitlines():
            command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if command and not INSTALL.match(command):
                output.append(self.shell(number, command))
        self.last_output = "".join(output)

    def console(self, number: int, body: str) -> None:
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
            elif line.strip():
                pytest.fail(f"{self.where(number)}: a console block starts with a `$ command` line, not {line!r}")
        for command, expected in steps:
            if INSTALL.match(command):
                continue
            actual = self.shell(number, command)
            if not matches("\n".join(expected), actual):
                pytest.fail(f"{self.where(number)}: `{command}` printed\n{actual}\nbut the page shows\n"
                            + "\n".join(expected))

    def output(self, number: int, body: str) -> None:
        if not matches(body, self.last_output):
            pytest.fail(f"{self.where(number)}: the block before printed\n{self.last_output}\nbut the page shows\n"
                        f"{body}")

    def run(self) -> None:
        text = self.page.read_text(encoding="utf-8")
        for module in re.findall(r"<!--\s*requires:\s*([\w. ]+?)\s*-->", text):
            for name in module.split():
                pytest.importorskip(name, reason=f"{self.page.name} needs {name}, an optional extra")
        for number, (lang, directive, body) in enumerate(blocks(self.page)):
            if lang == "python":
                self.python(number, body)
            elif lang == "toml":
                self.toml(number, body, directive)
            elif lang == "bash":
                self.bash(number, body)
            elif lang == "console":
                self.console(number, body)
            elif lang == "text" and directive == "output":
                self.output(number, body)
        for name in self.written:
            if not any(name in command for command in self.commands):
                pytest.fail(f"{shown(self.page)}: the config {name} is written but no command uses it")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_on_the_page_runs(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    import lamina
    lamina.seed(0)
    registry = lamina.get_registry()
    before = {info.package for info in registry.plugins()}
    try:
        Reader(page, tmp_path).run()
    finally:  # a page that registers a plugin of its own (a GraphBlock) leaves the registry as it found it
        for package in {info.package for info in registry.plugins()} - before:
            registry.remove_package(package)


def test_the_reader_compares_output_and_finds_every_kind_of_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nprint('a\\nb')\n```\n\n<!-- output -->\n```text\na\n...\n```\n\n"
                    "<!-- file: c.toml -->\n```toml\nepochs = 1\n```\n\n```bash\nls c.toml  # a comment\n```\n")
    assert [(lang, directive) for lang, directive, _ in blocks(page)] == [
        ("python", ""), ("text", "output"), ("toml", "file: c.toml"), ("bash", "")]
    assert matches("a\n...", "a\nb\n") and matches("x ... z", "x yy z") and not matches("a\nc", "a\nb")
    assert matches("a\n...\nc", "a\nc") and matches("a\n...\nc", "a\nb\nb\nc") and not matches("a\n...\nc", "a\nb")
    reader = Reader(page, tmp_path)
    reader.run()
    assert reader.commands == ["ls c.toml"]
    page.write_text("```python\nprint('a')\n```\n<!-- output -->\n```text\nb\n```\n")
    with pytest.raises(pytest.fail.Exception, match="printed"):
        Reader(page, tmp_path).run()


def test_the_catalogue_lists_every_registered_plugin_with_its_docstring():
    pytest.importorskip("mkdocs", reason="the docs site's build hooks need mkdocs (pip install -e '.[docs]')")
    import importlib.util

    import lamina
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    records = hooks.plugins()
    page = hooks.catalogue(records)
    registry = lamina.get_registry()
    registered = [(info.kind, info.name) for info in registry.plugins()]
    assert len(records) == len(registered) > 80
    for kind, name in registered:
        assert f"\n### {name}\n" in page, f"{kind} {name} is missing from the catalogue"
    linear = page[page.index("\n### Linear\n"):]
    assert "Linear(units" in linear.split("\n### ")[1]  # its signature, from list-plugins --json
    page_text = (ROOT / "docs" / "pages" / "plugins.md").read_text(encoding="utf-8")
    assert hooks.MARKER in page_text


def test_the_training_page_states_the_signature_of_train_and_every_callback_hook():
    import inspect

    import lamina
    page = (ROOT / "docs" / "pages" / "guide" / "training.md").read_text(encoding="utf-8")
    parameters = list(inspect.signature(lamina.Model.train).parameters.values())[1:]
    stated = "model.train(" + ", ".join(str(p) for p in parameters) + ")"
    assert stated in page, f"docs/pages/guide/training.md should state {stated}"
    hooks = [name for name in vars(lamina.Callback) if name.startswith("on_")]
    assert len(hooks) >= 5
    for name in hooks:
        assert f"`{name}(" in page, f"the Callback row does not name {name}"
