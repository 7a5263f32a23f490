"""Case: how to exercise a plugin in the conformance kit, and the sample-input makers.

Plugins attach `conformance_cases = [Case(...)]` to their classes; this module is all they
import for it, so loading a plugin never loads the kit itself (`lamina.testing`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from attrs import field, frozen

Maker = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


# -- sample inputs -------------------------------------------------------------------------------


def normal(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values."""
    return generator.normal(size=shape)


def away_from_zero(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values at least 0.1 from 0, for functions with a kink there (Relu)."""
    x = generator.normal(size=shape)
    return np.sign(x) * (0.1 + np.abs(x))


def distinct(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.01 apart, for functions that pick a maximum (MaxPool2D)."""
    return generator.permutation(math.prod(shape)).reshape(shape) * 0.01


def probabilities(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of probabilities along the last axis, none below 0.02."""
    p = generator.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


def open_unit(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in (0.05, 0.95), e.g. sigmoid outputs."""
    return generator.uniform(0.05, 0.95, size=shape)


def integers(high: int) -> Maker:
    """A maker of integer ids in [0, high), e.g. for Embedding."""

    def make(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return generator.integers(0, high, size=shape)

    return make


def labels_for(generator: np.random.Generator, pred: np.ndarray) -> np.ndarray:
    """Integer class labels for pred of shape (samples, classes)."""
    return generator.integers(0, pred.shape[-1], size=int(pred.shape[0]))


def binary_for(generator: np.random.Generator, pred: np.ndarray) -> np.ndarray:
    """0/1 targets of pred's shape."""
    return generator.integers(0, 2, size=pred.shape).astype(np.float64)


def normal_for(generator: np.random.Generator, pred: np.ndarray) -> np.ndarray:
    """Normal targets of pred's shape."""
    return generator.normal(size=pred.shape)


@frozen
class Case:
    """One way to exercise a plugin: its constructor arguments and its sample input.

    For a layer, `shape` is the input's shape and `wrong_shape` (optional) one it must reject
    with a ShapeError; for a loss, `shape` is pred's shape and `target` makes y from pred;
    for an optimizer, `shape` is the parameter's shape.

    `reference` checks the maths: for a layer `reference(layer, x)` returns what the built layer
    should output for x with its current weights, for a loss `reference(loss, pred, y)` its
    value; written independently (numpy, or PyTorch in a test), and compared in float64 within
    `tolerance`. `causal_axis` (a layer's) is the axis along which output position t may depend
    on input positions <= t only (time in a causal sequence layer); the kit checks outputs and
    input gradients for it.
    """

    kwargs: dict[str, Any] = field(factory=dict)
    shape: tuple[int, ...] = (4, 3)
    input: Maker = normal
    target: Callable[[np.random.Generator, np.ndarray], np.ndarray] = normal_for
    wrong_shape: tuple[int, ...] | None = None
    tolerance: float = 1e-6
    min_batch: int = 1  # e.g. 2 for BatchNorm over (batch, features) in training
    reference: Callable[..., Any] | None = None
    causal_axis: int | None = None
