"""Snake: a periodic activation with a trainable frequency, as a third-party lamina plugin.

Two versions of one layer: `Snake` writes only its forward (lamina derives the backward), and
`FastSnake` also writes its backward by hand (the fast path). Both pass lamina's conformance
kit and give the same gradients; `FastSnake` records no graph, so it takes less time and memory
per step. Start with the first; write the second when a profile says the layer matters.
"""
from __future__ import annotations

import numpy as np

import lamina


class Snake(lamina.Layer):
    """y = x + sin^2(a x) / a, element-wise over (..., features); a trainable "alpha" (features,)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = lamina.checks.positive_number(alpha, "alpha", "Snake", example=1.0)

    def build(self, x: np.ndarray) -> None:
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        self.a = lamina.Parameter(np.full(x.shape[-1], self.alpha, dtype=dtype))

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {"alpha": self.a} if "a" in vars(self) else {}  # saved as "alpha", as FastSnake's

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + np.sin(self.a * x) ** 2 / self.a


class FastSnake(Snake):
    """Snake with a hand-written backward:
    dy/dx = 1 + sin(2 a x);  dy/da = x sin(2 a x) / a - sin^2(a x) / a^2."""

    keeps = ("_x", "_sin")  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._sin = np.sin(self.a.value * x)
        return x + self._sin**2 / self.a.value

    def backward(self, grad: np.ndarray) -> np.ndarray:
        a, x, sin = self.a.value, self._x, self._sin
        sin2ax = np.sin(2 * a * x)
        dy_da = x * sin2ax / a - sin**2 / a**2
        self.a.grad += (grad * dy_da).reshape(-1, a.shape[0]).sum(axis=0)  # add, never assign
        return grad * (1 + sin2ax)


@lamina.hookimpl
def register_layers(register):
    register(Snake)
    register(FastSnake)
