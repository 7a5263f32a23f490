"""Losses: MSE, L1, Huber, CrossEntropy, BinaryCrossEntropy.

Each returns a mean (over elements, or over samples for CrossEntropy) and its backward is the
derivative of exactly that mean.
"""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case, binary_for, labels_for, open_unit, probabilities
from lamina.plugins.layers.activations import Sigmoid, Softmax
from lamina.plugins.training._targets import as_labels, class_targets, fold_steps, same_shape_target

# Probabilities are clipped to [EPS, 1 - EPS] before the log, as Keras does; the gradient is
# that of the clipped value (zero where clipping is active), so it matches what is returned.
EPS = 1e-7


class MSE(lamina.Loss):
    """mean((pred - y)^2) over every element; pred and y of the same shape.

    dL/dpred = 2 (pred - y) / pred.size: the derivative of the mean that is returned.
    """

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        self._diff = pred - same_shape_target("MSE", pred, y)
        return float(np.mean(np.square(self._diff)))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)


class L1(lamina.Loss):
    """mean(|pred - y|) over every element; dL/dpred = sign(pred - y) / pred.size."""

    conformance_cases = [Case(shape=(4, 3))]

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        self._diff = pred - same_shape_target("L1", pred, y)
        return float(np.mean(np.abs(self._diff)))

    def backward(self) -> np.ndarray:
        return np.sign(self._diff) * (1.0 / self._diff.size)


class Huber(lamina.Loss):
    """mean of 0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2); d = pred - y.

    dL/dpred = d (or delta * sign(d) beyond delta) / pred.size, as torch.nn.HuberLoss.
    """

    conformance_cases = [Case(), Case({"delta": 0.3})]

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = lamina.checks.positive_number(delta, "delta", "Huber", example=1.0)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        d = pred - same_shape_target("Huber", pred, y)
        self._diff = d
        a = np.abs(d)
        values = np.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        return float(np.mean(values))

    def backward(self) -> np.ndarray:
        d = self._diff
        return np.clip(d, -self.delta, self.delta) * (1.0 / d.size)


class CrossEntropy(lamina.Loss):
    """-mean over samples of sum_c y_c log p_c, for pred of shape (samples, classes).

    pred holds probabilities (e.g. after Softmax), or logits when `from_logits=True`, where a
    log-softmax with each row's max keeps it stable. y holds integer labels (samples,) or
    one-hot (or probability) rows (samples, classes). After a Softmax layer the model uses
    the fused gradient (p - y) / n with respect to the softmax's input. Sequences: pred
    (batch, time, classes) with labels (batch, time) (or one-hot rows of pred's shape) is the
    mean over every position, as PyTorch's cross_entropy over (batch, classes, time).
    """

    conformance_cases = [
        Case(shape=(5, 4), input=probabilities, target=labels_for),
        Case({"from_logits": True}, (5, 4), target=labels_for),
        Case(shape=(5, 3), input=probabilities, target=lambda g, p: np.eye(p.shape[1])[labels_for(g, p)]),
        Case({"from_logits": True}, (2, 3, 4), target=lambda g, p: g.integers(0, p.shape[-1], size=p.shape[:-1])),
    ]

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def prepare_target(self, y: object, dtype: np.dtype) -> np.ndarray:
        labels = as_labels(y, "CrossEntropy")
        if labels is not None:
            return labels
        target = lamina.checks.as_numeric(y, "y", "CrossEntropy")
        if target.dtype.kind in "iu":  # labels per time step (batch, time): kept as integers
            return target.astype(np.int64, copy=False)
        return super().prepare_target(y, dtype)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        self._shape = pred.shape
        pred, y = fold_steps(pred, y, "CrossEntropy")
        labels, rows = class_targets(pred, y, "CrossEntropy")
        n = pred.shape[0]
        self._labels, self._rows, self._pred = labels, rows, pred
        if self.from_logits:
            # log p = shifted - log(sum(exp(shifted))), with each row's max taken out first
            shifted = pred - pred.max(axis=1, keepdims=True)
            exps = np.exp(shifted)
            sums = exps.sum(axis=1, keepdims=True)
            log_sums = np.log(sums)
            exps /= sums
            self._p = exps  # the softmax, kept for backward
            if labels is not None:  # only the labels' log-probabilities are needed
                return float((log_sums.sum() - shifted[np.arange(n), labels].sum()) / n)
            return float(-(rows * (shifted - log_sums)).sum() / n)
        self._clipped = np.clip(pred, EPS, 1.0)
        if labels is not None:
            return float(-np.log(self._clipped[np.arange(n), labels]).sum() / n)
        return float(-(rows * np.log(self._clipped)).sum() / n)

    def backward(self) -> np.ndarray:
        if self.from_logits:
            return self._softmax_grad(self._p).reshape(self._shape)
        pred, labels, target_rows, n = self._pred, self._labels, self._rows, self._pred.shape[0]
        inside = (pred >= EPS) & (pred <= 1.0)
        if target_rows is None:  # integer labels (class_targets gives exactly one of the two)
            grad = np.zeros_like(pred)
            rows = np.arange(n)
            grad[rows, labels] = -1.0 / (n * self._clipped[rows, labels])
        else:
            grad = -target_rows / (n * self._clipped)
        return (grad * inside).reshape(self._shape)

    def fuses_with(self, layer: object) -> bool:
        return not self.from_logits and isinstance(layer, Softmax)

    def fused_backward(self) -> np.ndarray:
        return self._softmax_grad(self._pred).reshape(self._shape)

    def _softmax_grad(self, p: np.ndarray) -> np.ndarray:
        """(p * sum(y) - y) / n: dL/dlogits when p = softmax(logits)."""
        n = p.shape[0]
        if self._rows is None:  # integer labels
            grad = p.copy()
            grad[np.arange(n), self._labels] -= 1.0
        else:
            grad = p * self._rows.sum(axis=1, keepdims=True) - self._rows
        grad *= 1.0 / n
        return grad


class BinaryCrossEntropy(lamina.Loss):
    """-mean(y log p + (1 - y) log(1 - p)) over every element; pred and y of the same shape.

    pred holds probabilities (e.g. after Sigmoid), or logits when `from_logits=True`, computed
    as mean(max(z, 0) - z y + log(1 + exp(-|z|))), which cannot overflow. After a Sigmoid
    layer the model uses the fused gradient (p - y) / size with respect to its input.
    """

    conformance_cases = [Case(input=open_unit, target=binary_for), Case({"from_logits": True}, target=binary_for)]

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("BinaryCrossEntropy", pred, y)
        self._pred, self._y = pred, y
        if self.from_logits:
            z = pred
            return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
        self._clipped = c = np.clip(pred, EPS, 1.0 - EPS)
        return float(-np.mean(y * np.log(c) + (1.0 - y) * np.log1p(-c)))

    def backward(self) -> np.ndarray:
        pred, y = self._pred, self._y
        if self.from_logits:
            p = np.tanh(pred * 0.5)
            p += 1.0
            p *= 0.5
            return (p - y) * (1.0 / pred.size)
        c = self._clipped
        inside = (pred >= EPS) & (pred <= 1.0 - EPS)
        return np.where(inside, (c - y) / (c * (1.0 - c)), 0.0) * (1.0 / pred.size)

    def fuses_with(self, layer: object) -> bool:
        return not self.from_logits and isinstance(layer, Sigmoid)

    def fused_backward(self) -> np.ndarray:
        return (self._pred - self._y) * (1.0 / self._pred.size)


@lamina.hookimpl
def register_losses(register):
    register(MSE, aliases=("mean_squared_error",))
    register(L1, aliases=("mae", "mean_absolute_error"))
    register(Huber)
    register(CrossEntropy, aliases=("categorical_crossentropy",))
    register(BinaryCrossEntropy, aliases=("bce", "binary_crossentropy"))
