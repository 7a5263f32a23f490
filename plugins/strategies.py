"""Training strategies: "local" (one process, the default) and "mpi" (data-parallel over MPI).

With "mpi", start the same script on N processes (`mpiexec -n N python train.py`): every
process builds the same model and takes rank 0's weights; each global batch is split into N
disjoint shards; one Allreduce per step sums the shard gradients, weighted by shard size, into
the gradient of the global batch's mean loss; every process takes the same optimizer step.
"""
from __future__ import annotations

import sys
import time
import traceback
import zlib
from collections.abc import Sequence

import numpy as np

import lamina


class Local(lamina.Strategy):
    """One process: the whole batch here. The default."""


class Mpi(lamina.Strategy):
    """Data-parallel training over MPI (mpi4py), like Horovod: the final weights equal those of
    "local" training with the same seed and global batch size, up to float rounding."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise lamina.ArgumentError(
                "strategy 'mpi' needs mpi4py and an MPI library; install them with: pip install 'lamina[mpi]'"
            ) from None
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def begin(self, model: object) -> None:
        if not isinstance(model, lamina.Model):  # the base class takes any object
            raise lamina.ArgumentError(f"strategy 'mpi': begin() needs a lamina.Model, got {type(model).__name__}")
        params, buffers = model.parameters(), model.buffers()
        layout = repr([(name, p.shape, str(p.value.dtype)) for name, p in params.items()])
        signatures = np.empty(self.size, dtype=np.int64)
        self._comm.Allgather(np.array([zlib.crc32(layout.encode())], dtype=np.int64), signatures)
        if len(set(signatures.tolist())) > 1:
            raise lamina.ShapeError(
                f"strategy 'mpi': the {self.size} processes built models with different parameters "
                f"(this is process {self.rank}: {layout}); every process must build the same model "
                "from the same data shapes"
            )
        arrays = [p.value for p in params.values()] + list(buffers.values())
        if arrays:  # every process starts from rank 0's weights
            packed = np.concatenate([a.ravel().astype(np.float64) for a in arrays])
            self._comm.Bcast(packed, root=0)
            offset = 0
            for array in arrays:
                array[...] = packed[offset : offset + array.size].reshape(array.shape)
                offset += array.size

    def check_batches(self, rows: int, batch_size: int, owner: str) -> None:
        smallest = rows - (-(-rows // batch_size) - 1) * batch_size
        if smallest < self.size:
            raise lamina.ArgumentError(
                f"{owner}(batch_size={batch_size}): with {self.size} processes every batch needs at "
                f"least {self.size} rows, but {'the last batch' if smallest < batch_size else 'each batch'} "
                f"of the {rows} training rows has {smallest}; use a batch_size of at least {self.size} "
                "that leaves no smaller remainder"
            )

    def permutation(self, n: int) -> np.ndarray:
        order = super().permutation(n)  # every process draws, keeping the generators in step
        self._comm.Bcast(order, root=0)  # and rank 0's order is the one used
        return order

    def shard(self, rows: slice | np.ndarray, count: int) -> slice | np.ndarray:
        """A near-equal, disjoint part of the global batch per process; remembers its share."""
        low, high = (int(b) for b in np.linspace(0, count, self.size + 1).round().astype(int)[self.rank : self.rank + 2])
        self._share = (high - low) / count
        if isinstance(rows, slice):
            return slice(rows.start + low, rows.start + high)
        return rows[low:high]

    def reduce_step(self, params: Sequence[lamina.Parameter], sums: list[float]) -> list[float]:
        """One allreduce per step: every gradient, weighted by this shard's share of the global
        batch (so the sum is the gradient of the global batch's mean loss), and the sums, packed
        into one buffer in the gradients' own dtype (float32 halves the bytes sent)."""
        grads = [param.grad for param in params]
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
        return buffer[offset:].astype(np.float64).tolist()

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
        out, offset = [], 0
        for s in sums:
            out.append((packed[offset : offset + s.size] / share).reshape(s.shape).astype(s.dtype))
            offset += s.size
        return tuple(out)

    def allreduce(self, buffer: np.ndarray) -> None:
        self._comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def broadcast(self, buffer: np.ndarray) -> None:
        self._comm.Bcast(buffer, root=0)

    def fail(self, error: BaseException) -> None:
        if self.size == 1:
            return
        # The one-line reason first: when MPI_Abort ends the job, the launcher may cut what
        # follows. The traceback comes after, and a moment for the launcher to forward it.
        print(f"lamina: process {self.rank} of {self.size} failed ({type(error).__name__}: {error}); "
              "stopping all of them", file=sys.stderr, flush=True)
        traceback.print_exception(error, file=sys.stderr)
        sys.stderr.flush()
        time.sleep(0.2)
        self._comm.Abort(1)


@lamina.hookimpl
def register_strategies(register):
    register(Local, name="local")
    register(Mpi, name="mpi")
