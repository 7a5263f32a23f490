"""Checkpoints: the callback that writes them during training, and resuming from one."""
from __future__ import annotations

import math
import os
from pathlib import Path

from lamina.checks import boolean, one_of, positive_int
from lamina.errors import ArgumentError, ShapeError
from lamina.files.load import read_model, restore_generator
from lamina.files.save import save_model
from lamina.protocols.callback import Callback
from lamina.protocols.layer import layer_paths, named_buffers, named_parameters
from lamina.protocols.optimizer import Optimizer
from lamina.protocols.strategy import active_strategy
from lamina.protocols.trainable import Trainable
from lamina.registry import resolve
from lamina.training.history import History


class Checkpoint(Callback):
    """Every `every` epochs (and at the end), save the model with its optimizer state, lamina's
    random generator and the history so far, atomically, to `path`: a crash at any moment
    leaves the last complete checkpoint. `model.train(..., resume_from=path)` continues it.

    With `save_best_only=True` the file is instead the model (a plain model file, as
    `Model.save` writes; `lamina.load` reads it) of the best epoch so far by the logged value
    `monitor` (default "val_loss"), checked every `every` epochs; `mode` "min" or "max", or
    "auto" from the name (see `Callback.monitor_mode`). A value only replaces the best when it
    is strictly better, as in Keras' ModelCheckpoint.
    """

    def __init__(self, path: str | os.PathLike[str], every: int = 1, monitor: str | None = None,
                 save_best_only: bool = False, mode: str = "auto") -> None:
        self.path = os.fspath(path)
        self.every = positive_int(every, "every", "Checkpoint", example=1)
        self.save_best_only = boolean(save_best_only, "save_best_only", "Checkpoint")
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ArgumentError(f"Checkpoint(monitor={monitor!r}): monitor must name a logged value, e.g. 'val_loss'")
        self.monitor = monitor
        self.mode = one_of(mode, "mode", "Checkpoint", ("auto", "min", "max"))
        if not self.save_best_only and (monitor is not None or mode != "auto"):
            # a resumable checkpoint holds the last epoch: a monitor would choose nothing
            raise ArgumentError(
                f"Checkpoint(monitor={monitor!r}, mode={mode!r}, save_best_only=False): monitor and mode choose "
                "the best epoch, which only a best-only checkpoint keeps; pass save_best_only=True, or leave "
                "them out for a resumable checkpoint of the last epoch"
            )
        if self.save_best_only:  # an undecidable name fails here, before any training
            self._sign = 1.0 if self.monitor_mode(self.monitored, mode, "Checkpoint") == "min" else -1.0

    @property
    def monitored(self) -> str:
        """The logged value a best-only checkpoint compares: `monitor`, or "val_loss"."""
        return self.monitor if self.monitor is not None else "val_loss"

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._saved: int | None = None
        self.best_epoch: int | None = None
        self._best = math.inf  # sign * value: lower is better
        history = self.model.history
        resumed = history is not None and self.monitored in history.history and Path(self.path).is_file()
        if self.save_best_only and resumed:
            # a resumed run: the file holds the best of the epochs before, which a later one must beat
            for epoch, value in zip(history.epoch, history.history[self.monitored]):
                if (epoch + 1) % self.every == 0 and self._sign * value < self._best:
                    self._best, self.best_epoch = self._sign * value, epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every != 0:
            return
        if self.save_best_only:
            self._save_if_best(epoch, logs)
        else:
            self._save(epoch + 1, logs)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.save_best_only:
            return  # the file holds the best epoch, not the last
        done = len(self.model.history) if self.model.history is not None else 0
        if done and self._saved != done:
            self._save(done, None)

    @property
    def best(self) -> float | None:
        """The best monitored value so far (in its own sign), or None before any."""
        return None if self.best_epoch is None else self._sign * self._best

    def _save_if_best(self, epoch: int, logs: dict[str, float]) -> None:
        owner = f"Checkpoint(monitor={self.monitored!r}, save_best_only=True)"
        value = self._sign * Callback.monitored_value(logs, self.monitored, owner)
        if not value < self._best:  # NaN never is
            return
        self._best, self.best_epoch = value, epoch
        if active_strategy().is_main:  # with several processes, one writes the file
            save_model(self.model, self.path)

    def _save(self, done: int, logs: dict[str, float] | None) -> None:
        if not active_strategy().is_main:
            self._saved = done
            return  # with several processes, one writes the file
        # The history so far: what the model's History holds, plus this epoch's logs, which
        # the history records only after the other callbacks have run.
        history = History.from_dict(self.model.history.history)
        if logs is not None:
            history.record(done - 1, logs)
        save_model(self.model, self.path, include_optimizer=True, progress={"epoch": done, "history": history.history})
        self._saved = done


def resume(model: Trainable, path: str | os.PathLike[str], optim: object, owner: str) -> tuple[Optimizer, History, int]:
    """Restore a checkpoint into `model` (already built): weights, buffers, frozen flags,
    optimizer state, lamina's generator and the history; returns (optimizer, history, epochs done)."""
    where = f"{owner}(resume_from={str(path)!r})"
    saved = read_model(path)
    if saved.progress is None or saved.optimizer is None:
        raise ArgumentError(f"{where}: the file is a saved model, not a checkpoint; "
                            "write checkpoints with the Checkpoint callback")
    restore_generator(saved.rng_state, path)  # building the layers drew from it; the checkpoint puts it back
    mine, theirs = model.parameters(), named_parameters(saved.layers)
    if {k: p.shape for k, p in mine.items()} != {k: p.shape for k, p in theirs.items()}:
        raise ShapeError(
            f"{where}: the checkpoint's weights ({', '.join(f'{k} {p.shape}' for k, p in theirs.items())}) "
            f"do not fit this model's ({', '.join(f'{k} {p.shape}' for k, p in mine.items())}); "
            "resume the same architecture"
        )
    # The run goes on as it was: what was frozen stays frozen, whatever `model` says. Outer layers
    # first (each inner one then sets its own flag), the parameters' own flags last.
    saved_layers = layer_paths(saved.layers)
    for path, layer in layer_paths(model.layers).items():
        if path in saved_layers:
            layer.trainable = saved_layers[path].trainable
    for name, param in mine.items():
        param.value[...] = theirs[name].value
        param.trainable = theirs[name].trainable
    saved_buffers = named_buffers(saved.layers)
    for name, buffer in model.buffers().items():
        buffer[...] = saved_buffers[name]
    restored = saved.optimizer
    if optim is not None:
        given = resolve("optimizer", optim, "optim", owner)
        if type(given) is not type(restored):
            raise ArgumentError(
                f"{where}: the checkpoint was trained with {restored!r} but optim={given!r} was given; "
                "leave optim out to continue with the checkpoint's optimizer"
            )
    restored.rekey_state({theirs[name]: mine[name] for name in mine})
    progress = saved.progress
    return restored, History.from_dict(progress.get("history", {}), int(progress["epoch"])), int(progress["epoch"])
