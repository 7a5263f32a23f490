"""Metrics: accuracy, binary_accuracy, mae, mse. Each is a mean over the batch's samples."""
from __future__ import annotations

import numpy as np

import lamina
from lamina.plugins.training._targets import class_targets, fold_steps, same_shape_target


class Accuracy(lamina.Metric):
    """Fraction of samples whose highest-scoring class is the true one.

    pred (samples, classes) holds probabilities or logits (argmax is the same for both);
    y holds integer labels (samples,) or one-hot rows (samples, classes). Sequences: pred
    (batch, time, classes) with labels (batch, time): the fraction of positions.
    """

    name = "accuracy"

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        pred, y = fold_steps(pred, y, "accuracy")
        if pred.ndim == 2 and pred.shape[1] == 1:
            raise lamina.ShapeError(
                "accuracy: pred has a single column, so argmax is always 0; for one sigmoid "
                "output use the metric 'binary_accuracy'"
            )
        labels, rows = class_targets(pred, y, "accuracy")
        if rows is not None:  # one-hot or probability rows (class_targets gives exactly one of the two)
            labels = rows.argmax(axis=1)
        # count_nonzero / n rather than np.mean: the same number, without mean's Python overhead
        return np.count_nonzero(pred.argmax(axis=1) == labels) / len(pred)


class BinaryAccuracy(lamina.Metric):
    """Fraction of elements where (pred > threshold) equals y (0 or 1); pred and y of one shape.

    The default threshold 0.5 suits probabilities; use threshold=0.0 for logits.
    """

    name = "binary_accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not np.isfinite(threshold):
            raise lamina.ArgumentError(
                f"BinaryAccuracy(threshold={threshold!r}): threshold must be a finite number, "
                "e.g. 0.5 for probabilities or 0.0 for logits"
            )
        self.threshold = float(threshold)

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("binary_accuracy", pred, y)
        return float(np.mean((pred > self.threshold) == (y > 0.5)))


class MeanAbsoluteError(lamina.Metric):
    """mean(|pred - y|) over every element."""

    name = "mae"

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("mae", pred, y)
        return float(np.mean(np.abs(pred - y)))


class MeanSquaredError(lamina.Metric):
    """mean((pred - y)^2) over every element."""

    name = "mse"

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("mse", pred, y)
        return float(np.mean(np.square(pred - y)))


@lamina.hookimpl
def register_metrics(register):
    register(Accuracy, name="accuracy", aliases=("acc", "categorical_accuracy"))
    register(BinaryAccuracy, name="binary_accuracy")
    register(MeanAbsoluteError, name="mae", aliases=("mean_absolute_error",))
    register(MeanSquaredError, name="mse", aliases=("mean_squared_error",))
