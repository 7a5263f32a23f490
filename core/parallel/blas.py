"""numpy's BLAS thread count, read and set through the library's own functions (OpenBLAS)."""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np

# OpenBLAS's names for its thread count: plain, 64-bit-integer builds (suffix 64_), and the
# builds numpy's wheels bundle (prefix scipy_, since numpy 2.0).
_NAMES = [(prefix, suffix) for prefix in ("", "scipy_") for suffix in ("", "64_")]


@cache
def _controls() -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) of the threads of each OpenBLAS in the process (SciPy bundles its own),
    numpy's first; none for another BLAS (MKL, Accelerate), and lamina then leaves threads to it."""
    if "openblas" not in str(_numpy_blas()).lower():
        return []
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # numpy loads its BLAS lazily on some builds
    home = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    found = []
    for path in _loaded_libraries():
        if "openblas" not in os.path.basename(path).lower():
            continue
        try:
            library = ctypes.CDLL(path)  # already loaded: this only finds it again
        except OSError:
            continue
        for prefix, suffix in _NAMES:
            getter = getattr(library, f"{prefix}openblas_get_num_threads{suffix}", None)
            setter = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
            if getter is not None and setter is not None:
                getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                parallel = getattr(library, f"{prefix}openblas_get_parallel{suffix}", None)
                if parallel is not None:
                    parallel.restype = ctypes.c_int
                    if parallel() == 2:  # an OpenMP build: its count is per thread, lamina stays out
                        return []
                # numpy's wheels keep it in numpy.libs/ (or numpy/.dylibs/) beside the package
                ours = os.path.abspath(path).startswith(os.path.join(home, "numpy"))
                found.append((not ours, getter, setter))
                break
    found.sort(key=lambda entry: entry[0])
    return [(getter, setter) for _, getter, setter in found]


def _numpy_blas() -> object:
    """The name of the BLAS numpy was built with (numpy's build configuration)."""
    try:
        return np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):  # numpy < 1.26 keeps it elsewhere: assume OpenBLAS
        return "openblas"


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (Linux's /proc; threadpoolctl's
    finder elsewhere when it is installed)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return list(dict.fromkeys(line.split(None, 5)[-1].strip() for line in maps if ".so" in line))
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [entry["filepath"] for entry in threadpool_info() if entry.get("internal_api") == "openblas"]


def available() -> bool:
    """Whether lamina can set numpy's BLAS threads (OpenBLAS found)."""
    return bool(_controls())


def held() -> bool:
    """Whether a `blas_threads` block is open now (in any thread)."""
    return _inside > 0


def current() -> int:
    """numpy's BLAS threads outside lamina's blocks (1 when lamina cannot read them): inside a
    `blas_threads` block, the count it will give back."""
    controls = _controls()
    if not controls:
        return 1
    with _lock:
        return max(1, _saved[0] if _inside else controls[0][0]())


_lock = threading.Lock()
_inside = 0  # parallel regions open now (over all threads)
_saved: list[int] = []  # each OpenBLAS's threads before the first of them


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """numpy's BLAS on `count` threads inside the block, as before after it. Nested and
    concurrent blocks share one setting: the first sets it, the last gives the old one back."""
    global _inside, _saved
    controls = _controls()
    with _lock:
        if _inside == 0:
            _saved = [get() for get, _ in controls]
            for _, put in controls:
                put(count)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                for (_, put), saved in zip(controls, _saved):
                    put(saved)
