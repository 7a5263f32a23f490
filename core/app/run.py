"""The main job behind `lamina train`: a config in, a trained model and its reports out."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from lamina.app import config as runconfig
from lamina.app import initial
from lamina.app.outputs import output_folder, remove_stale_temporaries
from lamina.app.plotting import INSTALL_HINT, have_matplotlib, plot_curves
from lamina.checks import printable
from lamina.errors import ConfigError, LaminaError
from lamina.files.atomic import atomic_write
from lamina.files.records import older, valid_package_name, why_missing
from lamina.model import Model
from lamina.protocols.strategy import Strategy
from lamina.registry import TENSORBOARD_CALLBACK, get_registry, normalize_package
from lamina.seeding import seed
from lamina.training.checkpoint import Checkpoint
from lamina.training.history import History
from lamina.training.loop import validation_split_point
from lamina.training.structure import rows_of
from lamina.version import __version__


@frozen
class RunResult:
    model: Model
    history: History
    test: dict[str, float]
    output: Path
    files: dict[str, Path]


def train(
    config: runconfig.RunConfig,
    output: str | Path | None = None,
    epochs: int | None = None,
    verbose: bool = True,
    say: Callable[[str], None] = print,
    resume: bool = False,
) -> RunResult:
    """Train what `config` describes; write model.npz, metrics.json and curves.png into the
    output folder, and checkpoint.npz after every epoch. With `resume`, continue from that
    checkpoint exactly as if the run had never stopped. With several processes (strategy
    "mpi"), only the main one prints and writes files."""
    spec = config.get("strategy")
    strategy = Strategy() if spec is None else runconfig.build(config, "strategy", spec, "strategy")
    if not strategy.is_main:
        say, verbose = (lambda text: None), False
    folder = Path(output or config.get("output"))  # relative paths start in the current folder
    if not strategy.is_main:
        return _train(config, folder, strategy, epochs, verbose, say, resume)
    with output_folder(folder, config.source):  # checked writable, and held by this run alone
        say(f"output folder: {folder.resolve()}")
        return _train(config, folder, strategy, epochs, verbose, say, resume)


def _train(
    config: runconfig.RunConfig, folder: Path, strategy: Strategy, epochs: int | None, verbose: bool,
    say: Callable[[str], None], resume: bool,
) -> RunResult:
    seed(config.get("seed", 0))
    data, train_weights, test_weights = runconfig.load_weighted(config)  # csv's weight column, say
    config = runconfig.count_classes(config, data)  # units = "classes": the dataset's class count
    x_train, y_train, x_test, y_test = data
    model = runconfig.build_model(config, x_train)  # a chain of layers, or a graph of nodes
    y_train, y_test = model_targets(model, y_train), model_targets(model, y_test)
    model.metadata.update(data.metadata)  # e.g. a text dataset's vocabulary, saved with the model
    if runconfig.split_options(config):  # which rows were held out: lamina evaluate scores the same
        model.metadata["dataset"] = runconfig.split_options(config)
    loss = runconfig.build_loss(config)  # one, or a dict by output name
    optim = runconfig.build_optimizer(config)
    metrics = runconfig.build_metrics(config)
    callbacks = runconfig.build_list(config, "callback", "callbacks")
    if config.get("tensorboard", False):  # after the config's callbacks: it shows what they log
        tensorboard = {"type": TENSORBOARD_CALLBACK, "log_dir": str(folder / "tensorboard")}
        callbacks.append(runconfig.build(config, "callback", tensorboard, "tensorboard"))
    checkpoint = folder / "checkpoint.npz"
    callbacks.append(Checkpoint(checkpoint))
    if resume and not checkpoint.is_file():
        raise ConfigError(f"{config.source}: --resume: no checkpoint at {checkpoint}; train without --resume first")
    if resume and strategy.is_main:  # what an interrupted save of this run's own files left behind
        remove_stale_temporaries(_files_written(folder, callbacks))
    if not resume:  # a resumed run takes its weights and flags from its checkpoint
        for line in initial.start_from_weights(config, model, first_rows(x_train)):
            say(line)
    options = runconfig.training_options(config) | ({"epochs": epochs} if epochs else {})
    if train_weights is not None:  # class_weight comes with the options; class names map through model.metadata
        options["sample_weight"] = train_weights
    try:
        history = model.train(
            x_train, y_train, optim=None if resume else optim, loss=loss, metrics=metrics, callbacks=callbacks,
            verbose=verbose, resume_from=checkpoint if resume else None, strategy=strategy, **options,
        )
    except LaminaError as err:
        raise type(err)(f"{config.source}: training failed: {err}") from None
    tested = rows_of(x_test) > 0
    test = model.evaluate(x_test, y_test, metrics=metrics, sample_weight=test_weights) if tested else {}
    # a classifier's report over the test rows (all processes take part in the collective)
    report = classifier_report(model, loss, x_test, y_test, test_weights) if tested else None
    if not strategy.is_main:  # the main process writes the files
        return RunResult(model, history, test, folder, {})
    rows = rows_of(x_train)
    trained = validation_split_point(rows, config.get("validation_split", 0.0))
    files = _write_reports(config, model, history, test, folder)
    if report is not None:
        files["report"] = atomic_write(folder / "report.json", json.dumps(as_json(report), indent=2) + "\n")
    held_out = f" ({rows - trained} held out for validation)" if trained < rows else ""
    say(f"trained {len(history)} epochs on {trained} samples{held_out}")
    _say_results(say, history, test, files, checkpoint if resume else None)
    return RunResult(model, history, test, folder, files)


def model_targets(model: Model, y: Any) -> Any:
    """`y`, or of a dataset's dict of targets those the model has outputs for (a dataset may
    give more targets than a config's model uses)."""
    if isinstance(y, dict) and model.output_format == "dict":
        return {name: value for name, value in y.items() if name in model.output_names}
    return y


def first_rows(x: Any) -> Any:
    """The first row of `x`: of one array, or of each array of a dict by input name."""
    return {name: array[:1] for name, array in x.items()} if isinstance(x, dict) else x[:1]


def _say_results(say: Callable[[str], None], history: History, test: dict[str, Any], files: dict[str, Path],
                 resumed_from: Path | None) -> None:
    """The run's last lines: the final values of the history, the test scores, the files."""
    for key, value in history.history.items():
        # a key a callback logs in some epochs only is NaN in the others: show its last value
        last = next((i for i in range(len(value) - 1, -1, -1) if not math.isnan(value[i])), None)
        if last is not None:
            note = "" if last == len(value) - 1 else f" (epoch {last + 1}, the last it was logged in)"
            say(f"  final {key}: {value[last]:.4f}{note}")
    for key, score in test.items():
        if not np.ndim(score):  # a confusion matrix is in metrics.json
            say(f"  test {key}: {score:.4f}")
    say(f"model: {files['model']}" + (f" (resumed from {resumed_from})" if resumed_from else ""))
    say(f"metrics: {files['metrics']}")
    if "curves" in files:
        say(f"curves: {files['curves']}")
    else:
        say(f"curves: skipped, matplotlib is not installed; for curves.png: {INSTALL_HINT}")


CLASSIFICATION_LOSSES = ("crossentropy", "binarycrossentropy")


def classifier_report(model: Model, loss: Any, x: Any, y: Any, sample_weight: Any = None) -> dict[str, Any] | None:
    """evaluate's report on (x, y) for a classifier: a model trained with a classification loss
    (CrossEntropy; BinaryCrossEntropy with one output; a plugin loss whose class says
    `classifies = True`); None for any other model."""
    if isinstance(loss, dict) or model.output_format != "array":
        return None  # a report is about one output's classes
    kind = type(loss).__name__.lower()
    if not (kind in CLASSIFICATION_LOSSES or getattr(loss, "classifies", False)):
        return None
    if kind == "binarycrossentropy" and np.ndim(y) > 1 and np.shape(y)[1] != 1:
        return None  # several independent yes/no outputs (multi-label): no single class per row
    return model.evaluate(x, y, loss=loss, report=True, sample_weight=sample_weight)["report"]


def as_json(value: Any) -> Any:
    """Results as strict JSON data: arrays as nested lists, non-finite numbers as null."""
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [as_json(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _files_written(folder: Path, callbacks: list[Any]) -> list[Path]:
    """The files a run writes into its output folder: its reports, and the files of callbacks
    (a CSVLogger's, say) that write there. Files elsewhere are not the run's to clean up: the
    folder is what it holds."""
    files = [folder / name for name in ("model.npz", "metrics.json", "report.json", "curves.png", "checkpoint.npz")]
    for callback in callbacks:
        path = getattr(callback, "path", None)
        if isinstance(path, (str, os.PathLike)) and Path(path).parent.resolve() == folder.resolve():
            files.append(Path(path))
    return files


def _write_reports(
    config: runconfig.RunConfig, model: Model, history: History, test: dict[str, float], folder: Path
) -> dict[str, Path]:
    """model.npz, metrics.json and (with matplotlib) curves.png in the output folder."""
    files = {"model": model.save(folder / "model.npz", include_optimizer=True)}
    report = {
        "lamina_version": __version__,
        "config": config.source,
        "epochs": len(history),
        "history": history.to_json(),  # null: not logged that epoch (or not finite)
        "test": as_json(test),  # a confusion matrix as nested lists; null: not finite
    }
    files["metrics"] = atomic_write(folder / "metrics.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    if have_matplotlib():
        files["curves"] = plot_curves(history, folder / "curves.png")
    return files


def describe_model_file(config: dict[str, Any]) -> list[str]:
    """What `lamina info` says about a file's provenance and the plugins it needs."""
    installed = {normalize_package(i.package): i.version for i in get_registry().plugins()}
    lines = [f"written by lamina {printable(config.get('lamina_version', '?'))}", "plugins it needs:"]
    for package, version in sorted(config.get("plugins", {}).items()):
        # Text from the file is data: shown escaped, and in a pip command only when valid.
        have = installed.get(normalize_package(package)) if valid_package_name(package) else None
        if have is None:
            status = f"NOT available: {why_missing(package, version)}"
        elif older(have, version):
            status = f"installed ({have}), OLDER than the file's {version}: pip install '{package}>={version}'"
        else:
            status = f"installed ({have})"
        lines.append(f"  {printable(package)} {printable(version)}: {status}")
    return lines
