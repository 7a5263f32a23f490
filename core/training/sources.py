"""Data that trains without being loaded, and the batches the loops read from it.

`train`, `evaluate` and `predict` accept for x and y any array-like: an object with `len()`,
`.shape`, `.dtype` and indexing by a slice or an integer array (np.memmap, h5py and zarr
datasets, lamina's lazy datasets). Such a source is read one batch at a time (`Lazy.read`) and
each batch converted to the model's dtype; in-memory numpy arrays are converted once, up front,
as before. `prefetched` reads the next batch on a background thread while a step runs.
"""
from __future__ import annotations

import mmap
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from lamina.checks import intact_mapping
from lamina.errors import ArgumentError, LaminaError, ShapeError
from lamina.protocols.strategy import Rows

_MAPPED_ROWS = 64  # rows of a memmap read before their pages are dropped
DROP_ABOVE = 256 << 20  # memmaps bigger than this (bytes) have their pages dropped as they are read


def is_lazy(x: object) -> bool:
    """True for an array-like that is read a batch at a time: a memmap, or a non-numpy object
    with len(), .shape, .dtype and indexing (lists and tuples are plain data)."""
    if isinstance(x, np.memmap):
        return True
    if isinstance(x, (np.ndarray, list, tuple, str, bytes)) or np.isscalar(x):
        return False
    if type(x).__module__.split(".")[0] == "pandas":  # a Series indexes by label: convert it whole, as before
        return False
    return all(hasattr(x, name) for name in ("__len__", "__getitem__", "shape", "dtype"))


class Lazy:
    """Rows [start, stop) of an array-like source, read a batch at a time.

    Integer rows are read in increasing order and put back in the asked order (h5py needs
    increasing indices; memmaps and files read faster in order).
    """

    def __init__(self, source: Any, owner: str, name: str = "x", start: int = 0, stop: int | None = None) -> None:
        self.source, self.owner, self.name = source, owner, name
        try:
            total, shape, dtype = len(source), tuple(source.shape), np.dtype(source.dtype)
        except Exception as err:  # a foreign object: say what was expected
            raise ShapeError(f"{owner}: {name} ({type(source).__name__}) is not an array-like with len(), .shape and "
                             f".dtype ({err})") from None
        if not shape or shape[0] != total:
            raise ShapeError(
                f"{owner}: {name} ({type(source).__name__}) has len() {total} but shape {shape}; an array-like "
                "needs its rows along the first axis"
            )
        self.start, self.stop = start, total if stop is None else stop
        self.shape = (self.stop - self.start, *shape[1:])
        self.dtype = dtype

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def view(self, start: int, stop: int) -> Lazy:
        """Rows [start, stop) of this view, without reading anything."""
        return Lazy(self.source, self.owner, self.name, self.start + start, self.start + stop)

    def read(self, rows: Rows) -> np.ndarray:
        """The rows (a slice, or integer indices into this view) as a numpy array."""
        try:
            return self._read(rows)
        finally:
            self._release()

    def _read(self, rows: Rows) -> np.ndarray:
        intact_mapping(self.source, f"{self.owner}: {self.name}")  # a map whose file shrank would crash
        if isinstance(rows, slice):
            low, high, step = rows.indices(len(self))
            if step == 1:
                return np.array(self.source[self.start + low : self.start + high])  # a copy: no view into a mapping
            rows = np.arange(low, high, step)
        index = np.asarray(rows, dtype=np.int64) + self.start
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        mapping = self._mapping()
        if mapping is None:
            data = np.asarray(self._gather(ordered))
        else:  # a memmap: each scattered row maps in its page-cache folio (up to 2 MB), so read
            # 64 rows at a time and drop their pages before the next 64
            data = np.empty((len(ordered), *self.shape[1:]), dtype=self.dtype)
            for start in range(0, len(ordered), _MAPPED_ROWS):
                data[start : start + _MAPPED_ROWS] = self.source[ordered[start : start + _MAPPED_ROWS]]
                mapping.madvise(mmap.MADV_DONTNEED)
        if len(data) != len(index):
            raise ShapeError(f"{self.owner}: reading {len(index)} rows of {self.name} gave {len(data)}")
        out = np.empty_like(data)
        out[order] = data
        return out

    def _mapping(self) -> Any:
        """A memmap's shared mapping ("r", "r+": dropping its pages loses nothing) when it is
        bigger than DROP_ABOVE, else None (a smaller file may stay mapped: dropping costs time)."""
        mapping = getattr(self.source, "_mmap", None) if isinstance(self.source, np.memmap) else None
        if (mapping is not None and getattr(self.source, "mode", None) in ("r", "r+") and hasattr(mapping, "madvise")
                and len(mapping) > DROP_ABOVE):
            return mapping
        return None

    def _release(self) -> None:
        """A memmap's pages that a read mapped in count as the process's memory until dropped;
        dropping them after each read (they stay in the OS's page cache, and on disk) keeps a
        pass over a file bigger than memory at a few MB of mapped pages."""
        mapping = self._mapping()
        if mapping is not None:
            mapping.madvise(mmap.MADV_DONTNEED)

    def _gather(self, index: np.ndarray) -> Any:
        try:
            return self.source[index]
        except (TypeError, IndexError, ValueError):  # a source without integer-array indexing
            orthogonal = getattr(self.source, "oindex", None)  # zarr's
            if orthogonal is not None:
                return orthogonal[index]
            return np.stack([np.asarray(self.source[int(i)]) for i in index])


class Several:
    """Arrays with the same rows, by name: each an array in memory or a Lazy source with its
    converter; `take(rows)` reads the same rows of each and `join`s them (the model's structure,
    or a dict)."""

    def __init__(self, arrays: dict[str, Any], converters: dict[str, Callable[[np.ndarray], np.ndarray]],
                 join: Callable[[dict[str, Any]], Any], labels: dict[str, str]) -> None:
        self.arrays, self.converters, self.join, self.labels = arrays, converters, join, labels

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    @property
    def ndim(self) -> int:  # rows along the first axis, as an array's (the loops' checks read it)
        return 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),)

    def sizes(self) -> dict[str, int]:
        """The rows of each array, by how errors name it."""
        return {self.labels.get(name, name): len(array) for name, array in self.arrays.items()}

    @property
    def lazy(self) -> bool:
        return any(isinstance(array, Lazy) for array in self.arrays.values())

    def take(self, rows: Rows) -> Any:
        out = {}
        for name, array in self.arrays.items():
            if isinstance(array, Lazy):
                out[name] = self.converters[name](array.read(rows))
            else:
                out[name] = array[rows] if isinstance(rows, slice) else array.take(rows, axis=0)
        return self.join(out)

    def view(self, start: int, stop: int) -> Several:
        arrays = {name: a.view(start, stop) if isinstance(a, Lazy) else a[start:stop]
                  for name, a in self.arrays.items()}
        return Several(arrays, self.converters, self.join, self.labels)


class Feed:
    """What a loop reads batches from: x and y, each an in-memory array (converted once) or a
    Lazy source (each batch read, then converted by `convert_x` / `convert_y`); and `w`, the
    rows' sample weights (None: unweighted), a float64 array or a Lazy source checked as read."""

    def __init__(self, x: Any, y: Any, convert_x: Callable[[np.ndarray], np.ndarray],
                 convert_y: Callable[[np.ndarray], np.ndarray], w: Any = None) -> None:
        self.x, self.y, self.convert_x, self.convert_y, self.w = x, y, convert_x, convert_y, w
        self.lazy = any(isinstance(data, Lazy) or (isinstance(data, Several) and data.lazy) for data in (x, y))

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the rows, as the model and the loss take them."""
        return self._take(self.x, rows, self.convert_x), self._take(self.y, rows, self.convert_y)

    def inputs(self, rows: Rows) -> np.ndarray:
        return self._take(self.x, rows, self.convert_x)

    def weights(self, rows: Rows) -> Any:
        """The sample weights of the rows (float64), or None when the feed is unweighted; with
        several outputs a dict of them by output name."""
        if self.w is None:
            return None
        if isinstance(self.w, Several):
            return self.w.take(rows)
        if isinstance(self.w, Lazy):
            return check_weights(self.w.read(rows), self.w.owner, f"rows of {self.w.name}")
        return self.w[rows] if isinstance(rows, slice) else self.w.take(rows)

    def part(self, start: int, stop: int) -> Feed:
        """Rows [start, stop): views, no copy (the validation split)."""
        w = None if self.w is None else _part(self.w, start, stop)
        return Feed(_part(self.x, start, stop), _part(self.y, start, stop), self.convert_x, self.convert_y, w)


    @staticmethod
    def _take(data: Any, rows: Rows, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        if isinstance(data, Lazy):
            return convert(data.read(rows))
        if isinstance(data, Several):
            return data.take(rows)
        # a view for a slice; for indices, take() (copies like [], 2 us faster a batch)
        return data[rows] if isinstance(rows, slice) else data.take(rows, axis=0)


def _part(data: Any, start: int, stop: int) -> Any:
    return data.view(start, stop) if isinstance(data, (Lazy, Several)) else data[start:stop]


T = TypeVar("T")
R = TypeVar("R")


def prefetched(
    items: Iterable[T], load: Callable[[T], R], depth: int, describe: Callable[[T], str]
) -> Iterator[tuple[T, R]]:
    """(item, load(item)) for each item in order, loading up to `depth` items ahead on a
    background thread (depth 0: in this thread). A loader's error is raised here, in the
    caller's thread, naming the item; leaving the loop early stops the thread."""
    if depth <= 0:
        for item in items:
            try:
                loaded = load(item)
            except LaminaError:
                raise
            except Exception as err:
                raise _failed(describe(item), err) from err
            yield item, loaded
        return
    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        for item in items:
            if stop.is_set():
                return
            try:
                result: Any = (item, load(item))
            except BaseException as err:  # handed to the caller, who raises it
                result = _Failure(item, err)
            while not stop.is_set():
                try:
                    ready.put(result, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(result, _Failure):
                return
        ready.put(done)

    thread = threading.Thread(target=work, name="lamina-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = ready.get()
            if got is done:
                return
            if isinstance(got, _Failure):
                if isinstance(got.error, (LaminaError, KeyboardInterrupt, SystemExit)):  # lamina's name the file or row
                    raise got.error
                raise _failed(describe(got.item), got.error) from got.error
            yield got
    finally:
        stop.set()  # an error, Ctrl-C or an early stop in the caller: the thread ends within 0.1 s
        while thread.is_alive():
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _failed(what: str, error: BaseException) -> LaminaError:
    return LaminaError(f"reading {what} failed: {type(error).__name__}: {error}")


class _Failure:
    def __init__(self, item: Any, error: BaseException) -> None:
        self.item, self.error = item, error


def check_weights(weights: Any, owner: str, name: str = "sample_weight") -> np.ndarray:
    """Sample weights as float64 of shape (rows,): finite and non-negative, else an ArgumentError."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ArgumentError(f"{owner}: {name} must be numbers, one weight per row ({err})") from None
    if w.ndim == 2 and w.shape[1] == 1:  # a column, as a CSV's weight column might come
        w = w[:, 0]
    if w.ndim != 1:
        raise ShapeError(f"{owner}: {name} must have one weight per row, shape (rows,); got shape {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ArgumentError(
            f"{owner}: {name} must be finite and >= 0, but row {first} holds {float(w[first])} ({int(bad.sum())} such "
            "row(s)); fix or drop those rows"
        )
    return w
