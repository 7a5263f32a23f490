"""The progress bars a training run shows (when verbose): one tqdm bar per epoch, or one over the epochs."""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lamina.files.interrupts import held
from lamina.protocols.callback import Callback


def _bar(**options: Any) -> Any:
    """A tqdm bar, built whole: one interrupted half-way prints a traceback when collected."""
    with held():
        return tqdm(**options)


class ProgressBar(Callback):
    """One tqdm bar per epoch with running means, or one bar over the epochs when each epoch
    is a single batch. Bars go to stderr; `lamina.echo` writes above them."""

    def __init__(self, epochs: int, batches: int) -> None:
        self.epochs, self.batches = epochs, batches
        self._bar: Any = None
        self._epoch_bar: Any = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        if self.batches == 1:
            self._epoch_bar = _bar(total=self.epochs, desc="train", unit="epoch")

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.batches > 1:
            self._bar = _bar(total=self.batches, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch")

    def on_train_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        if self._bar is not None:
            if batch % 10 == 0:  # running means, cheaply
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        shown = {key: f"{value:.4g}" for key, value in logs.items()}
        for bar in (self._bar, self._epoch_bar):
            if bar is not None:
                bar.set_postfix(shown, refresh=False)
        if self._bar is not None:
            with held():  # not left half-closed either
                self._bar.close()
            self._bar = None
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """End any open bar (also when training stops with an error)."""
        with held():
            for bar in (self._bar, self._epoch_bar):
                if bar is not None:
                    bar.close()
        self._bar = self._epoch_bar = None
