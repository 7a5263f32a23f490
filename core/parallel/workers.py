"""lamina's worker threads: a batch split into parts, one per thread, each on one BLAS thread.

numpy runs its element-wise passes and copies on one core and releases the GIL while it does:
two threads, each with half of a layer's batch (its window copies, products and sums), keep
both cores busy where BLAS alone spreads only the products.
"""
from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from lamina.errors import ArgumentError
from lamina.parallel import blas

T = TypeVar("T")
R = TypeVar("R")

# Below this much work (bytes touched) a split runs inline: waking a thread costs ~50-100 us.
SMALL = 1 << 20

_chosen: int | None = None  # set_threads's count; None: follow numpy's BLAS
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_local = threading.local()  # .busy: this thread runs a part now (a nested split runs inline)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _from_environment() -> int | None:
    text = os.environ.get("LAMINA_NUM_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ArgumentError(f"LAMINA_NUM_THREADS={text!r}: expected a whole number >= 1, e.g. "
                            "LAMINA_NUM_THREADS=2, or unset it to follow numpy's BLAS")
    return int(text)


def threads() -> int:
    """How many threads `split` uses: set_threads's count, else LAMINA_NUM_THREADS, else as many
    as numpy's BLAS uses now (so OPENBLAS_NUM_THREADS=1 or threadpoolctl's limits hold for
    lamina too); never more than the cores this process may run on, 1 where lamina cannot set
    the BLAS's threads (it would fight the BLAS's own)."""
    if not blas.available():
        return 1
    chosen = _chosen if _chosen is not None else _from_environment()
    return max(1, min(chosen if chosen is not None else blas.current(), _cores()))


def splits(work: int) -> bool:
    """Whether `split` runs parts at once for `work` (bytes the call touches): more than one
    thread, and at least SMALL bytes (under it, waking a thread costs more than it saves)."""
    return work >= SMALL and threads() > 1


def owning() -> bool:
    """Whether lamina owns the cores now: inside `owned` (or a split), where numpy's BLAS is on
    one thread and a layer with large products should split them itself to use every core."""
    return blas.held() and threads() > 1


def set_threads(count: int | None) -> None:
    """Use `count` threads in `split` (1: none of lamina's own); None: follow numpy's BLAS again."""
    global _chosen
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ArgumentError(f"lamina.parallel.set_threads({count!r}): expected an int >= 1, or None "
                            "to follow numpy's BLAS threads")
    _chosen = count


@contextmanager
def owned(layers: Iterable[Any] | None = None) -> Iterator[None]:
    """lamina owns the cores inside the block (Model.train, predict and evaluate use it): when
    lamina splits over several threads and one of `layers` (or a layer inside one) has
    `splits_batch` (None: always), numpy's BLAS stays on one thread throughout. After a
    product on several threads, OpenBLAS's threads spin for a while, waiting for the next; the
    block keeps them from taking a core from lamina's threads between two splits."""
    if threads() > 1 and (layers is None or any(getattr(inner, "splits_batch", False)
                                                 for layer in layers for inner in layer.walk())):
        with blas.blas_threads(1):
            yield
    else:
        yield


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, a new pool starts when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, with room for `workers` threads (grown when asked for more, never shrunk:
    idle threads cost nothing)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            _pool, _pool_size = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina"), workers
        return _pool


def _run(fn: Callable[[Sequence[T], int], R], part: Sequence[T], worker: int) -> R:
    _local.busy = True
    try:
        return fn(part, worker)
    finally:
        _local.busy = False


def split(items: Sequence[T], fn: Callable[[Sequence[T], int], R], work: int | None = None) -> list[R]:
    """[fn(part, worker) for each part], the parts being `items` cut into up to `threads()`
    contiguous runs of near-equal length (worker 0 the first), run at once on lamina's threads
    with numpy's BLAS on one thread each; the calling thread runs the first part. One part (one
    thread, one item, `work` (bytes the call touches, when given) under SMALL, or a split inside
    a part) is a plain call, fn(items, 0). `fn` must write only what its part owns; `worker`
    is its index, for per-thread working memory."""
    count = min(threads(), len(items))
    if count <= 1 or (work is not None and not splits(work)) or getattr(_local, "busy", False):
        return [fn(items, 0)]
    bounds = [len(items) * k // count for k in range(count + 1)]
    parts = [items[bounds[k] : bounds[k + 1]] for k in range(count)]
    with blas.blas_threads(1):
        pool = _executor(count - 1)
        # Each part runs in a copy of the caller's context (a metered load's meter, a record).
        futures: list[Future[R]] = [pool.submit(contextvars.copy_context().run, _run, fn, parts[k], k)
                                    for k in range(1, count)]
        try:
            first = _run(fn, parts[0], 0)
        finally:  # every part ends before the BLAS threads come back (or an error propagates)
            results = [future.exception() for future in futures]
        for error in results:
            if error is not None:
                raise error
        return [first, *(future.result() for future in futures)]
