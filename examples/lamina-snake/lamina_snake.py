"""Snake: a periodic activation with a trainable frequency, as a third-party lamina plugin."""
from __future__ import annotations

import numpy as np

import lamina


class Snake(lamina.Layer):
    """y = x + sin^2(a x) / a, element-wise over (..., features); a trainable "alpha" (features,).

    dy/dx = 1 + sin(2 a x);  dy/da = x sin(2 a x) / a - sin^2(a x) / a^2.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = lamina.checks.positive_number(alpha, "alpha", "Snake", example=1.0)
        self.a: lamina.Parameter | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.a is None else {"alpha": self.a}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.a is None:
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            self.a = lamina.Parameter(np.full(x.shape[-1], self.alpha, dtype=dtype))
        self._x = x
        self._sin = np.sin(self.a.value * x)
        return x + self._sin**2 / self.a.value

    def backward(self, grad: np.ndarray) -> np.ndarray:
        a, x, sin = self.a.value, self._x, self._sin
        sin2ax = np.sin(2 * a * x)
        dy_da = x * sin2ax / a - sin**2 / a**2
        self.a.grad += (grad * dy_da).reshape(-1, a.shape[0]).sum(axis=0)
        return grad * (1 + sin2ax)


@lamina.hookimpl
def register_layers(register):
    register(Snake)
