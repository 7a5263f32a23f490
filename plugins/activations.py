"""Element-wise and row-wise activations: Sigmoid, Relu, Tanh, Softmax. No parameters."""
from __future__ import annotations

import numpy as np

import lamina


class Sigmoid(lamina.Layer):
    """y = 1 / (1 + exp(-x)), element-wise; any shape. dy/dx = y (1 - y)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # The tanh form equals the logistic function and cannot overflow for large |x|.
        y = np.tanh(x * 0.5)
        y += 1
        y *= 0.5
        self._y = y
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        y = self._y
        return grad * y * (1 - y)


class Relu(lamina.Layer):
    """y = max(0, x), element-wise; any shape. dy/dx = 1 where x > 0, else 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self._mask


class Tanh(lamina.Layer):
    """y = tanh(x), element-wise; any shape. dy/dx = 1 - y^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * (1 - self._y**2)


class Softmax(lamina.Layer):
    """y_i = exp(x_i) / sum_j exp(x_j) along the last axis; any shape.

    Backward in O(n) per row, without the (n, n) Jacobian: dx = y * (g - sum(g * y)).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Subtracting each row's own max leaves the result unchanged and keeps exp finite.
        y = np.exp(x - x.max(axis=-1, keepdims=True))
        y /= y.sum(axis=-1, keepdims=True)
        self._y = y
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        y = self._y
        return y * (grad - (grad * y).sum(axis=-1, keepdims=True))


@lamina.hookimpl
def register_layers(register):
    register(Sigmoid)
    register(Relu)
    register(Tanh)
    register(Softmax)
