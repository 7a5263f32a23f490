"""Callback: the protocol of training callbacks."""
from __future__ import annotations

from typing import Any

from lamina.protocols.configurable import Configurable


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

