"""What this machine runs lamina's maths on: numpy's BLAS (library, version, core type, threads)
and whether the CPU could run a faster OpenBLAS kernel than the one it picked.

numpy's bundled OpenBLAS chooses its kernels (its "core type") from the CPU at import time and
sometimes chooses below what the CPU can do: its Zen or Haswell (AVX2) kernels on an AVX-512 CPU,
or Prescott/Sandybridge where a virtual machine hides the CPU's name. The environment variable
OPENBLAS_CORETYPE overrides the choice. threadpoolctl (`pip install lamina[info]`) reports the
core type and threads; without it, numpy's build configuration gives the library and version.

>>> faster_kernel({"avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}, "Zen")
'SkylakeX'
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import lamina

# OpenBLAS core types whose kernels use at most AVX2 (what the CPU's flags may beat).
_AVX2_AT_MOST = {"zen", "haswell", "sandybridge", "prescott", "nehalem", "core2", "atom", "barcelona", "bulldozer",
                 "piledriver", "steamroller", "excavator", "katmai", "coppermine", "northwood", "penryn", "dunnington",
                 "opteron", "opteron_sse3"}
_AVX_AT_MOST = _AVX2_AT_MOST - {"zen", "haswell", "excavator", "steamroller"}
# What OpenBLAS's SkylakeX kernels need, as /proc/cpuinfo names the flags.
_AVX512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def faster_kernel(flags: Iterable[str], core_type: str | None) -> str | None:
    """The OPENBLAS_CORETYPE worth trying, or None: SkylakeX where the CPU has AVX-512 but
    OpenBLAS picked an AVX2-or-older kernel, Haswell where it has AVX2 and FMA but OpenBLAS
    picked an older one. `flags` as /proc/cpuinfo names them; `core_type` as OpenBLAS does
    (None or "" when the BLAS is not OpenBLAS or its core type is unknown)."""
    if not core_type:
        return None
    have, core = {flag.lower() for flag in flags}, core_type.lower()
    if _AVX512 <= have and core in _AVX2_AT_MOST:
        return "SkylakeX"
    if {"avx2", "fma"} <= have and core in _AVX_AT_MOST:
        return "Haswell"
    return None


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); an empty set where there is none."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _from_threadpoolctl() -> dict[str, Any] | None:
    """numpy's BLAS as threadpoolctl sees it, or None without threadpoolctl (or without a BLAS)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    found = [pool for pool in threadpoolctl.threadpool_info() if pool.get("user_api") == "blas"]
    if not found:
        return None
    # With torch or scipy loaded there can be several: numpy's own sits under numpy's folder
    # (numpy.libs in the wheels).
    mine = [pool for pool in found if "numpy" in str(pool.get("filepath", ""))] or found
    pool = mine[0]
    return {
        "library": pool.get("internal_api") or pool.get("prefix") or "unknown",
        "version": pool.get("version") or "unknown",
        "core_type": pool.get("architecture") or None,
        "threads": pool.get("num_threads"),
        "source": "threadpoolctl",
    }


def _from_numpy_config() -> dict[str, Any]:
    """numpy's BLAS from its build configuration: library and version; no core type or threads."""
    library = version = "unknown"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # numpy >= 1.26
        library, version = blas.get("name") or library, blas.get("version") or version
    except Exception:  # older numpy, or a build without that section: the library stays unknown
        pass
    threads = next((int(os.environ[v]) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                    if os.environ.get(v, "").isdigit()), None)
    return {"library": library, "version": version, "core_type": None, "threads": threads, "source": "numpy config"}


def blas() -> dict[str, Any]:
    """numpy's BLAS: library, version, core_type (None when unknown), threads (None when unknown)
    and source ("threadpoolctl" or "numpy config")."""
    return _from_threadpoolctl() or _from_numpy_config()


def blas_line(found: dict[str, Any] | None = None) -> str:
    """One line for tables and reports, e.g. 'BLAS: openblas 0.3.31, core type SkylakeX, 2 threads'."""
    found = found or blas()
    core = found["core_type"] or 'unknown (pip install "lamina[info]" to see it)'
    threads = found["threads"] if found["threads"] is not None else "unknown"
    return f"BLAS: {found['library']} {found['version']}, core type {core}, {threads} threads"


def report(flags: Iterable[str] | None = None) -> dict[str, Any]:
    """What `lamina info` shows without a model: versions, numpy's BLAS and the kernel to try."""
    found = blas()
    core = found["core_type"] if "openblas" in str(found["library"]).lower() else None
    try_core = faster_kernel(cpu_flags() if flags is None else flags, core)
    return {"lamina": lamina.__version__, "numpy": np.__version__, "blas": found,
            "threads": lamina.parallel.threads(),
            "env": {v: os.environ[v] for v in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                               "LAMINA_NUM_THREADS") if v in os.environ},
            "try_coretype": try_core}


def describe(info: dict[str, Any]) -> list[str]:
    """`report()` as the lines `lamina info` prints."""
    lines = [f"lamina {info['lamina']}, numpy {info['numpy']}", blas_line(info["blas"])]
    if info["threads"] > 1:
        lines.append(f"lamina's threads: {info['threads']} (convolutions and pools split their batch over them, "
                     "numpy's BLAS on one thread each; LAMINA_NUM_THREADS=1 turns them off)")
    else:
        lines.append("lamina's threads: 1 (layers leave the cores to numpy's BLAS; LAMINA_NUM_THREADS=2 or more "
                     "splits convolutions and pools where numpy's BLAS is OpenBLAS)")
    if info["env"]:
        lines.append("set: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    if info["try_coretype"]:
        lines.append(
            f"this CPU can run OpenBLAS's {info['try_coretype']} kernels, faster than {info['blas']['core_type']}: "
            f"try OPENBLAS_CORETYPE={info['try_coretype']} (set before Python starts, e.g. "
            f"OPENBLAS_CORETYPE={info['try_coretype']} lamina train ...)"
        )
    return lines
