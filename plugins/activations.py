"""Activations, element-wise or along the last axis. No parameters.

Each exports to ONNX as its operator (`to_onnx`); Gelu, forward-only, is traced.

Sigmoid, Relu, Tanh, Softmax, LeakyRelu, Elu, Gelu, Softplus, Silu, LogSoftmax; each
formula is written so that it stays finite for inputs of any magnitude.
"""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case, away_from_zero


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form equals the logistic function and cannot overflow for large |x|.
    y = np.tanh(x * 0.5)
    y += 1
    y *= 0.5
    return y


class Sigmoid(lamina.Layer):
    """y = 1 / (1 + exp(-x)), element-wise; any shape. dy/dx = y (1 - y)."""

    keeps = ("_y",)  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = _sigmoid(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        y = self._y
        return grad * y * (1 - y)

    def to_onnx(self, graph, x):
        return graph.op("Sigmoid", x)


class Relu(lamina.Layer):
    """y = max(0, x), element-wise; any shape. dy/dx = 1 where x > 0, else 0."""

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(input=away_from_zero)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * (self._y > 0)

    def to_onnx(self, graph, x):
        return graph.op("Relu", x)


class Tanh(lamina.Layer):
    """y = tanh(x), element-wise; any shape. dy/dx = 1 - y^2."""

    keeps = ("_y",)  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * (1 - self._y**2)

    def to_onnx(self, graph, x):
        return graph.op("Tanh", x)


class Softmax(lamina.Layer):
    """y_i = exp(x_i) / sum_j exp(x_j) along the last axis; any shape.

    Backward in O(n) per row, without the (n, n) Jacobian: dx = y * (g - sum(g * y)).
    """

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(), Case(shape=(2, 3, 4))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Subtracting each row's own max leaves the result unchanged and keeps exp finite.
        y = np.exp(x - x.max(axis=-1, keepdims=True))
        y /= y.sum(axis=-1, keepdims=True)
        self._y = y
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        y = self._y
        return y * (grad - (grad * y).sum(axis=-1, keepdims=True))

    def to_onnx(self, graph, x):
        return graph.op("Softmax", x, axis=-1)


class LeakyRelu(lamina.Layer):
    """y = x where x > 0, else alpha x (PyTorch's negative_slope); dy/dx = 1 or alpha."""

    keeps = ("_slope",)  # what forward keeps for backward

    conformance_cases = [Case({"alpha": 0.1}, input=away_from_zero)]

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = lamina.checks.non_negative_number(alpha, "alpha", "LeakyRelu", example=0.01)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype, copy=False)
        return x * self._slope

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self._slope

    def to_onnx(self, graph, x):
        return lamina.ops.leaky_relu(lamina.export.Symbolic(graph, x, graph.example(x)), self.alpha).name  # as ops writes it


class Elu(lamina.Layer):
    """y = x where x > 0, else alpha (exp(x) - 1); dy/dx = 1, or y + alpha below 0."""

    keeps = ("_positive", "_negative")  # what forward keeps for backward

    conformance_cases = [Case({"alpha": 1.5}, input=away_from_zero)]

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = lamina.checks.positive_number(alpha, "alpha", "Elu", example=1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        # expm1 of min(x, 0): exact near 0 and never overflows for large positive x.
        self._negative = self.alpha * np.expm1(np.minimum(x, 0))
        return np.where(self._positive, x, self._negative)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * np.where(self._positive, 1.0, self._negative + self.alpha).astype(grad.dtype, copy=False)

    def to_onnx(self, graph, x):
        return lamina.ops.elu(lamina.export.Symbolic(graph, x, graph.example(x)), self.alpha).name  # as ops writes it


class Gelu(lamina.Layer):
    """y = x Phi(x), Phi the standard normal CDF, as torch.nn.GELU.

    approximate="none": Phi(x) = (1 + erf(x / sqrt 2)) / 2, dy/dx = Phi(x) + x phi(x).
    approximate="tanh": Phi(x) ~ (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3).
    Written forward-only over `lamina.ops.gelu`, which records one node with the exact
    derivative (in float32 computed in the same sweep as the value).
    """

    conformance_cases = [Case(), Case({"approximate": "tanh"}, (2, 3, 4))]

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise lamina.ArgumentError(
                f"Gelu(approximate={approximate!r}): approximate must be 'none' (exact, with erf) or 'tanh'"
            )
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        return lamina.ops.gelu(x, approximate=self.approximate)


class Softplus(lamina.Layer):
    """y = log(1 + exp(x)), computed as logaddexp(0, x) (finite for any x); dy/dx = sigmoid(x)."""

    keeps = ("_x",)  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * _sigmoid(self._x)

    def to_onnx(self, graph, x):
        return lamina.ops.softplus(lamina.export.Symbolic(graph, x, graph.example(x))).name  # as ops writes it


class Silu(lamina.Layer):
    """y = x sigmoid(x) (swish); dy/dx = s (1 + x (1 - s)) with s = sigmoid(x)."""

    keeps = ("_x", "_s")  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x, self._s = x, _sigmoid(x)
        return x * self._s

    def backward(self, grad: np.ndarray) -> np.ndarray:
        s = self._s
        return grad * (s * (1 + self._x * (1 - s)))

    def to_onnx(self, graph, x):
        return graph.op("Mul", x, graph.op("Sigmoid", x))


class LogSoftmax(lamina.Layer):
    """y = x - logsumexp(x) along the last axis, with each row's max subtracted first;
    dx = g - softmax(x) * sum(g). Follow it with CrossEntropy(from_logits=True)."""

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(), Case(shape=(2, 3, 4))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        shifted = x - x.max(axis=-1, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        self._y = y
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad - np.exp(self._y) * grad.sum(axis=-1, keepdims=True)

    def to_onnx(self, graph, x):
        return graph.op("LogSoftmax", x, axis=-1)


@lamina.hookimpl
def register_layers(register):
    register(Sigmoid)
    register(Relu)
    register(Tanh)
    register(Softmax)
    register(LeakyRelu)
    register(Elu)
    register(Gelu)
    register(Softplus)
    register(Silu, aliases=("Swish",))
    register(LogSoftmax)
