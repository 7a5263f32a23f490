"""Callbacks: EarlyStopping, ReduceLROnPlateau, LearningRateLogger, CSVLogger, TensorBoard, and core's
Checkpoint by name."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

import lamina
from lamina.plugins.training.tensorboard import TensorBoard


class EarlyStopping(lamina.Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `mode` "min" (losses) or "max" (accuracies); "auto" picks "max" for names containing
    "acc". With `restore_best`, the weights of the best epoch are put back when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str = "auto",
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise lamina.ArgumentError(f"EarlyStopping(monitor={monitor!r}): monitor must name a logged value, e.g. "
                                       "'val_loss'")
        self.monitor = monitor
        self.patience = lamina.checks.non_negative_int(patience, "patience", "EarlyStopping", example=5)
        self.min_delta = lamina.checks.non_negative_number(min_delta, "min_delta", "EarlyStopping")
        self.restore_best = lamina.checks.boolean(restore_best, "restore_best", "EarlyStopping")
        self.mode = lamina.checks.one_of(mode, "mode", "EarlyStopping", ("auto", "min", "max"))

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        mode = self.mode if self.mode != "auto" else ("max" if "acc" in self.monitor else "min")
        self._sign = 1.0 if mode == "min" else -1.0  # compare sign * value: lower is better
        self.best = math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._wait = 0
        self._best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = self._sign * self.monitored_value(logs, self.monitor, f"EarlyStopping(monitor={self.monitor!r})")
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:
                self._best_weights = [p.value.copy() for p in self.model.parameters().values()]
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        best_weights = self._best_weights if self.restore_best else None
        restored = best_weights is not None
        if best_weights is not None:
            for param, best in zip(self.model.parameters().values(), best_weights):
                param.value[...] = best
        if self.stopped_epoch is not None and self.best_epoch is not None:
            lamina.echo(
                f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}: {self.monitor} has not "
                f"improved for {self.patience} epochs (best {self.best_value:.4g} at epoch {self.best_epoch + 1}"
                + ("; its weights restored)" if restored else ")")
            )

    @property
    def best_value(self) -> float:
        """The best monitored value seen (in its own sign)."""
        return self._sign * self.best


class ReduceLROnPlateau(lamina.Callback):
    """Multiply the optimizer's learning rate by `factor` when `monitor` has not improved for
    `patience` epochs, with Keras' rule (keras/src/callbacks/reduce_lr_on_plateau.py):

    an epoch improves when its value beats the best by more than `min_delta` (below it in mode
    "min", above it in "max"); every other epoch adds one to a wait count, except during the
    `cooldown` epochs after a reduction, which reset it. When the count reaches `patience` and
    the rate is above `min_lr`, the rate becomes max(lr * factor, min_lr) and the count restarts.
    Each epoch logs "lr": the rate that epoch trained with (a reduction shows the epoch after).

    The optimizer's `lr` must be a number: a Schedule already decides the rate at every step.
    `mode` "auto" reads the name (see `Callback.monitor_mode`).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
    ) -> None:
        owner = "ReduceLROnPlateau"
        if not isinstance(monitor, str) or not monitor:
            raise lamina.ArgumentError(f"{owner}(monitor={monitor!r}): monitor must name a logged value, e.g. "
                                       "'val_loss'")
        self.monitor = monitor
        # 0 < factor < 1: the rate goes down, and stays a positive number an optimizer takes
        self.factor = lamina.checks.fraction(factor, "factor", owner, low_open=True)
        self.patience = lamina.checks.non_negative_int(patience, "patience", owner, example=10)
        self.min_delta = lamina.checks.non_negative_number(min_delta, "min_delta", owner, example=1e-4)
        self.cooldown = lamina.checks.non_negative_int(cooldown, "cooldown", owner)
        self.min_lr = lamina.checks.non_negative_number(min_lr, "min_lr", owner, example=1e-6)
        self.mode = lamina.checks.one_of(mode, "mode", owner, ("auto", "min", "max"))
        self._sign = 1.0 if self.monitor_mode(monitor, mode, owner) == "min" else -1.0

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        optim = self.model.optimizer
        lr = getattr(optim, "lr", None)
        if isinstance(lr, lamina.Schedule):
            raise lamina.ArgumentError(
                f"ReduceLROnPlateau: the optimizer {optim!r} takes its learning rate from the schedule {lr!r}, "
                "which sets it at every step; give the optimizer a number as lr to let ReduceLROnPlateau lower it, "
                "or drop one of the two"
            )
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise lamina.ArgumentError(
                f"ReduceLROnPlateau: the optimizer {optim!r} has no learning rate `lr` as a number "
                f"(it has {lamina.checks.describe(lr)}); use an optimizer whose lr is a number"
            )
        self.best = math.inf  # sign * value: lower is better
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        optim = self.model.optimizer
        logs["lr"] = float(optim.lr)  # before any reduction: the rate of this epoch, as Keras logs it
        current = self._sign * self.monitored_value(logs, self.monitor, f"ReduceLROnPlateau(monitor={self.monitor!r})")
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if current < self.best - self.min_delta:
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optim.lr)
                if old > self.min_lr:
                    optim.lr = max(old * self.factor, self.min_lr)
                    epochs = f"{self.wait} epoch" + ("s" if self.wait != 1 else "")
                    lamina.echo(f"ReduceLROnPlateau: epoch {epoch + 1}: {self.monitor} has not improved for {epochs}; "
                                f"learning rate {old:.4g} -> {optim.lr:.4g}")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateLogger(lamina.Callback):
    """Adds the optimizer's learning rate of the epoch's last step to the logs as "lr"."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        optim = self.model.optimizer
        lr = optim.current_lr if optim.current_lr is not None else optim.learning_rate()
        logs["lr"] = float(lr)


class CSVLogger(lamina.Callback):
    """Writes one row per epoch (epoch, then every logged value) to a CSV file at `path`.

    The file is rewritten atomically after each epoch, so it is never half-written.
    """

    def __init__(self, path: str | os.PathLike[str], separator: str = ",") -> None:
        self.path = os.fspath(path)
        self.separator = separator

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._rows: list[dict[str, Any]] = []
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self._rows.append({"epoch": epoch, **logs})
        columns: list[str] = []
        for row in self._rows:
            columns.extend(key for key in row if key not in columns)
        if not lamina.active_strategy().is_main:
            return  # with several processes, one writes the file
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, delimiter=self.separator, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows)
        lamina.atomic_write(self.path, text.getvalue())


@lamina.hookimpl
def register_callbacks(register):
    register(EarlyStopping)
    register(ReduceLROnPlateau)
    register(LearningRateLogger)
    register(CSVLogger)
    register(TensorBoard)
    register(lamina.Checkpoint)  # core's own: `lamina train --resume` relies on it
