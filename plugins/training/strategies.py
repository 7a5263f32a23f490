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

import numpy as np

import lamina


class Local(lamina.Strategy):
    """One process: the whole batch here. The default."""


class Mpi(lamina.DataParallel):
    """Data-parallel training over MPI (mpi4py), like Horovod: the final weights equal those of
    "local" training with the same seed and global batch size, up to float rounding.
    `lamina.DataParallel` does the sharding and the sums; this class is the communication."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise lamina.ArgumentError(
                "strategy 'mpi' needs mpi4py and an MPI library; install them with: pip install mpi4py mpich"
            ) from None
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

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
