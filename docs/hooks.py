"""MkDocs build hooks: the plugin catalogue, written from `lamina list-plugins --json` at build time,
and the table of supported numpy, written from `lamina.autodiff.SUPPORTED`.

The page docs/pages/plugins.md holds the marker line below; each build replaces it with one
section per kind, one entry per registered plugin (name, aliases, signature, docstring), so the
catalogue lists exactly what an installed lamina registers and cannot go stale. Likewise
docs/pages/writing-plugins.md holds `<!-- supported -->`, replaced by the table of primitives'
rows with their training and export columns.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

MARKER = "<!-- catalogue -->"
SUPPORTED_MARKER = "<!-- supported -->"
# The order a reader meets the kinds in; a kind missing here comes after them, alphabetically.
KINDS = ["layer", "loss", "optimizer", "metric", "callback", "initializer", "schedule", "dataset", "strategy"]


def plugins() -> list[dict[str, Any]]:
    """Every plugin that `lamina list-plugins --json` lists, as the records it prints."""
    done = subprocess.run([sys.executable, "-m", "lamina", "list-plugins", "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"lamina list-plugins --json failed (exit {done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def catalogue(records: list[dict[str, Any]]) -> str:
    """Markdown: a section per kind, then an entry per plugin, built-ins and third-party alike."""
    kinds = sorted({r["kind"] for r in records}, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    out: list[str] = []
    for kind in kinds:
        members = sorted((r for r in records if r["kind"] == kind), key=lambda r: r["name"].lower())
        out.append(f"## {kind.capitalize()}s ({len(members)})\n")
        for r in members:
            out.append(f"### {r['name']}\n")
            signature = r.get("signature") or r["name"]
            out.append(f"```text\n{signature}\n```\n")
            facts = [f"package `{r['package']}` {r['version']}"]
            if r["aliases"]:
                facts.append("aliases " + ", ".join(f"`{a}`" for a in r["aliases"]))
            out.append("*" + "; ".join(facts) + "*\n")
            doc = (r.get("docstring") or r.get("doc") or "").strip()
            out.append((doc or "(no docstring)") + "\n")
    return "\n".join(out)


def supported() -> str:
    """Markdown: one row per operation lamina follows, with whether it trains and exports."""
    done = subprocess.run([sys.executable, "-c", "import json, lamina.autodiff as a; print(json.dumps(a.SUPPORTED))"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reading lamina.autodiff.SUPPORTED failed (exit {done.returncode}): {done.stderr.strip()}")
    rows = [f"| `{name}` | {training} | {export} |" for name, (training, export) in json.loads(done.stdout).items()]
    return "\n".join(["| operation | training (autodiff) | ONNX export |", "|---|---|---|", *rows]) + "\n"


@event_priority(100)  # before mkdocstrings sets up its search path
def on_config(config: Any) -> Any:
    # Run as the `mkdocs` script, its folder (a virtual environment's bin/) comes first on
    # sys.path, and it holds the `lamina` console script, which the API reference's static
    # analysis would take for the package: leave that folder out of the search.
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "lamina").is_file()]
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, catalogue(plugins()))
    if SUPPORTED_MARKER in markdown:
        markdown = markdown.replace(SUPPORTED_MARKER, supported())
    return markdown
