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

    dy/dx = scale;  dL/dscale = sum over the batch of dL/dy * x.
    """

    # How lamina's conformance kit (and `lamina check-plugins`) builds and feeds this layer.
    conformance_cases = [Case({"init": 0.5}, (4, 3), wrong_shape=(4, 5)), Case(shape=(2, 3, 4))]

    def __init__(self, init: float = 1.0) -> None:
        # Constructor arguments are stored under their own names: saving and loading need it.
        self.init = lamina.checks.positive_number(init, "init", "Scale", example=1.0)
        self.scale: lamina.Parameter | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.scale is None else {"scale": self.scale}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.scale is None:  # built on the first input, in its floating dtype
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            self.scale = lamina.Parameter(np.full(x.shape[-1], self.init, dtype=dtype))
        if x.shape[-1] != self.scale.shape[0]:
            raise lamina.ShapeError(
                f"Scale(init={self.init}) was built for {self.scale.shape[0]} features (last axis) "
                f"but got shape {x.shape}"
            )
        self._x = x
        return x * self.scale.value

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # Add into .grad (never assign): lamina accumulates gradients.
        self.scale.grad += (grad * self._x).reshape(-1, self.scale.shape[0]).sum(axis=0)
        return grad * self.scale.value


class LogCosh(lamina.Loss):
    """mean(log(cosh(pred - y))) over every element: quadratic near 0, linear far away.

    Computed as |d| + log1p(exp(-2|d|)) - log 2, which cannot overflow; dL/dpred = tanh(d) / size.
    """

    conformance_cases = [Case(shape=(4, 3)), Case(shape=(6,))]

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = lamina.checks.as_numeric(y, "y", "LogCosh")
        if pred.shape != y.shape:
            raise lamina.ShapeError(f"LogCosh: pred has shape {pred.shape} but y has shape {y.shape}; they must match")
        self._diff = d = pred - y.astype(pred.dtype, copy=False)
        a = np.abs(d)
        return float(np.mean(a + np.log1p(np.exp(-2 * a)) - np.log(2.0)))

    def backward(self) -> np.ndarray:
        return np.tanh(self._diff) * (1.0 / self._diff.size)


@lamina.hookimpl
def register_layers(register):
    register(Scale)


@lamina.hookimpl
def register_losses(register):
    register(LogCosh, aliases=("log_cosh",))
