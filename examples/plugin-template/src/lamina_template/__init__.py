"""lamina-template: one layer and one loss, registered with lamina by name.

Copy this package, rename it, and replace the two classes with yours.
"""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case

__version__ = "0.1.0"


class Scale(lamina.Layer):
    """y = x * scale, element-wise over (..., features); a trainable "scale" (features,).

    Only the forward is written: lamina records it while training and derives the backward
    (dL/dx and dL/dscale). See docs/pages/writing-plugins.md for when to hand-write a backward.
    """

    # How lamina's conformance kit (and `lamina check-plugins`) builds and feeds this layer.
    conformance_cases = [Case({"init": 0.5}, (4, 3), wrong_shape=(4, 5)), Case(shape=(2, 3, 4))]

    def __init__(self, init: float = 1.0) -> None:
        # Constructor arguments are stored under their own names: saving and loading need it.
        self.init = lamina.checks.positive_number(init, "init", "Scale", example=1.0)

    def build(self, x: np.ndarray) -> None:
        # Called once, with the first input: weights whose shape depends on it are made here,
        # in its floating dtype. Parameter attributes are found by name ("scale").
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        self.scale = lamina.Parameter(np.full(x.shape[-1], self.init, dtype=dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.scale.shape[0]:
            raise lamina.ShapeError(
                f"Scale(init={self.init}) was built for {self.scale.shape[0]} features (last axis) "
                f"but got shape {x.shape}"
            )
        return x * self.scale  # a Parameter is a numpy operand


class LogCosh(lamina.Loss):
    """mean(log(cosh(pred - y))) over every element: quadratic near 0, linear far away.

    Computed as |d| + log1p(exp(-2|d|)) - log 2, which cannot overflow. Only the forward is
    written: `loss.backward()` is derived from it.
    """

    conformance_cases = [Case(shape=(4, 3)), Case(shape=(6,))]

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = lamina.checks.as_numeric(y, "y", "LogCosh")
        if pred.shape != y.shape:
            raise lamina.ShapeError(f"LogCosh: pred has shape {pred.shape} but y has shape {y.shape}; they must match")
        a = np.abs(pred - y.astype(pred.dtype, copy=False))
        return np.mean(a + np.log1p(np.exp(-2 * a)) - np.log(2.0))


@lamina.hookimpl
def register_layers(register):
    register(Scale)


@lamina.hookimpl
def register_losses(register):
    register(LogCosh, aliases=("log_cosh",))
