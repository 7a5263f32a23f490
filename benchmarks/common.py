"""Timing helpers shared by the benchmarks: alternate the contenders, report medians."""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

import lamina
from lamina.app import system

PAUSE = 0.2  # seconds between contenders' blocks (see `alternate`)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call of `fn`, `repeats` times (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def alternate(
    contenders: dict[str, Callable[[], object]], rounds: int, repeats: int, pause: float = PAUSE
) -> dict[str, list[float]]:
    """Run each contender in turn, `rounds` times, so that drifts in machine speed hit all alike.

    Whole blocks alternate (never single numpy and torch calls: their thread pools would fight),
    with `pause` seconds before each block: after a block, OpenBLAS's (or torch's) worker threads
    keep spinning for a while and, on a small machine, slow whichever library runs next. The
    pause lets each be timed as a user running it alone would see it.
    """
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(pause)
            results[name].extend(timed(fn, repeats))
    return results


def summary(times: list[float]) -> tuple[float, float, float]:
    """(median, min, max) in milliseconds."""
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def blas() -> str:
    """numpy's BLAS (library, version, core type, threads; threadpoolctl when installed, else
    numpy's build configuration) and torch's threads, as one line to print with every table."""
    line = system.blas_line()
    try:
        import torch
    except ImportError:
        return f"{line}; torch not installed"
    return f"{line}; torch {torch.get_num_threads()} threads"


def machine() -> str:
    """The CPU, system, versions, and on a second line numpy's BLAS and torch's threads (`blas`)."""
    try:
        import torch

        torch_version = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = "torch not installed"
    return (
        f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, {torch_version}\n{blas()}"
    )


def mnist_like(rows: int):
    """Synthetic MNIST-size data: 784 features in [0, 1], 10 classes."""
    generator = np.random.default_rng(0)
    x = generator.random((rows, 784), dtype=np.float32)
    return x, generator.integers(0, 10, size=rows)


def lamina_mlp(sizes: list[int]) -> lamina.Model:
    """Linear layers of the given widths (the first is the input's) with Relu between them."""
    layers: list = []
    for i, units in enumerate(sizes[1:]):
        layers.append(lamina.layer("Linear", units))
        if i < len(sizes) - 2:
            layers.append(lamina.layer("Relu"))
    return lamina.Model(layers)


class ForwardLinear(lamina.Layer):
    """Linear written forward-only (lamina derives its backward), as a plugin author would."""

    def __init__(self, units: int) -> None:
        self.units = units

    def build(self, x: np.ndarray) -> None:
        init = lamina.initializer("he_uniform")
        self.weight = lamina.Parameter(init((x.shape[-1], self.units), x.dtype))
        self.bias = lamina.Parameter(np.zeros(self.units, x.dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias


class ForwardRelu(lamina.Layer):
    """Relu written forward-only with lamina.ops (one recorded primitive)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return lamina.ops.relu(x)


class ForwardMaximumRelu(lamina.Layer):
    """Relu written forward-only in plain numpy (np.maximum's rule also handles ties)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)


def forward_only_mlp(sizes: list[int], relu: type[lamina.Layer] = ForwardRelu) -> lamina.Model:
    """`lamina_mlp` with forward-only Linear and Relu layers."""
    layers: list = []
    for i, units in enumerate(sizes[1:]):
        layers.append(ForwardLinear(units))
        if i < len(sizes) - 2:
            layers.append(relu())
    return lamina.Model(layers)


def residual_mlp(width: int, blocks: int, classes: int, skip: bool = True) -> lamina.Model:
    """Linear(width), then `blocks` x [Linear(width), Relu] each inside a Residual (or, with
    skip=False, the same layers in a plain stack), then Linear(classes)."""
    middle: list = []
    for _ in range(blocks):
        block = [lamina.layer("Linear", width), lamina.layer("Relu")]
        middle += [lamina.layer("Residual", block)] if skip else block
    return lamina.Model([lamina.layer("Linear", width), lamina.layer("Relu"), *middle, lamina.layer("Linear", classes)])
