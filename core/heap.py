"""The process's policy for freed memory: keep it for the next step (glibc's heap thresholds)."""
from __future__ import annotations

import numpy as np

_held = False
_HELD_BYTES = 32 * 2**20 - 2**16  # under glibc's cap on the dynamic threshold (32 MiB on 64-bit)


def hold() -> None:
    """Keep freed memory for the next step, once per process (the first training run or closed
    record calls it). glibc serves blocks over its mmap threshold (128 KiB) with fresh mappings,
    unmapped when freed, and hands a freed heap top of over 128 KiB back to the system at once:
    every step then faults its pages in again, zeroed by the kernel (a GRU loop of 40 steps: 3,600
    page faults, 12 ms instead of 7; a LeNet-style CNN step at batch 64: 4,200, 30 ms instead of 27).
    glibc raises both thresholds when a mapped block is freed (mallopt(3), M_MMAP_THRESHOLD: to its
    size, and the trim threshold to twice that): one untouched 32 MiB array, made and freed, puts
    arrays of up to 32 MiB on the heap and keeps up to 64 MiB of it freed for reuse. Elsewhere it
    costs nothing; where MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_ is set, glibc keeps the
    setting."""
    global _held
    if _held:
        return
    _held = True
    block = np.empty(_HELD_BYTES, dtype=np.uint8)  # never written: no page of it is touched
    del block
