"""Timing helpers shared by the benchmarks: alternate the contenders, report medians."""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

import lamina


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call of `fn`, `repeats` times (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def alternate(contenders: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, list[float]]:
    """Run each contender in turn, `rounds` times, so that drifts in machine speed hit all alike.

    Whole blocks alternate (never single numpy and torch calls: their thread pools would fight).
    """
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            results[name].extend(timed(fn, repeats))
    return results


def summary(times: list[float]) -> tuple[float, float, float]:
    """(median, min, max) in milliseconds."""
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def machine() -> str:
    try:
        import torch

        torch_version = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = "torch not installed"
    return (
        f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, {torch_version}"
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
