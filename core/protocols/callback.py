"""Callback: the protocol of training callbacks."""
from __future__ import annotations

from typing import Any

from lamina.errors import ArgumentError
from lamina.protocols.configurable import Configurable
from lamina.protocols.metric import Metric

# Which way a logged value improves, by its name without "val_" (as Keras decides: a loss is
# minimised, a metric goes the way its kind does). Losses and errors are checked first.


class Callback(Configurable):
    """Base class of callbacks; every method is optional.

    During `model.train`, `self.model` is the model being trained (its optimizer is
    `self.model.optimizer`). `epoch` counts from 0. `logs` holds the epoch's values ("loss",
    metrics, "val_*"); a callback may add entries, which go into the history. Setting
    `self.model.stop_training = True` ends training after the current epoch.
    """

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    @staticmethod
    def monitor_mode(monitor: str, mode: str, owner: str) -> str:
        """"min" or "max": the direction in which the logged value `monitor` improves. `mode`
        "min" or "max" is kept; "auto" reads the name without "val_": a loss ("loss", or a name
        ending in "loss") is "min", and a metric's key says what its class declares
        (`Metric.greater_is_better`: accuracy, AUC, precision, recall, F1 "max"; MAE, MSE "min"),
        also as an output's metric ("cls_accuracy").
        A name no metric class declares is an ArgumentError asking for mode="min" or "max"."""
        if mode in ("min", "max"):
            return mode
        key = monitor.removeprefix("val_")
        if key.lower().endswith("loss"):
            return "min"
        # an output's metric of a model with several outputs is logged as "<output>_<metric>" (cls_accuracy)
        better = {cls.greater_is_better for cls in _metric_classes()
                  if cls.name == key or key.endswith(f"_{cls.name}")} - {None}
        if len(better) == 1:
            return "max" if better.pop() else "min"
        raise ArgumentError(
            f"{owner}(monitor={monitor!r}, mode={mode!r}): no metric class says whether {key!r} improves up or "
            "down; pass mode='min' (lower is better) or mode='max' (higher is better)"
        )

    @staticmethod
    def monitored_value(logs: dict[str, float], monitor: str, owner: str) -> float:
        """`logs[monitor]`, or an ArgumentError naming `owner` (e.g. "EarlyStopping(monitor='val_loss')")
        and the values the logs have: a callback that watches a value says so at the first epoch's end."""
        if monitor not in logs:
            raise ArgumentError(
                f"{owner}: no such value in this epoch's logs (they have {', '.join(map(repr, logs))}); monitor "
                "one of those, or pass validation_data or validation_split to get 'val_*' values"
            )
        return logs[monitor]

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Called at the start of each epoch."""

    def on_train_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        """Called after each training step, with `batch` counted from 0 in the epoch and the
        epoch's running means so far. Only callbacks that override it are called, so the
        others cost the step nothing."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch, with its training and validation values."""

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        """Called once after the last epoch, also when a callback stopped training early."""



def _metric_classes() -> list[type[Metric]]:
    """Every Metric class defined so far (the installed plugins' included), subclasses too."""
    found, todo = [], list(Metric.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found
