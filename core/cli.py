"""The `lamina` command line: `lamina list-plugins [--kind KIND] [--json] [--strict]`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence

import lamina
from lamina.errors import LaminaError, PluginWarning
from lamina.registry import KINDS, PluginInfo, get_registry


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ambiguous(plugins: list[PluginInfo]) -> set[tuple[str, str]]:
    """(kind, lowercase name) pairs that more than one package registered."""
    owners: dict[tuple[str, str], set[str]] = {}
    for info in plugins:
        for key in info.keys():
            owners.setdefault((info.kind, key), set()).add(info.package)
    return {key for key, packages in owners.items() if len(packages) > 1}


def list_plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    with warnings.catch_warnings():  # failures are listed below instead
        warnings.simplefilter("ignore", PluginWarning)
        registry.load()
    plugins = registry.plugins(args.kind)
    clashes = _ambiguous(registry.plugins())
    failures = registry.failures

    if args.json:
        records = [
            {
                "name": info.name,
                "kind": info.kind,
                "package": info.package,
                "version": info.version,
                "aliases": list(info.aliases),
                "qualified_name": info.qualified_name,
                "ambiguous": any((info.kind, key) in clashes for key in info.keys()),
                "doc": (info.cls.__doc__ or "").strip().split("\n")[0],
            }
            for info in plugins
        ]
        print(json.dumps(records, indent=2))
        for failure in failures:
            print(f"lamina: plugin failed to load: {failure}", file=sys.stderr)
    else:
        rows = []
        for info in plugins:
            note = ""
            if any((info.kind, key) in clashes for key in info.keys()):
                note = f"name shared with another package: use {info.qualified_name!r}"
            rows.append((info.name, info.kind, info.package, info.version, ", ".join(info.aliases), note))
        header = ("NAME", "KIND", "PACKAGE", "VERSION", "ALIASES", "NOTE")
        if not any(row[-1] for row in rows):  # the NOTE column only when a name is shared
            header, rows = header[:-1], [row[:-1] for row in rows]
        print(_table(header, rows))
        if failures:
            print(f"\nFailed to load ({len(failures)}):")
            for failure in failures:
                print(f"  {failure}")
    return 1 if args.strict and failures else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lamina", description="lamina: a deep-learning library on numpy, built from plugins."
    )
    parser.add_argument("--version", action="version", version=f"lamina {lamina.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plugins = commands.add_parser(
        "list-plugins",
        help="list every installed plugin with its package and version",
        description="List every installed plugin: name, kind, providing package and version, "
        "and each plugin that failed to load, with its error.",
    )
    plugins.add_argument(
        "--kind",
        type=str.lower,
        choices=[k for kind in KINDS.values() for k in (kind.name, kind.plural)],
        metavar="KIND",
        help=f"only this kind: {', '.join(KINDS)}",
    )
    plugins.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    plugins.add_argument(
        "--strict", action="store_true", help="exit with status 1 when any plugin failed to load"
    )
    plugins.set_defaults(run=list_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except LaminaError as err:
        print(f"lamina: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `lamina list-plugins | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
