"""Strategy: how a training run is spread over processes. The base class is the local one.

The training loop hands every question of distribution to its strategy: the minimum batch
size, each epoch's permutation, this process's shard of a batch, summing the step's gradients
and the loss sums, and whether this process writes output. The local strategy answers each
with no work at all. Layers that need statistics over the whole batch (BatchNorm) ask
`active_strategy()` for them during training.
"""
from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from lamina.errors import ArgumentError, ShapeError
from lamina.parameter import Parameter
from lamina.protocols.configurable import Configurable
from lamina.protocols.layer import named_buffers, named_parameters
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

    def shard(self, rows: Rows, count: int, weights: np.ndarray | None = None) -> Rows:
        """The part of a global batch (`rows`, `count` of them) that this process computes;
        called just before the step on it (a strategy may remember what it needs for the step).
        `weights`: the global batch's sample weights, in the order of `rows`, when the loss is
        their weighted mean (None: the plain mean)."""
        return self.part(rows, count)

    def part(self, rows: Rows, count: int) -> Rows:
        """The same rows as `shard`, remembering nothing: what a loader thread reads ahead."""
        return rows

    def reduce_step(self, params: Sequence[Parameter], sums: list[float]) -> list[float]:
        """After this process's backward pass: turn each parameter's gradient into the gradient
        of the global batch's mean loss, and `sums` (loss and metric sums over this process's
        rows) into sums over the global batch. The step passes the trainable parameters only."""
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

    def reduce_state(self, state: dict[str, np.ndarray], concatenated: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """A metric's state over every process: each array summed, those named in `concatenated`
        joined along their first axis in the order of the ranks (one process: the state itself)."""
        return state


class DataParallel(Strategy):
    """Base class of data-parallel strategies over several processes, like Horovod's: every
    process holds the same model, computes its shard of each global batch, and one allreduce
    per step sums the shards' gradients into the gradient of the global batch's mean loss.

    A subclass supplies the communication: `rank`, `size`, `allreduce` and `broadcast` (and
    `fail`); everything else here is written in terms of those.
    """

    _share: float = 1.0  # this process's share of the current global batch, set by shard()

    def begin(self, model: object) -> None:
        """Check that every process built the same parameters, then start from rank 0's."""
        params = named_parameters(getattr(model, "layers", []))
        buffers = named_buffers(getattr(model, "layers", []))
        # The frozen flags too: each step's allreduce packs the trainable gradients only.
        layout = repr([(name, p.shape, str(p.value.dtype), p.trainable) for name, p in params.items()])
        mine = np.array([zlib.crc32(layout.encode())], dtype=np.float64)  # exact: below 2^53
        first = mine.copy()
        self.broadcast(first)
        differ = np.array([float(first[0] != mine[0])])
        self.allreduce(differ)  # every process learns whether any differs: all raise, none waits
        if differ[0]:
            raise ShapeError(
                f"strategy {type(self).__name__.lower()!r}: the {self.size} processes built models with different "
                f"parameters (this is process {self.rank}: {layout}: name, shape, dtype, trainable); every process "
                "must build the same model from the same data shapes and freeze the same layers"
            )
        arrays = [p.value for p in params.values()] + list(buffers.values())
        if arrays:
            packed = np.concatenate([a.ravel().astype(np.float64) for a in arrays])
            self.broadcast(packed)
            offset = 0
            for array in arrays:
                array[...] = packed[offset : offset + array.size].reshape(array.shape)
                offset += array.size

    def check_batches(self, rows: int, batch_size: int, owner: str) -> None:
        smallest = rows - (-(-rows // batch_size) - 1) * batch_size
        if smallest < self.size:
            raise ArgumentError(
                f"{owner}(batch_size={batch_size}): with {self.size} processes every batch needs at "
                f"least {self.size} rows, but {'the last batch' if smallest < batch_size else 'each batch'} "
                f"of the {rows} training rows has {smallest}; use a batch_size of at least {self.size} "
                "that leaves no smaller remainder"
            )

    def permutation(self, n: int) -> np.ndarray:
        order = super().permutation(n)  # every process draws, keeping the generators in step
        self.broadcast(order)  # and rank 0's order is the one used
        return order

    def shard(self, rows: Rows, count: int, weights: np.ndarray | None = None) -> Rows:
        """A near-equal, disjoint part of the global batch per process; remembers its share: of
        the rows, or with sample weights of the weights (this process's loss is the weighted
        mean over its rows, sum(w l) / sum(w) there)."""
        low, high = self._bounds(count)
        if weights is None:
            self._share = (high - low) / count
        else:
            total = float(weights.sum())
            self._share = float(weights[low:high].sum()) / total if total > 0 else 0.0
        return self.part(rows, count)

    def part(self, rows: Rows, count: int) -> Rows:
        low, high = self._bounds(count)
        if isinstance(rows, slice):
            return slice(rows.start + low, rows.start + high)
        return rows[low:high]

    def _bounds(self, count: int) -> tuple[int, int]:
        bounds = np.linspace(0, count, self.size + 1).round().astype(int)
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def reduce_step(self, params: Sequence[Parameter], sums: list[float]) -> list[float]:
        """One allreduce per step: every gradient, weighted by this shard's share of the global
        batch (so the sum is the gradient of the global batch's mean loss), and the sums, packed
        into one buffer in the gradients' own dtype (float32 halves the bytes sent). Frozen
        parameters are left out: their gradients are neither sent nor overwritten."""
        grads = [param.grad for param in params if param.trainable]
        total = sum(g.size for g in grads)
        buffer = np.empty(total + len(sums), dtype=grads[0].dtype if grads else np.float64)
        offset = 0
        for grad in grads:
            np.multiply(grad.ravel(), self._share, out=buffer[offset : offset + grad.size])
            offset += grad.size
        buffer[offset:] = sums
        self.allreduce(buffer)
        offset = 0
        for grad in grads:
            grad[...] = buffer[offset : offset + grad.size].reshape(grad.shape)
            offset += grad.size
        return [float(v) for v in buffer[offset:]]

    def reduce_state(self, state: dict[str, np.ndarray], concatenated: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Sums in one float64 allreduce; joins in two (each process's row counts, then the rows, each
        process writing its own at its offset of a zeroed buffer: adding zeros keeps values exact)."""
        summed = {key: np.asarray(value, dtype=np.float64) for key, value in state.items() if key not in concatenated}
        out: dict[str, np.ndarray] = {}
        if summed:
            packed = np.concatenate([a.ravel() for a in summed.values()])
            self.allreduce(packed)
            offset = 0
            for key, array in summed.items():
                out[key] = packed[offset : offset + array.size].reshape(array.shape)
                offset += array.size
        joined = {key: np.asarray(state[key], dtype=np.float64) for key in concatenated}
        if joined:
            counts = np.zeros((self.size, len(joined)))
            counts[self.rank] = [len(a) for a in joined.values()]
            self.allreduce(counts)
            for i, (key, array) in enumerate(joined.items()):
                rows = counts[:, i].astype(int)
                buffer = np.zeros((int(rows.sum()), *array.shape[1:]))
                start = int(rows[: self.rank].sum())
                buffer[start : start + len(array)] = array
                self.allreduce(buffer)
                out[key] = buffer
        return out

    def batch_statistics(self, x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int]:
        """Mean and variance over every process's shard: sums of x and x^2 and the count, summed."""
        total = x.sum(axis=axes)
        channels = total.size
        sums = np.concatenate([total, (x * x).sum(axis=axes), [x.size // channels]]).astype(np.float64)
        self.allreduce(sums)
        count = int(sums[-1])
        mean = sums[:channels] / count
        var = np.maximum(sums[channels : 2 * channels] / count - mean**2, 0)
        return mean.astype(x.dtype), var.astype(x.dtype), count

    def batch_gradient_sums(self, *sums: np.ndarray) -> tuple[np.ndarray, ...]:
        """Global sums of the global loss's gradient terms: this process's loss is the mean
        over its shard, i.e. 1 / share times its share of the global batch's mean loss."""
        share = self._share
        packed = np.concatenate([s.ravel() for s in sums]).astype(np.float64) * share
        self.allreduce(packed)
        # A shard whose sample weights are all 0 has a loss of 0: its scale is 0 too.
        scale = 1.0 / share if share > 0 else 0.0
        out, offset = [], 0
        for s in sums:
            out.append((packed[offset : offset + s.size] * scale).reshape(s.shape).astype(s.dtype))
            offset += s.size
        return tuple(out)


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
