"""Callback: the protocol of training callbacks."""
from __future__ import annotations

from typing import Any

from lamina.errors import ArgumentError
from lamina.protocols.configurable import Configurable

# Which way a logged value improves, by its name without "val_" (as Keras decides: a loss is
# minimised, a metric goes the way its kind does). Losses and errors are checked first.
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "msle", "crossentropy", "hinge", "divergence")
HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1")


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
        "min" or "max" is kept; "auto" reads the name: losses and errors ("loss", "val_mae", ...)
        "min", accuracies, AUC, precision, recall and F1 "max"; any other name is an ArgumentError
        asking for mode="min" or "max"."""
        if mode in ("min", "max"):
            return mode
        name = monitor.lower().removeprefix("val_")
        if any(word in name for word in LOWER_IS_BETTER):
            return "min"
        if any(word in name for word in HIGHER_IS_BETTER):
            return "max"
        raise ArgumentError(
            f"{owner}(monitor={monitor!r}, mode={mode!r}): cannot tell from the name whether {monitor!r} "
            "improves up or down; pass mode='min' (lower is better) or mode='max' (higher is better)"
        )

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

