"""Strategy: how a training run is spread over processes. The base class is the local one.

The training loop hands every question of distribution to its strategy: the minimum batch
size, each epoch's permutation, this process's shard of a batch, summing the step's gradients
and the loss sums, and whether this process writes output. The local strategy answers each
with no work at all. Layers that need statistics over the whole batch (BatchNorm) ask
`active_strategy()` for them during training.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from lamina.config import Configurable
from lamina.parameter import Parameter
from lamina.seeding import rng

Rows = slice | np.ndarray  # the rows of a batch: a slice of the data, or indices into it


class Strategy(Configurable):
    """Base class of training strategies; itself the single-process ("local") strategy.

    A strategy for several processes overrides `rank`, `size` and the methods below that move
    data between processes; every default here is what one process needs, which is nothing.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """True in the one process that shows progress and writes files."""
        return self.rank == 0

    def begin(self, model: object) -> None:
        """Called once the model's parameters exist, before the first step (e.g. to make every
        process start from the same weights)."""

    def check_batches(self, rows: int, batch_size: int, owner: str) -> None:
        """Raise an ArgumentError when `rows` in batches of `batch_size` cannot be shared out
        (e.g. a batch with fewer rows than processes)."""

    def permutation(self, n: int) -> np.ndarray:
        """This epoch's order of the n training rows; the same in every process."""
        return rng().permutation(n)

    def shard(self, rows: Rows, count: int) -> Rows:
        """The part of a global batch (`rows`, `count` of them) that this process computes."""
        return rows

    def reduce_step(self, params: Sequence[Parameter], sums: list[float]) -> list[float]:
        """After this process's backward pass: turn each parameter's gradient into the gradient
        of the global batch's mean loss, and `sums` (loss and metric sums over this process's
        rows) into sums over the global batch."""
        return sums

    def batch_statistics(self, x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int]:
        """(mean, variance, count) of `x` over `axes` and over the whole global batch."""
        return x.mean(axis=axes), x.var(axis=axes), int(np.prod([x.shape[a] for a in axes]))

    def batch_gradient_sums(self, *sums: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sums over the global batch of per-row gradient terms that this process summed over
        its own rows, in the scale of this process's loss (BatchNorm's backward)."""
        return sums

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
