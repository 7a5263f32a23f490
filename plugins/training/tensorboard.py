"""TensorBoard: the history's values (and the weights' histograms) as TensorBoard event files,
written with tensorboardX, which the optional extra lamina[tensorboard] installs."""
from __future__ import annotations

import os
from typing import Any

import lamina

INSTALL_HINT = "pip install 'lamina[tensorboard]'"


class TensorBoard(lamina.Callback):
    """Write each epoch's logged values as TensorBoard scalars in event files under `log_dir`.

    Every history key is a tag of its own, spelled as in the history ("loss", "val_loss",
    "accuracy", ...), at step = the epoch as the history counts it (from 0); the learning rate
    is "lr", which this callback adds to the logs (as LearningRateLogger does) when no other
    callback has. Values that callbacks listed after this one add are not seen. With
    `update_freq="batch"`, the epoch's running means after every step are written too, as
    "batch_loss", ... at step = the optimizer's step count (from 1). With `histograms=True`,
    every parameter's values are a histogram tagged with its name ("layers.0.weight") each
    epoch. TensorBoard stores scalars as float32. `tensorboard --logdir LOG_DIR` shows them.
    With several processes, the main one writes.
    """

    def __init__(self, log_dir: str | os.PathLike[str], update_freq: str = "epoch", histograms: bool = False) -> None:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise lamina.ArgumentError(
                f"TensorBoard(log_dir={os.fspath(log_dir)!r}): writing TensorBoard files needs the tensorboardX "
                f"package, which is not installed; install it with: {INSTALL_HINT}"
            ) from None
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise lamina.ArgumentError(f"TensorBoard(log_dir={log_dir!r}): log_dir must be a folder path, e.g. "
                                       "'runs/tensorboard'")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = lamina.checks.one_of(update_freq, "update_freq", "TensorBoard", ("epoch", "batch"))
        self.histograms = lamina.checks.boolean(histograms, "histograms", "TensorBoard")
        self._writer: Any = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.close()
        if lamina.active_strategy().is_main:  # with several processes, one writes the files
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(logdir=self.log_dir)

    def on_train_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        if self._writer is None or self.update_freq != "batch":
            return
        step = self.model.optimizer.iterations
        for key, value in logs.items():
            self._writer.add_scalar(f"batch_{key}", float(value), step)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if "lr" not in logs:  # every process: the history stays the same on all of them
            optim = self.model.optimizer
            lr = optim.current_lr if optim.current_lr is not None else optim.learning_rate()
            if lr is not None:
                logs["lr"] = float(lr)
        if self._writer is None:
            return
        for key, value in logs.items():
            self._writer.add_scalar(key, float(value), epoch)
        if self.histograms:
            for name, param in self.model.parameters().items():
                self._writer.add_histogram(name, param.value, epoch)
        self._writer.flush()  # each epoch on disk: TensorBoard shows a run while it trains

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the event file (training's end does it)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
