"""Metric: the protocol of metrics over a whole set, `reset()`, `update(pred, y, sample_weight)`,
`result()`, and the default accumulator that makes a batch mean, `metric(pred, y) -> float`, one."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from lamina.errors import ArgumentError
from lamina.protocols.configurable import Configurable


class Metric(Configurable):
    """Base class of metrics: a result over every row seen since `reset()`.

    A stateful metric implements `reset()`, `update(pred, y, sample_weight=None)` (add one batch)
    and `result()` (a float, or an array such as a confusion matrix), and keeps its state in
    numpy arrays that `state()` returns by name: training and evaluation sum each array over the
    processes of a data-parallel run (those named in `concatenated` are joined along their first
    axis instead, e.g. the scores an AUC keeps) and hand them back with `set_state`, so that the
    result is the same as one process's.

    A metric that only implements `__call__(pred, y) -> float`, the mean over the batch's samples
    (accuracy, mae, ...), gets the default accumulator: the mean of its batch values weighted by
    the rows (by the sample weights when given). Such a metric must be a mean over samples: a
    macro-F1 computed per batch and averaged is not the macro-F1 of the set; write it stateful.

    Its key in the history and in `evaluate`'s result is `name` (by default the class name in
    snake_case; `name=` at construction sets it), and "val_" + name for validation data. Only
    scalar results enter the history. `greater_is_better` (True for accuracy-like scores, False
    for errors) tells callbacks with mode="auto" (Checkpoint, ReduceLROnPlateau) which way it
    improves; None (the default) makes them ask for mode="min" or "max".
    """

    name: str = ""
    greater_is_better: bool | None = None
    concatenated: tuple[str, ...] = ()  # the arrays of state() joined (not summed) over processes

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = check_name(name, type(self).__name__)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if config.get("name") == type(self).name:  # the default name rebuilds by itself
            del config["name"]
        return config

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(pred, y) (a batch mean) or "
            "reset(), update(pred, y, sample_weight=None) and result()"
        )

    # -- the default accumulator: a weighted mean of batch values -----------------------------------

    def reset(self) -> None:
        """Forget every row seen: start a new set."""
        self._sums = np.zeros(2)  # [sum of weight * value, sum of weights]

    def update(self, pred: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        """Add one batch: pred and y as for `__call__`, sample_weight one weight per row or None."""
        sums = self._accumulated()
        if sample_weight is None:
            sums += (float(self(pred, y)) * len(pred), len(pred))
            return
        weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if len(weights) and np.all(weights == weights[0]):  # one weight: the batch mean serves
            sums += (float(self(pred, y)) * float(weights.sum()), float(weights.sum()))
            return
        for i, w in enumerate(weights):  # a mean over samples, weighted: each row's value apart
            if w:
                sums += (float(self(pred[i : i + 1], y[i : i + 1])) * w, w)

    def result(self) -> Any:
        """The metric over every row added since `reset()` (NaN before any)."""
        total, weight = self._accumulated()
        return float(total / weight) if weight else float("nan")

    def state(self) -> dict[str, np.ndarray]:
        """The arrays whose sums over processes (joins, for those in `concatenated`) give the
        state of the whole set."""
        return {"sums": self._accumulated()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Take the state of the whole set (what `state()` returned, summed over processes)."""
        self._sums = np.asarray(state["sums"], dtype=np.float64)

    def _accumulated(self) -> np.ndarray:
        if getattr(self, "_sums", None) is None:
            self.reset()
        return self._sums


def check_name(name: object, owner: str) -> str:
    """`name=` of a metric: a non-empty string, its key in the history and in evaluate's result."""
    if not isinstance(name, str) or not name or name.startswith("val_") or name == "loss":
        raise ArgumentError(
            f"{owner}(name={name!r}): name must be a non-empty string, not 'loss' and not starting "
            "with 'val_' (the history adds that prefix for validation data), e.g. name='macro_f1'"
        )
    return name
