"""Both cores for the work BLAS does not spread: lamina's worker threads split a layer's batch,
each part on one BLAS thread (`split`), as many threads as numpy's BLAS uses (`threads`)."""
from lamina.parallel.blas import blas_threads
from lamina.parallel.workers import SMALL, owned, owning, set_threads, split, splits, threads

__all__ = ["SMALL", "blas_threads", "owned", "owning", "set_threads", "split", "splits", "threads"]
