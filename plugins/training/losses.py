"""Losses: MSE, L1, Huber, CrossEntropy, BinaryCrossEntropy.

Each returns a mean (over elements, or over samples for CrossEntropy) and its backward is the
derivative of exactly that mean. Each also gives its per-sample values (`values`), which
sample and class weights weigh (see `lamina.Loss`): a sample's value is the mean over its
elements (its time steps, for CrossEntropy over sequences), so their mean is `forward`'s.
"""
from __future__ import annotations

from typing import cast

import numpy as np

import lamina
from lamina.case import Case, binary_for, labels_for, open_unit, probabilities
from lamina.plugins.layers.activations import Sigmoid, Softmax
from lamina.plugins.training._targets import (
    as_labels,
    binary_labels,
    class_targets,
    fold_steps,
    per_sample,
    same_shape_target,
)

# Probabilities are clipped to [EPS, 1 - EPS] before the log, as Keras does; the gradient is
# that of the clipped value (zero where clipping is active), so it matches what is returned.
EPS = 1e-7


def _smoothing(value: object, owner: str) -> float:
    return lamina.checks.fraction(value, "label_smoothing", owner)


class MSE(lamina.Loss):
    """mean((pred - y)^2) over every element; pred and y of the same shape.

    dL/dpred = 2 (pred - y) / pred.size: the derivative of the mean that is returned.
    """

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        self._diff = pred - same_shape_target("MSE", pred, y)
        return per_sample(np.square(self._diff))

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        self._diff = pred - same_shape_target("MSE", pred, y)
        return float(np.mean(np.square(self._diff)))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)


class L1(lamina.Loss):
    """mean(|pred - y|) over every element; dL/dpred = sign(pred - y) / pred.size."""

    conformance_cases = [Case(shape=(4, 3))]

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        self._diff = pred - same_shape_target("L1", pred, y)
        return per_sample(np.abs(self._diff))

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

    def _elements(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = pred - same_shape_target("Huber", pred, y)
        self._diff = d
        a = np.abs(d)
        return np.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return per_sample(self._elements(pred, y))

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self._elements(pred, y)))

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
    `label_smoothing` s in [0, 1) trains on (1 - s) y + s / classes instead of y, as PyTorch's
    CrossEntropyLoss(label_smoothing=s); with class weights w (`Model.train(class_weight=...)`)
    and integer labels, as PyTorch's with weight=w too: the smoothed part of a row's target is
    s w_c / (classes w_label) for class c.
    """

    conformance_cases = [
        Case(shape=(5, 4), input=probabilities, target=labels_for),
        Case({"from_logits": True}, (5, 4), target=labels_for),
        Case(shape=(5, 3), input=probabilities, target=lambda g, p: np.eye(p.shape[1])[labels_for(g, p)]),
        Case({"from_logits": True}, (2, 3, 4), target=lambda g, p: g.integers(0, p.shape[-1], size=p.shape[:-1])),
        Case({"from_logits": True, "label_smoothing": 0.2}, (5, 4), target=labels_for),
        Case({"label_smoothing": 0.1}, (5, 3), input=probabilities, target=labels_for),
    ]

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing, "CrossEntropy")

    def prepare_target(self, y: object, dtype: np.dtype) -> np.ndarray:
        labels = as_labels(y, "CrossEntropy")
        if labels is not None:
            return labels
        target = lamina.checks.as_numeric(y, "y", "CrossEntropy")
        if target.dtype.kind in "iu":  # labels per time step (batch, time): kept as integers
            return target.astype(np.int64, copy=False)
        return super().prepare_target(y, dtype)

    def labels(self, y: np.ndarray) -> np.ndarray:
        """Integer labels as they are; one-hot rows: the hot class (the largest entry)."""
        labels = as_labels(y, "CrossEntropy")
        if labels is not None:
            return labels
        target = lamina.checks.as_numeric(y, "y", "CrossEntropy")
        if target.ndim == 2 and target.dtype.kind == "f":
            return target.argmax(axis=1)
        raise lamina.ArgumentError(
            f"CrossEntropy: class_weight needs one class per sample, but y has shape {target.shape} (a class per "
            "time step); weigh the sequences with sample_weight instead"
        )

    def _positions(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The loss at each position (rows of pred, or every time step of a sequence)."""
        self._shape = pred.shape
        pred, y = fold_steps(pred, y, "CrossEntropy")
        labels, rows = class_targets(pred, y, "CrossEntropy")
        if self.label_smoothing:
            labels, rows = None, self._smoothed(labels, rows, pred)
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
                return log_sums[:, 0] - shifted[np.arange(n), labels]
            return -(rows * (shifted - log_sums)).sum(axis=1)
        self._clipped = np.clip(pred, EPS, 1.0)
        if labels is not None:
            return -np.log(self._clipped[np.arange(n), labels])
        return -(rows * np.log(self._clipped)).sum(axis=1)

    def _smoothed(self, labels: np.ndarray | None, rows: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
        """(1 - s) y + s / C, the targets label smoothing trains on; with class weights w and
        labels, the smoothed part is s w_c / (C w_label), so that the row's weight w_label times
        its loss is PyTorch's term."""
        s, classes = self.label_smoothing, pred.shape[1]
        if rows is not None:
            return rows * (1.0 - s) + s / classes
        labels = cast(np.ndarray, labels)  # class_targets gives exactly one of the two
        table = self.__dict__.get("_class_weight")
        if table is None:
            smoothed = np.full(pred.shape, s / classes, dtype=pred.dtype)
        else:
            table = np.asarray(table, dtype=np.float64)
            own = table[labels][:, None]
            ratio = np.divide(table[None, :], own, out=np.zeros((len(labels), classes)), where=own > 0)
            smoothed = (ratio * (s / classes)).astype(pred.dtype)
        smoothed[np.arange(len(labels)), labels] += 1.0 - s
        return smoothed

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return per_sample(self._positions(pred, y).reshape(len(pred), -1))

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        positions = self._positions(pred, y)
        return float(positions.sum() / len(positions))

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
    `label_smoothing` s in [0, 1) trains on y (1 - s) + s / 2 instead of y, as Keras does.
    """

    conformance_cases = [
        Case(input=open_unit, target=binary_for),
        Case({"from_logits": True}, target=binary_for),
        Case({"from_logits": True, "label_smoothing": 0.2}, target=binary_for),
    ]

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing, "BinaryCrossEntropy")

    def labels(self, y: np.ndarray) -> np.ndarray:
        return binary_labels(y, "BinaryCrossEntropy")

    def _elements(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = same_shape_target("BinaryCrossEntropy", pred, y)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        self._pred, self._y = pred, y
        if self.from_logits:
            z = pred
            return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        self._clipped = c = np.clip(pred, EPS, 1.0 - EPS)
        return -(y * np.log(c) + (1.0 - y) * np.log1p(-c))

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return per_sample(self._elements(pred, y))

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self._elements(pred, y)))

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
