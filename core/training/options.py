"""TrainOptions: every option of `Model.train`, with its default and its check, defined once.

`Model.train(x, y, **options)` takes exactly these keywords (its signature is made from this
class), `lamina train` configs take the ones marked as config keys under the same names, and
the config checker's list of keys and their descriptions comes from here too.
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from attrs import field, frozen

from lamina.checks import boolean, describe, fraction, positive_int, positive_number
from lamina.errors import ArgumentError
from lamina.protocols.callback import Callback
from lamina.protocols.metric import Metric

OWNER = "Model.train"


def _field(default: Any, check: Any = None, config: str | None = None) -> Any:
    """An option: its default, its check (run when the options are made) and, for the options
    a `lamina train` config may set, the description its key gets in config errors."""
    return field(default=default, converter=check, metadata={"config": config})


def _epochs(value: object) -> int:
    return positive_int(value, "epochs", OWNER, example=100)


def _batch_size(value: object) -> int | None:
    return None if value is None else positive_int(value, "batch_size", OWNER, example=32)


def _shuffle(value: object) -> bool:
    return boolean(value, "shuffle", OWNER)


def _verbose(value: object) -> bool:
    return boolean(value, "verbose", OWNER)


def _validation_split(value: object) -> float:
    return fraction(value, "validation_split", OWNER)


def _prefetch(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ArgumentError(
            f"{OWNER}(prefetch={describe(value)}): prefetch is how many batches are read ahead on a background "
            "thread: a non-negative int (0: none), or leave it out (1 for data read lazily, else 0)"
        )
    return int(value)


def _clip(value: object) -> float | None:
    return None if value is None else positive_number(value, "clip_grad_norm", OWNER, example=1.0)


def _validation_data(value: object) -> tuple[object, object] | None:
    if value is not None and not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ArgumentError(f"{OWNER}(validation_data={describe(value)}): expected a pair (x_val, y_val)")
    return None if value is None else (value[0], value[1])


def _sample_weight(value: object) -> object:
    """Checked against the data in Model.train (its length, and each value as it is read); a dict
    by output name for a model with several outputs (its names are checked there)."""
    if isinstance(value, Mapping):
        for weights in value.values():
            _sample_weight(weights)
        return dict(value)
    if isinstance(value, (str, bytes, bool)) or (value is not None and np.isscalar(value)):
        raise ArgumentError(
            f"{OWNER}(sample_weight={describe(value)}): sample_weight must be one non-negative weight per row of x "
            "(an array of shape (rows,), or an array-like read a batch at a time like x), or None; with several "
            "outputs, a dict of such by output name"
        )
    return value


def _class_weight(value: object) -> Any:
    """"balanced", or {class index or name: weight}; which classes exist is checked in Model.train.
    With several outputs, also a dict by output name of those (or None)."""
    if value is None or value == "balanced":
        return value
    if isinstance(value, Mapping) and value and all(
            isinstance(key, str) and (table is None or table == "balanced" or isinstance(table, Mapping))
            for key, table in value.items()):  # per output: {"cls": {0: 1.0, 1: 5.0}, ...}
        return {key: _class_weight(table) for key, table in value.items()}
    if not isinstance(value, Mapping):
        raise ArgumentError(
            f"{OWNER}(class_weight={describe(value)}): class_weight must be \"balanced\" or a mapping from class "
            "(an int index, or a class name of the data's metadata[\"classes\"]) to a weight, e.g. {0: 1.0, 1: 5.0}"
        )
    table: dict[int | str, float] = {}
    for key, weight in value.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer, str)) or (not isinstance(key, str)
                                                                                    and key < 0):
            raise ArgumentError(f"{OWNER}(class_weight=...): the key {describe(key)} is no class; keys are class "
                                "indices (ints >= 0) or class names (strings)")
        if not is_weight(weight):
            raise ArgumentError(f"{OWNER}(class_weight=...): the weight of class {key!r} must be a finite number "
                                f">= 0, got {describe(weight)}")
        table[key if isinstance(key, str) else int(key)] = float(weight)
    return table


def is_weight(weight: object) -> bool:
    """A finite number >= 0 (not a bool): what a class's or an output's loss weight must be."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(weight)) and float(weight) >= 0
    except OverflowError:  # an int beyond any float (10**400)
        return False


def _loss_weights(value: object) -> Any:
    """A number for every output, or a dict by output name (a list by position) of numbers >= 0;
    the model's outputs are checked in Model.train."""
    if value is None or isinstance(value, (Mapping, list, tuple)):
        items = [] if value is None else list(value.values() if isinstance(value, Mapping) else value)
    else:
        items = [value]
    for weight in items:
        if not is_weight(weight):
            raise ArgumentError(
                f"{OWNER}(loss_weights={describe(value)}): each output's loss weight must be a finite number >= 0, "
                f"got {describe(weight)}; e.g. loss_weights={{'cls': 1.0, 'box': 0.5}}")
    return dict(value) if isinstance(value, Mapping) else value


def _metrics(value: object) -> Any:
    """A list of metrics, or (several outputs) a dict by output name of lists."""
    if isinstance(value, Mapping):
        return [value] if "type" in value else {name: as_list(metrics) for name, metrics in value.items()}
    return as_list(value)


def as_list(value: object) -> list[Any]:
    """One plugin or name, or an iterable of them, as a list."""
    if value is None:
        return []
    if isinstance(value, (str, Metric, Callback)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


@frozen
class TrainOptions:
    """The options of `Model.train`, checked as they are made; see `Model.train` for each."""

    optim: Any = _field(None)  # None: the registry's default optimizer
    loss: Any = _field(None)  # None: the registry's default loss
    epochs: int = _field(10, _epochs, "a positive int (default 10)")
    batch_size: int | None = _field(None, _batch_size, "a positive int; leave it out for full-batch training")
    shuffle: bool = _field(True, _shuffle, "true or false (default true)")
    validation_data: tuple[object, object] | None = _field(None, _validation_data)
    validation_split: float = _field(0.0, _validation_split, "a number in [0, 1) (default 0)")
    metrics: Any = _field((), _metrics, "a list of metric names or tables")
    callbacks: list[Any] = _field((), as_list, "a list of callback names or tables")
    verbose: bool = _field(True, _verbose)
    clip_grad_norm: float | None = _field(None, _clip, "a positive number")
    resume_from: str | os.PathLike[str] | None = _field(None)
    strategy: Any = _field(None, config='a training strategy: "local" (default) or "mpi" (run under mpiexec -n N)')
    prefetch: int | None = _field(None, _prefetch, "batches read ahead on a background thread: a non-negative int")
    sample_weight: Any = _field(None, _sample_weight)
    class_weight: Any = _field(
        None, _class_weight, '"balanced", or a table from class name (or index) to weight: the loss weighs each '
        "training row by its class's weight")
    loss_weights: Any = _field(None, _loss_weights)

    @classmethod
    def make(cls, options: dict[str, Any], owner: str = OWNER) -> TrainOptions:
        """TrainOptions from keyword arguments; an unknown one is an ArgumentError that names it."""
        known = [a.name for a in attrs.fields(cls)]
        unknown = [name for name in options if name not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ArgumentError(
                f"{owner}: unknown option {unknown[0]!r}.{hint} The options are: {', '.join(known)}"
            )
        return cls(**options)


def config_keys() -> dict[str, str]:
    """The training options a `lamina train` config sets directly, with their descriptions."""
    return {a.name: a.metadata["config"] for a in attrs.fields(TrainOptions) if a.metadata["config"]}


def defaults() -> dict[str, Any]:
    """Each option's default, as `Model.train`'s signature shows it."""
    return {a.name: a.default for a in attrs.fields(TrainOptions)}
