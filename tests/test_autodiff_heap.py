"""A closed record's memory stays with the process for the next forward (issue 28): glibc hands
a freed heap top back to the system at once, and the next forward of a loop faulted every page in
again (a GRU loop's step took 19-20 ms instead of 14, in about half the processes)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource
import numpy as np
from lamina.autodiff import Tape
Tape().close()
def forward():  # what a record holds: a thousand small arrays, freed together
    kept = [np.ones(4096, np.float32) for _ in range(1000)]
    del kept
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
forward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap thresholds")
def test_a_second_forward_reuses_the_freed_heap_without_page_faults():
    # in a fresh process: the thresholds are per process, and the tests before may have raised them
    faults = int(subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout)
    assert faults < 500, f"{faults} page faults for 16 MB freed and made again (3,600 when the heap is trimmed)"
