"""Batches: which rows each training step reads, epoch after epoch."""
from __future__ import annotations

from collections.abc import Iterator

from lamina.protocols.strategy import Rows, Strategy


class Batches:
    """The batches of one epoch over n rows: slices in order (views of the data, no copy), or
    index arrays into one permutation per epoch from the strategy (lamina's generator).

    Iterating yields (the global batch's rows, how many): each process computes its
    `strategy.shard` of them.
    """

    def __init__(self, n: int, batch_size: int | None, shuffle: bool, strategy: Strategy, owner: str) -> None:
        self.n = n
        self.size = n if batch_size is None else min(batch_size, n)
        self.count = -(-n // self.size)  # batches per epoch
        self.shuffle = shuffle and self.count > 1  # one batch: its order changes nothing
        self.strategy = strategy
        strategy.check_batches(n, self.size, owner)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Rows, int]]:
        n, size = self.n, self.size
        order = self.strategy.permutation(n) if self.shuffle else None
        for start in range(0, n, size):
            stop = min(start + size, n)
            rows: Rows = slice(start, stop) if order is None else order[start:stop]
            yield rows, stop - start


def in_order(n: int, batch_size: int) -> Iterator[slice]:
    """Slices of `batch_size` rows in order, for evaluation and prediction."""
    for start in range(0, n, batch_size):
        yield slice(start, start + batch_size)
