"""Strategy: how a training run is spread over processes. The base class is the local one.

The training loop asks its strategy for each epoch's permutation, for this process's shard of
each global batch, and to sum arrays over all processes (`allreduce`). Layers that need
statistics over the whole batch (BatchNorm) ask `active_strategy()` during training.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from lamina.config import Configurable
from lamina.seeding import rng


class Strategy(Configurable):
    """Base class of training strategies; itself the single-process ("local") strategy.

    Subclasses for several processes override `rank`, `size`, `begin`, `permutation`,
    `allreduce`, `broadcast` and `fail`; the training loop does the rest.
    `fraction` is this process's share of the current global batch, set by the loop each step.
    """

    rank: int = 0
    size: int = 1
    fraction: float = 1.0

    @property
    def is_main(self) -> bool:
        """True in the one process that shows progress and writes files."""
        return self.rank == 0

    def begin(self, model: object) -> None:
        """Called once the model's parameters exist, before the first step (e.g. to make every
        process start from the same weights)."""

    def permutation(self, n: int) -> np.ndarray:
        """This epoch's order of the n training rows; the same in every process."""
        return rng().permutation(n)

    def shard(self, count: int) -> slice:
        """The part of a global batch of `count` rows that this process computes."""
        bounds = np.linspace(0, count, self.size + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def allreduce(self, buffer: np.ndarray) -> None:
        """Sum `buffer` over all processes, in place (nothing to do in one process)."""

    def broadcast(self, buffer: np.ndarray) -> None:
        """Overwrite `buffer` with the main process's, in place (nothing to do in one process)."""

    def fail(self, error: BaseException) -> None:
        """Called when training raises in this process: stop the others instead of leaving
        them waiting in a collective (nothing to do in one process)."""


_active: Strategy = Strategy()


def active_strategy() -> Strategy:
    """The strategy of the training run in progress (the local one outside training)."""
    return _active


@contextlib.contextmanager
def activated(strategy: Strategy) -> Iterator[Strategy]:
    global _active
    previous, _active = _active, strategy
    try:
        yield strategy
    finally:
        _active = previous
