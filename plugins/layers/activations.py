"""Activations, element-wise or along the last axis. No parameters.

Each is a thin layer over a row of `lamina.ops` (value, derivative and ONNX form written once,
there): forward calls the op's value on plain arrays (`.value`: a hand-written layer sees no
traced values), backward its rule (`.grad`), to_onnx its ONNX form (`.to_onnx`).
Gelu is forward-only (traced: one recorded node). Sigmoid, Relu, Tanh, Softmax, LeakyRelu, Elu,
Gelu, Softplus, Silu, LogSoftmax; each stays finite for inputs of any magnitude.
"""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case, away_from_zero


class Sigmoid(lamina.Layer):
    """y = 1 / (1 + exp(-x)), element-wise; any shape. dy/dx = y (1 - y)."""

    keeps = ("_y",)  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = lamina.ops.sigmoid.value(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.sigmoid.grad(grad, self._y, None)

    def to_onnx(self, graph, x):
        return lamina.ops.sigmoid.to_onnx(graph, x)


class Relu(lamina.Layer):
    """y = max(0, x), element-wise; any shape. dy/dx = 1 where x > 0, else 0."""

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(input=away_from_zero)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = lamina.ops.relu.value(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.relu.grad(grad, self._y, None)

    def to_onnx(self, graph, x):
        return lamina.ops.relu.to_onnx(graph, x)


class Tanh(lamina.Layer):
    """y = tanh(x), element-wise; any shape. dy/dx = 1 - y^2."""

    keeps = ("_y",)  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = lamina.ops.tanh(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.tanh.grad(grad, self._y, None)

    def to_onnx(self, graph, x):
        return lamina.ops.tanh.to_onnx(graph, x)


class Softmax(lamina.Layer):
    """y_i = exp(x_i) / sum_j exp(x_j) along the last axis; any shape.

    Backward in O(n) per row, without the (n, n) Jacobian: dx = y * (g - sum(g * y)).
    """

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(), Case(shape=(2, 3, 4))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = lamina.ops.softmax.value(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.softmax.grad(grad, self._y, None)

    def to_onnx(self, graph, x):
        return lamina.ops.softmax.to_onnx(graph, x)


class LeakyRelu(lamina.Layer):
    """y = x where x > 0, else alpha x (PyTorch's negative_slope); dy/dx = 1 or alpha."""

    keeps = ("_x",)  # what forward keeps for backward

    conformance_cases = [Case({"alpha": 0.1}, input=away_from_zero)]

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = lamina.checks.non_negative_number(alpha, "alpha", "LeakyRelu", example=0.01)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return lamina.ops.leaky_relu.value(x, self.alpha)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.leaky_relu.grad(grad, None, self._x, alpha=self.alpha)

    def to_onnx(self, graph, x):
        return lamina.ops.leaky_relu.to_onnx(graph, x, alpha=self.alpha)


class Elu(lamina.Layer):
    """y = x where x > 0, else alpha (exp(x) - 1); dy/dx = 1, or y + alpha below 0."""

    keeps = ("_x", "_y")  # what forward keeps for backward

    conformance_cases = [Case({"alpha": 1.5}, input=away_from_zero)]

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = lamina.checks.positive_number(alpha, "alpha", "Elu", example=1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x, self._y = x, lamina.ops.elu.value(x, self.alpha)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.elu.grad(grad, self._y, self._x, alpha=self.alpha)

    def to_onnx(self, graph, x):
        return lamina.ops.elu.to_onnx(graph, x, alpha=self.alpha)


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
        return lamina.ops.softplus.value(x)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.softplus.grad(grad, None, self._x)

    def to_onnx(self, graph, x):
        return lamina.ops.softplus.to_onnx(graph, x)


class Silu(lamina.Layer):
    """y = x sigmoid(x) (swish); dy/dx = s (1 + x (1 - s)) with s = sigmoid(x)."""

    keeps = ("_x", "_s")  # what forward keeps for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._s = lamina.ops.silu.value(x)  # the row's value and the sigmoid its rule needs
        self._x = x
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.silu.grad(grad, self._s, self._x)

    def to_onnx(self, graph, x):
        return lamina.ops.silu.to_onnx(graph, x)


class LogSoftmax(lamina.Layer):
    """y = x - logsumexp(x) along the last axis, with each row's max subtracted first;
    dx = g - softmax(x) * sum(g). Follow it with CrossEntropy(from_logits=True)."""

    keeps = ("_y",)  # what forward keeps for backward

    conformance_cases = [Case(), Case(shape=(2, 3, 4))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = lamina.ops.log_softmax.value(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return lamina.ops.log_softmax.grad(grad, self._y, None)

    def to_onnx(self, graph, x):
        return lamina.ops.log_softmax.to_onnx(graph, x)


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
