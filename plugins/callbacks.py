"""Callbacks: EarlyStopping, LearningRateLogger, CSVLogger."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

import lamina


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
            raise lamina.ArgumentError(f"EarlyStopping(monitor={monitor!r}): monitor must name a logged value, e.g. 'val_loss'")
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
        if self.monitor not in logs:
            raise lamina.ArgumentError(
                f"EarlyStopping(monitor={self.monitor!r}): no such value in this epoch's logs "
                f"(they have {', '.join(map(repr, logs))}); monitor one of those, or pass "
                "validation_data or validation_split to get 'val_*' values"
            )
        value = self._sign * logs[self.monitor]
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
        restored = self.restore_best and self._best_weights is not None
        if restored:
            for param, best in zip(self.model.parameters().values(), self._best_weights):
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


class Checkpoint(lamina.Callback):
    """Every `every` epochs (and at the end), save the model with its optimizer state, lamina's
    random generator and the history so far, atomically, to `path`: a crash at any moment
    leaves the last complete checkpoint. `model.train(..., resume_from=path)` continues it."""

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        self.path = os.fspath(path)
        self.every = lamina.checks.positive_int(every, "every", "Checkpoint", example=1)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._saved: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every == 0:
            self._save(epoch + 1, logs)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        done = len(self.model.history) if self.model.history is not None else 0
        if done and self._saved != done:
            self._save(done, None)

    def _save(self, done: int, logs: dict[str, float] | None) -> None:
        if not lamina.active_strategy().is_main:
            self._saved = done
            return  # with several processes, one writes the file
        # The history so far: what the model's History holds, plus this epoch's logs, which
        # the training loop records only after the callbacks have run.
        history = {key: list(values) for key, values in self.model.history.items()}
        if logs is not None:
            for key, value in logs.items():
                history.setdefault(key, [float("nan")] * (done - 1)).append(float(value))
        self.model.save(self.path, include_optimizer=True, progress={"epoch": done, "history": history})
        self._saved = done


@lamina.hookimpl
def register_callbacks(register):
    register(EarlyStopping)
    register(LearningRateLogger)
    register(CSVLogger)
    register(Checkpoint)
