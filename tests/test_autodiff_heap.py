"""A closed record's memory, and a training step's, stays with the process for the next forward
(issues 28 and 30, lamina.heap): glibc hands a freed heap top back to the system at once, and
serves large arrays with fresh mappings; the next forward of a loop faulted every page in again
(a GRU loop's step took 19-20 ms instead of 14, in about half the processes; a LeNet-style CNN
step faulted 4,200 pages, 30 ms instead of 27)."""
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


TRAINED = """
import resource
import numpy as np
import lamina
model = lamina.Model([lamina.layer("Linear", 2)])
model.train(np.zeros((4, 3)), np.zeros((4, 2)), loss="MSE", epochs=1, verbose=False)
def step():  # what a convolution's step makes and frees: arrays of a few MB, written
    kept = [np.ones(2**20, np.float32) for _ in range(4)]
    del kept
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap thresholds")
def test_after_training_starts_large_freed_arrays_are_reused_without_page_faults():
    faults = int(subprocess.run([sys.executable, "-c", TRAINED], capture_output=True, text=True, check=True).stdout)
    assert faults < 500, f"{faults} page faults for 16 MB freed and made again (4,096 when each is a fresh mapping)"
