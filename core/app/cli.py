"""The `lamina` command line: train, evaluate, predict, info and list-plugins.

Errors go to stderr as one line (a traceback only with --debug); the exit status is 0 on
success, 1 on an error and 2 on a usage error.
"""
from __future__ import annotations

import argparse
import faulthandler
import inspect
import io
import json
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import lamina
from lamina.app import config as runconfig
from lamina.app import data, labels, run, system
from lamina.app.console import escape, silenced
from lamina.errors import ArgumentError, LaminaError, PluginWarning
from lamina.files import arrays
from lamina.files import load as loading
from lamina.files.atomic import atomic_write
from lamina.registry import KINDS, PluginInfo, Registry, get_registry, normalize_package


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
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


# -- list-plugins ----------------------------------------------------------------------------------


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
                "signature": _signature(info.name, info.cls),
                "docstring": inspect.cleandoc(info.cls.__doc__) if isinstance(info.cls.__doc__, str) else "",
            }
            for info in plugins
        ]
        print(json.dumps(records, indent=2))
        for failure in failures:
            print(f"lamina: plugin failed to load: {failure}", file=sys.stderr)
        for skip in registry.skipped:
            print(f"lamina: plugin skipped: {skip}", file=sys.stderr)
    else:
        rows: list[tuple[str, ...]] = []
        for info in plugins:
            note = ""
            if any((info.kind, key) in clashes for key in info.keys()):
                note = f"name shared with another package: use {info.qualified_name!r}"
            rows.append((info.name, info.kind, info.package, info.version, ", ".join(info.aliases), note))
        header: tuple[str, ...] = ("NAME", "KIND", "PACKAGE", "VERSION", "ALIASES", "NOTE")
        if not any(row[-1] for row in rows):  # the NOTE column only when a name is shared
            header, rows = header[:-1], [row[:-1] for row in rows]
        print(_table(header, rows))
        if failures:
            print(f"\nFailed to load ({len(failures)}):")
            for failure in failures:
                print(f"  {failure}")
        if registry.skipped:
            print(f"\nSkipped ({len(registry.skipped)}):")
            for skip in registry.skipped:
                print(f"  {skip}")
        if args.verbose:
            print(_verbose(registry, plugins))
    return 1 if args.strict and failures else 0


def _signature(name: str, obj: object) -> str:
    """`Linear(units, weight_init='he_uniform')`: how to call `obj` (a class: its constructor),
    without annotations; `Name(...)` when Python cannot tell (a C type or builtin)."""
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{name}(...)"
    plain = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    return f"{name}{plain}"


def _verbose(registry, plugins: list[PluginInfo]) -> str:
    """Each plugin module: its package, file and hooks, and its classes' first doc lines."""
    lines = ["", "Plugins in detail:"]
    for source in registry.sources:
        mine = [i for i in plugins if i.package == source.package and i.plugin == source.plugin]
        if not mine:
            continue
        lines.append(f"  {source.package} {source.version}, plugin {source.plugin!r}: {source.module}")
        lines.append(f"    hooks: {', '.join(source.hooks) or 'none'}")
        for info in mine:
            doc = (info.cls.__doc__ or "").strip().split("\n")[0] or "(no docstring)"
            lines.append(f"    {info.kind} {info.name}: {doc}")
    return "\n".join(lines)


# -- check-plugins ---------------------------------------------------------------------------------


def check_plugins(args: argparse.Namespace) -> int:
    from lamina.testing.conformance import PROPERTIES, Result, check_plugin

    registry = get_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        registry.load()
    chosen, uncovered = _chosen(registry, args.names, args.package)
    if uncovered and not chosen:
        raise ArgumentError(" ".join(uncovered))
    for line in uncovered:
        print(f"lamina: {line}", file=sys.stderr)

    report = []
    failures: list[tuple[PluginInfo, Result]] = []
    for info in chosen:
        results = check_plugin(info.cls)
        status: dict[str, bool | None] = {}
        for prop in PROPERTIES[info.kind]:
            mine = [r for r in results if r.property == prop]
            if any(r.ok is False for r in mine):
                status[prop] = False
            elif any(r.ok for r in mine):
                status[prop] = True
            else:
                status[prop] = None
        failures.extend((info, r) for r in results if r.ok is False)
        report.append((info, status, results))

    if args.json:
        print(json.dumps([
            {"name": info.name, "kind": info.kind, "package": info.package, "version": info.version,
             "passed": all(v is not False for v in status.values()),
             "properties": status,
             "failures": [r.detail for r in results if r.ok is False]}
            for info, status, results in report
        ], indent=2))
    else:
        marks = {True: "ok", False: "FAIL", None: "-"}
        for kind, props in PROPERTIES.items():
            rows = [(info.qualified_name, *(marks[status[p]] for p in props))
                    for info, status, _ in report if info.kind == kind]
            if rows:
                print(f"{KINDS[kind].plural}:")
                print(_table(("PLUGIN", *props), rows))
                print()
        if failures:
            print(f"Failed ({len(failures)}):")
            for info, result in failures:
                print(f"  {info.qualified_name} {result.property}: {result.detail}")
        else:
            print(f"All {len(report)} plugins pass every property that applies (- : does not apply).")
    return 1 if failures else 0


def _chosen(registry: Registry, names: list[str], package: str | None) -> tuple[list[PluginInfo], list[str]]:
    """The plugins to check (by name, by distribution or all), and a note for each one asked
    for whose kind the kit does not cover."""
    from lamina.testing.conformance import PROPERTIES, not_covered

    if package is not None:
        mine = [i for i in registry.plugins() if normalize_package(i.package) == normalize_package(package)]
        if not mine:
            packages = sorted({i.package for i in registry.plugins()})
            raise ArgumentError(
                f"check-plugins --package {package}: no installed distribution of that name registers "
                f"plugins; these do: {', '.join(packages)}"
            )
    elif names:
        mine = []
        for name in names:
            found = [registry.get(kind, name) for kind in KINDS if _has(registry, kind, name)]
            if not found:
                registry.get("layer", name)  # raises the usual "unknown ... Did you mean" error
            mine.extend(found)
    else:
        mine = [info for kind in PROPERTIES for info in registry.plugins(kind)]
    checked = [info for info in mine if info.kind in PROPERTIES]
    notes = [not_covered(info.cls, "check-plugins") for info in mine if info.kind not in PROPERTIES]
    return checked, notes


def _has(registry: Registry, kind: str, name: str) -> bool:
    try:
        registry.get(kind, name)
    except LookupError:
        return False
    return True


# -- train -----------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> int:
    config = runconfig.read(args.config)
    say = (lambda text: None) if args.quiet else print
    if args.config is None:
        say("training lamina's default: an MLP on the 8x8 digits (lamina train CONFIG.toml for your own)")
    command = ["lamina", "train", *([args.config] if args.config else []), *(["--out", args.out] if args.out else [])]
    args.resume_hint = shlex.join([*command, "--resume"])
    run.train(config, output=args.out, epochs=args.epochs, verbose=not args.quiet, say=say, resume=args.resume)
    return 0


# -- evaluate, predict, info -------------------------------------------------------------------------


def evaluate(args: argparse.Namespace) -> int:
    model = lamina.load(args.model)
    options = data.data_options(args.data_option)
    x, y, rows = data.scored_data(args.data, args.target, options, args.all_rows, model.metadata)
    metrics = args.metrics if args.metrics is not None else model.metrics
    result = model.evaluate(x, y, loss=args.loss, metrics=metrics, batch_size=args.batch_size, report=args.report)
    if args.json:
        print(json.dumps(run.as_json({**result, "rows": rows}), indent=2))
    else:
        if not args.quiet:
            print(escape(data.rows_line(rows), lines=True))
        report = result.pop("report", None)
        for key, value in result.items():
            if np.ndim(value):  # a confusion matrix: rows the true class
                print(f"{escape(key)}:\n{np.array2string(np.asarray(value), precision=6)}")
            else:
                print(f"{escape(key)}: {value:.6g}")
        if report is not None:
            print(report_table(report))
    return 0


def report_table(report: dict[str, Any]) -> str:
    """The evaluation report as a text table: a line per class with its scores, a line per summary
    (a number, or a table of averages), then each matrix; printed from the report's own keys."""
    rows = report.get("classes", [])
    columns = [key for key in (rows[0] if rows else {}) if key != "class"]
    summaries = {key: value for key, value in report.items() if key != "classes" and np.ndim(value) < 2}
    width = max([len("class"), *(len(escape(str(row["class"]))) for row in rows), *(len(k) + 4 for k in summaries)])
    lines = [f"{'class':<{width}}" + "".join(f"  {escape(key):>10}" for key in columns)]
    for row in rows:
        lines.append(f"{escape(str(row['class'])):<{width}}" + "".join(f"  {row[key]:10.4g}" for key in columns))
    for key, value in summaries.items():
        if isinstance(value, dict):  # averages: under their columns
            cells = "".join(f"  {value[c]:10.4f}" if c in value else f"  {'':10}" for c in columns)
            lines.append(f"{escape(key) + ' avg':<{width}}{cells}")
        else:
            lines.append(f"{escape(key):<{width}}  {float(value):10.4f}")
    for key, value in report.items():
        if np.ndim(value) == 2:
            lines.append(f"{escape(key)} (rows: true class, columns: predicted):")
            lines.append(np.array2string(np.asarray(value), precision=6))
    return "\n".join(lines)


def predict(args: argparse.Namespace) -> int:
    model = lamina.load(args.model)
    folder = Path(args.input)
    classes = labels.class_names(model, args.model)
    if folder.is_dir():
        inputs, names = data.folder_inputs(model, folder, args.model)
        with arrays.reading(args.input, "remove or replace the file that cannot be read"):
            predictions = model.predict(inputs, batch_size=data.folder_batch(inputs, args.batch_size))
        if not args.quiet:
            labels.print_classes(model, classes, names, predictions)
        if args.out is None:
            return 0
    else:
        if args.out is None and (classes is None or not data.has_reader(folder)):
            raise ArgumentError(f"lamina predict {args.input}: name where to write the predictions with --out FILE "
                                "(.csv, .npy or .npz)")
        predictions = model.predict(data.input_rows(args.input), batch_size=args.batch_size)
        if args.out is None:  # a classifier that knows its class names: one line per row
            if not args.quiet:
                labels.print_classes(model, classes, [f"row {i + 1}" for i in range(len(predictions))], predictions)
            return 0
    out = Path(args.out)
    suffix = out.suffix.lower()
    buffer = io.BytesIO()
    if suffix == ".csv" and classes is not None and predictions.reshape(len(predictions), -1).shape[1] == len(classes):
        buffer.write(labels.csv_with_classes(model, predictions, classes))
    elif suffix == ".csv":
        np.savetxt(buffer, predictions.reshape(len(predictions), -1), delimiter=",", fmt="%.8g")
    elif suffix == ".npz":
        np.savez(buffer, predictions=predictions)
    elif suffix == ".npy":
        np.save(buffer, predictions, allow_pickle=False)
    else:
        raise ArgumentError(f"--out {args.out!r}: name a .csv, .npy or .npz file")
    atomic_write(out, buffer.getvalue())
    if not args.quiet:
        named = " (with a class column)" if suffix == ".csv" and classes is not None else ""
        print(f"wrote {len(predictions)} predictions of shape {predictions.shape[1:]} to {escape(str(out))}{named}")
    return 0


def generate(args: argparse.Namespace) -> int:
    model = lamina.load(args.model)
    text = lamina.generate(model, args.prompt, length=args.length, temperature=args.temperature, seed=args.seed)
    print(escape(text, lines=True))  # the vocabulary comes from the file: ESC, BEL, ... shown escaped
    return 0


WEIGHT_SUFFIXES = (".safetensors", ".npz")


def export(args: argparse.Namespace) -> int:
    suffix = Path(args.out).suffix.lower()
    if suffix not in (".onnx", *WEIGHT_SUFFIXES):
        raise ArgumentError(f"lamina export {args.out}: name an .onnx file (the model as a graph) or a .safetensors "
                            "or .npz file (its weights)")
    if suffix == ".onnx" and args.layout is not None:
        raise ArgumentError("--layout applies to weights files (.safetensors, .npz), not to ONNX")
    model = lamina.load(args.model)
    if suffix in WEIGHT_SUFFIXES:
        layout = args.layout or "lamina"
        path = model.save_weights(args.out, layout=layout)
        count = len(model.state_dict(layout=layout))
        print(f"wrote {escape(str(path))}: {count} arrays in the {layout} layout")
        return 0
    path = model.export_onnx(args.out, opset=args.opset)
    shape = ("batch", *(model.input_shape or ()))
    print(f"wrote {escape(str(path))}: ONNX opset {args.opset}, input 'input' of shape {shape}, output 'output'")
    return 0


def info(args: argparse.Namespace) -> int:
    if args.model is None or args.system:
        if args.model is not None:  # both: the model first, then the machine
            status = _model_info(args)
            print()
        else:
            status = 0
        found = system.report()
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            print(escape("\n".join(system.describe(found)), lines=True))
        return status
    return _model_info(args)


def _model_info(args: argparse.Namespace) -> int:
    config = loading.read_config(args.model)
    lines = [f"{args.model}:", *run.describe_model_file(config)]
    try:
        model = lamina.load(args.model)
    except lamina.MissingPluginError as err:
        print(escape("\n".join(lines), lines=True))
        print(escape(f"cannot show the layers: {err}", lines=True))
        return 1
    extras = []
    if model.loss is not None:
        extras.append(f"trained with loss {model.loss!r}")
    if model.optimizer is not None:
        extras.append(f"optimizer state: {model.optimizer!r} after {model.optimizer.iterations} steps")
    if args.json:
        print(json.dumps({"config": config, "summary": model.summary()}, indent=2))
        return 0
    print(escape("\n".join([*lines, *extras, "", model.summary()]), lines=True))
    return 0


# -- the parser ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    common.add_argument("--quiet", "-q", action="store_true", help="print only errors and results")

    parser = argparse.ArgumentParser(
        prog="lamina",
        description="lamina: a deep-learning library on numpy, built from plugins.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"lamina {lamina.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands, common)
    _add_evaluate(commands, common)
    _add_predict(commands, common)
    _add_generate(commands, common)
    _add_export(commands, common)
    _add_info(commands, common)
    _add_check_plugins(commands, common)
    _add_list_plugins(commands, common)
    return parser


def _add_train(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "train",
        parents=[common],
        help="train a model described by a TOML config (default: an MLP on digits)",
        description="Train the model a TOML config describes; write model.npz, metrics.json and "
        "curves.png into its output folder, which the run prints when it starts. With no CONFIG, train "
        "lamina's default (an MLP on the 8x8 digits). Relative paths (the config's output and "
        "[dataset] path, --out) start in the current folder, not in the config's folder. Any integer "
        'option of a layer may be "classes": the dataset\'s number of classes (or a text vocabulary\'s size).',
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="the run's config (see examples/configs/)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: the config's output, or runs/<config name>; "
                        "relative to the current folder)")
    p.add_argument("--epochs", type=_epochs, metavar="N",
                   help="override the config's number of epochs (a whole number >= 1)")
    p.add_argument("--resume", action="store_true", help="continue from the output folder's checkpoint.npz")
    p.set_defaults(run=train)


def _epochs(text: str) -> int:
    """--epochs N: a whole number >= 1; 0 would train nothing, so it is refused, not ignored."""
    try:
        epochs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs >= 1, got {text!r}") from None
    if epochs < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of epochs >= 1, got {epochs} (to score a trained model without training, "
            "use lamina evaluate)"
        )
    return epochs


def _add_evaluate(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "evaluate", parents=[common], help="score a saved model on a dataset or a data file",
        description="Print the loss and metrics of a saved model on the test part of a registered "
        "dataset or of a data file (.npz, .csv, .npy): the rows `lamina train` holds out with the same "
        "options (test_split, seed; give them with --data-option as in the config's [dataset] table), "
        "or with --all-rows every row of the file. The first line says which rows were scored.",
    )
    p.add_argument("model", metavar="MODEL", help="a file written by model.save or lamina train")
    p.add_argument("--data", required=True, metavar="NAME|PATH",
                   help="a dataset name (e.g. digits) or an .npz/.csv file")
    p.add_argument("--target", metavar="COLUMN", help="the target column or array of a data file")
    p.add_argument(
        "--data-option", action="append", metavar="KEY=VALUE",
        help="an option of the dataset, as in a config's [dataset] table (repeatable; VALUE is TOML, e.g. "
             "test_split=0.25)",
    )
    p.add_argument("--all-rows", action="store_true",
                   help="score every row, the training rows included (default: the test split)")
    p.add_argument("--loss", help="the loss (default: the one the model was trained with)")
    p.add_argument("--metrics", nargs="*", metavar="METRIC", help="metrics (default: those of training)")
    p.add_argument("--batch-size", type=int, metavar="N", help="rows per forward pass")
    p.add_argument("--report", action="store_true",
                   help="also per-class precision, recall, F1 and support, and the confusion matrix (classifiers)")
    p.add_argument("--json", action="store_true",
                   help='print a JSON object: the scores and "rows" (which rows were scored), and "report"')
    p.set_defaults(run=evaluate)


def _add_generate(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "generate", parents=[common], help="sample text from a saved character language model",
        description="Print PROMPT followed by LENGTH characters sampled from a character model "
        "trained on a text dataset (its vocabulary is in the model file).",
    )
    p.add_argument("model", metavar="MODEL", help="a file written by lamina train on a text dataset")
    p.add_argument("--prompt", default="", metavar="TEXT", help="the text to continue (default: one random character)")
    p.add_argument("--length", type=int, default=300, metavar="N", help="characters to sample (default 300)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="below 1: safer, above 1: wilder, 0: always the likeliest (default 0.8)")
    p.add_argument("--seed", type=int, metavar="S", help="repeatable samples")
    p.set_defaults(run=generate)


def _add_export(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "export", parents=[common], help="write a saved model as an ONNX file, or its weights",
        description="Write MODEL (a file from model.save or lamina train) as an ONNX file that computes "
        "its predictions, for onnxruntime and other runtimes (needs: pip install onnx); or, to a .safetensors "
        "or .npz file, its weights by name (--layout torch: the names and layouts torch.nn uses).",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("out", metavar="OUT", help="the file to write: .onnx, .safetensors or .npz")
    p.add_argument("--opset", type=int, default=17, metavar="N", help="the ONNX opset, 17 to 21 (default 17)")
    p.add_argument("--layout", choices=("lamina", "torch"), default=None,
                   help="weights files: the names and layouts of lamina (default) or of torch.nn")
    p.set_defaults(run=export)


def _add_predict(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "predict", parents=[common], help="write a saved model's predictions for an input file or folder",
        description="Run a saved model on the rows of INPUT (.npz with an array 'x' or a single "
        "array, .npy, or .csv of the input columns) and write the outputs to FILE (.csv, .npy or .npz); or on "
        "every image in the folder INPUT, printing each file's class (and, with --out, writing the outputs). "
        "A model trained on named classes (a folder of images, a CSV target of names) prints each row's "
        "class without --out, and its .csv output starts with a column of class names.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--out", metavar="FILE",
                   help="where to write the predictions (needed for file inputs unless the model knows class names)")
    p.add_argument("--batch-size", type=int, metavar="N", help="rows per forward pass")
    p.set_defaults(run=predict)


def _add_info(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "info", parents=[common], help="show a saved model's layers, or this machine's numpy and BLAS",
        description="With MODEL: show a saved model's summary, the lamina version that wrote it, and the "
        "plugin packages it needs (and whether they are installed). Without MODEL (or with --system): "
        "show lamina's and numpy's versions, numpy's BLAS (library, version, core type, threads) and "
        "whether the CPU could run a faster OpenBLAS kernel (the OPENBLAS_CORETYPE to try).",
    )
    p.add_argument("model", metavar="MODEL", nargs="?")
    p.add_argument("--system", action="store_true", help="show this machine's numpy and BLAS (after MODEL's summary)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(run=info)


def _add_check_plugins(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "check-plugins",
        parents=[common],
        help="run the conformance kit over installed layers, losses and optimizers",
        description="Check installed layer, loss and optimizer plugins (all, or those named) "
        "against lamina's contracts: finite-difference gradients, dtype and shape, gradients "
        "added into .grad, no mutation of inputs, save/load round trip, determinism under "
        "lamina.seed, clear shape errors. Exit status 1 when any property fails.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="plugin names (default: every layer, loss and optimizer)")
    p.add_argument("--package", metavar="DIST", help="check every plugin this installed distribution registers")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of tables")
    p.set_defaults(run=check_plugins)


def _add_list_plugins(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "list-plugins",
        parents=[common],
        help="list every installed plugin with its package and version",
        description="List every installed plugin: name, kind, providing package and version, "
        "and each plugin that failed to load, with its error.",
    )
    p.add_argument(
        "--kind",
        type=str.lower,
        choices=[k for kind in KINDS.values() for k in (kind.name, kind.plural)],
        metavar="KIND",
        help=f"only this kind: {', '.join(KINDS)}",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any plugin failed to load")
    p.add_argument("--verbose", "-v", action="store_true", help="also show each plugin's module, hooks and classes")
    p.set_defaults(run=list_plugins)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as SIGINT is: the run stops where it is, its last checkpoint intact."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    streams = _tolerant_streams()
    reporting = _report_crashes()
    try:
        with silenced(args.quiet):
            return args.run(args)
    except (LaminaError, OSError) as err:
        if args.debug:
            raise
        if isinstance(err, BrokenPipeError):  # `lamina list-plugins | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"lamina: error: {escape(str(err), lines=True)}", file=sys.stderr)  # messages quote files
        return 1
    except MemoryError:
        if args.debug:
            raise
        print(f"lamina: error: lamina {args.command} ran out of memory (MemoryError); use smaller inputs "
              "(or --batch-size where the command has it), or a machine with more memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        what = "terminated" if isinstance(err, Terminated) else "interrupted"
        hint = getattr(args, "resume_hint", None)
        print(f"lamina: {what}" + (f"; continue from the last checkpoint with: {hint}" if hint else ""),
              file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        streams()
        if reporting:
            faulthandler.disable()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _report_crashes() -> bool:
    """A crash Python cannot turn into an exception (SIGBUS from a memory-mapped file that
    another program truncated during a read, SIGSEGV in a native extension) prints the Python
    stack to stderr before the process dies, not nothing; the output folder's flock is let go
    by the system then. True when it turned the report on (main turns it off again)."""
    if faulthandler.is_enabled():
        return False
    try:
        faulthandler.enable()
    except (ValueError, OSError, io.UnsupportedOperation, AttributeError):  # stderr without a descriptor
        return False
    return True


def _tolerant_streams() -> Any:
    """Have stdout and stderr show what their encoding cannot encode as backslash escapes
    (e.g. a class name in a non-UTF-8 terminal) instead of raising UnicodeEncodeError; returns
    a function that puts them back."""
    undo = []
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        if errors in (None, "backslashreplace") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError, io.UnsupportedOperation):
            continue
        undo.append((stream, errors))

    def restore() -> None:
        for stream, errors in undo:
            try:
                stream.reconfigure(errors=errors)
            except (ValueError, OSError, io.UnsupportedOperation):
                pass
    return restore
