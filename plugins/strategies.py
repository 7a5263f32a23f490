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

    def begin(self, model: lamina.Model) -> None:
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

    def permutation(self, n: int) -> np.ndarray:
        order = super().permutation(n)  # every process draws, keeping the generators in step
        self._comm.Bcast(order, root=0)  # and rank 0's order is the one used
        return order

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
