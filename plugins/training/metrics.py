"""Metrics: accuracy, binary_accuracy, mae, mse (means over the batch's samples, accumulated by
lamina.Metric's default accumulator), and the stateful ones over the whole set: precision,
recall, f1, top_k_accuracy, auc and confusion_matrix (equal to scikit-learn's)."""
from __future__ import annotations

from typing import Any

import numpy as np

import lamina
from lamina.plugins.training._classes import counts, decisions, precision_recall_f1, ranking_score, scores_of
from lamina.plugins.training._targets import class_targets, fold_steps, same_shape_target


class Accuracy(lamina.Metric):
    """Fraction of samples whose highest-scoring class is the true one.

    pred (samples, classes) holds probabilities or logits (argmax is the same for both);
    y holds integer labels (samples,) or one-hot rows (samples, classes). Sequences: pred
    (batch, time, classes) with labels (batch, time): the fraction of positions.
    """

    name = "accuracy"
    greater_is_better = True

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
    greater_is_better = True

    def __init__(self, threshold: float = 0.5, name: str | None = None) -> None:
        super().__init__(name=name)
        self.threshold = check_threshold(threshold, "BinaryAccuracy")

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("binary_accuracy", pred, y)
        return float(np.mean((pred > self.threshold) == (y > 0.5)))


class MeanAbsoluteError(lamina.Metric):
    """mean(|pred - y|) over every element."""

    name = "mae"
    greater_is_better = False

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("mae", pred, y)
        return float(np.mean(np.abs(pred - y)))


class MeanSquaredError(lamina.Metric):
    """mean((pred - y)^2) over every element."""

    name = "mse"
    greater_is_better = False

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = same_shape_target("mse", pred, y)
        return float(np.mean(np.square(pred - y)))


def check_threshold(threshold: object, owner: str) -> float:
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not np.isfinite(threshold):
        raise lamina.ArgumentError(
            f"{owner}(threshold={threshold!r}): threshold must be a finite number, "
            "e.g. 0.5 for probabilities or 0.0 for logits"
        )
    return float(threshold)


# -- stateful metrics over the whole set -------------------------------------------------------------


class ConfusionMatrix(lamina.Metric):
    """Weighted counts over the set: an array (classes, classes), rows the true class, columns the
    predicted one (argmax of probabilities or logits; `pred > threshold` for one output, 2 classes).

    y holds integer labels or one-hot rows, as for accuracy. Its result is an array, so it appears
    in evaluate's result and metrics.json, not in the history.
    """

    name = "confusion_matrix"

    def __init__(self, threshold: float = 0.5, name: str | None = None) -> None:
        super().__init__(name=name)
        self.threshold = check_threshold(threshold, type(self).__name__)
        self.reset()

    def reset(self) -> None:
        self.matrix: np.ndarray | None = None  # sized by the first batch's classes
        self.seen: np.ndarray | None = None  # rows per class as true or predicted label, unweighted

    def update(self, pred: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        truth, predicted, weights, classes = decisions(pred, y, self.name, self.threshold, sample_weight)
        self._check_classes(classes)
        if self.matrix is None or self.seen is None:
            self.matrix, self.seen = np.zeros((classes, classes)), np.zeros(classes)
        elif len(self.matrix) != classes:
            raise lamina.ShapeError(f"{self.name}: this batch has {classes} classes, the ones before "
                                    f"{len(self.matrix)}; every batch must have the same columns")
        self.matrix += counts(truth, predicted, weights, classes)
        self.seen += np.bincount(truth, minlength=classes) + np.bincount(predicted, minlength=classes)

    def _check_classes(self, classes: int) -> None:
        """A subclass refuses what its averaging cannot do (binary averages of many classes)."""

    def result(self) -> np.ndarray:
        return np.zeros((0, 0)) if self.matrix is None else self.matrix.copy()

    def state(self) -> dict[str, np.ndarray]:
        if self.matrix is None or self.seen is None:
            raise lamina.ArgumentError(f"{self.name}: no rows reached this process; give every process rows")
        return {"matrix": self.matrix, "seen": self.seen}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.matrix, self.seen = state["matrix"], state["seen"]

    def report(self, classes: object = None) -> dict[str, Any]:
        """The per-class report of the rows seen (Model.evaluate(report=True) asks for it):
        `class_report` of the matrix, with class names from `classes`."""
        return class_report(self.result(), classes)


def class_report(matrix: np.ndarray, classes: object = None) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support from a confusion matrix (rows: true class),
    as sklearn.metrics.classification_report: {"classes": [{"class", "precision", "recall", "f1",
    "support"}, ...], "accuracy", "macro", "weighted" (each {"precision", "recall", "f1"}),
    "confusion_matrix": the matrix}. Class names from `classes` (a model's metadata["classes"])
    when it names every class, else the indices as strings. A class never predicted (or never
    true) scores 0 there, as sklearn's zero_division default."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.zeros(len(a))
        np.divide(a, b, out=out, where=b != 0)
        return out

    precision, recall, f1 = ratio(tp, predicted), ratio(tp, support), ratio(2 * tp, support + predicted)
    names = ([str(name) for name in classes] if isinstance(classes, (list, tuple)) and len(classes) == len(matrix)
             else [str(i) for i in range(len(matrix))])
    rows = [{"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i]) if support[i].is_integer() else float(support[i])} for i in range(len(matrix))]
    total = float(support.sum())
    weights = support if total else None

    def averaged(weighted: bool) -> dict[str, float]:
        if weighted and weights is None:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        w = weights if weighted else None
        return {key: float(np.average(v, weights=w)) if len(v) else 0.0
                for key, v in (("precision", precision), ("recall", recall), ("f1", f1))}

    return {"classes": rows, "accuracy": float(tp.sum() / total) if total else float("nan"),
            "macro": averaged(False), "weighted": averaged(True), "confusion_matrix": matrix}


AVERAGES = ("macro", "micro", "weighted", "binary")


class Precision(ConfusionMatrix):
    """Precision tp / (tp + fp) over the set, as sklearn.metrics.precision_score.

    average: "macro" (the mean over the classes seen), "micro" (over every decision), "weighted"
    (by each class's support) or "binary" (class 1 only; one output with `threshold`, or two columns).
    A class never predicted scores 0 (sklearn's zero_division default).
    """

    name = "precision"
    greater_is_better = True
    part = 0  # which of (precision, recall, f1)

    def __init__(self, average: str = "macro", threshold: float = 0.5, name: str | None = None) -> None:
        super().__init__(threshold=threshold, name=name)
        if average not in AVERAGES:
            raise lamina.ArgumentError(f"{type(self).__name__}(average={average!r}): average must be one of "
                                       f"{', '.join(map(repr, AVERAGES))}")
        self.average = average

    def _check_classes(self, classes: int) -> None:
        if self.average == "binary" and classes != 2:
            raise lamina.ArgumentError(
                f"{self.name}(average='binary'): pred has {classes} classes; binary needs one output (or two "
                "columns); for more classes use average='macro', 'micro' or 'weighted'"
            )

    def result(self) -> float:  # type: ignore[override]
        if self.matrix is None or self.seen is None:
            return float("nan")
        return precision_recall_f1(self.matrix, self.seen, self.average)[self.part]


class Recall(Precision):
    """Recall tp / (tp + fn) over the set, as sklearn.metrics.recall_score; `average` as for Precision."""

    name = "recall"
    part = 1


class F1(Precision):
    """F1 2 tp / (2 tp + fp + fn) over the set, as sklearn.metrics.f1_score; `average` as for Precision."""

    name = "f1"
    part = 2


class TopKAccuracy(lamina.Metric):
    """Fraction of samples whose true class is among the k highest scores (weighted by
    sample_weight), as sklearn.metrics.top_k_accuracy_score; pred (samples, classes)."""

    name = "top_k_accuracy"
    greater_is_better = True

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise lamina.ArgumentError(f"TopKAccuracy(k={k!r}): k must be a positive int, e.g. k=5")
        self.k = k

    def update(self, pred: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        truth, _, weights, classes = decisions(pred, y, self.name, 0.5, sample_weight)
        pred = fold_steps(pred, y, self.name)[0]
        if pred.ndim < 2 or classes != pred.shape[1]:
            raise lamina.ShapeError(f"{self.name}: pred needs one column per class, got shape {pred.shape}")
        # sklearn's ranking, ties included: a stable ascending sort, reversed
        top = np.argsort(pred, axis=1, kind="mergesort")[:, ::-1][:, : self.k]
        hits = (top == truth[:, None]).any(axis=1)
        self._accumulated()[:] += (float(np.sum(hits * weights)), float(weights.sum()))


class AUC(lamina.Metric):
    """Area under the ROC curve (curve="roc", sklearn.metrics.roc_auc_score) or average precision
    (curve="pr", sklearn.metrics.average_precision_score) over the set.

    One output (any monotone scores: probabilities or logits) or two columns: binary, class 1
    positive. More columns: one-vs-rest, the macro mean over classes, on probabilities (logits
    are turned into them by softmax). It keeps every score and label it is given (exact, not
    binned): (rows, columns) float64 numbers. NaN where undefined (one class only).
    """

    name = "auc"
    greater_is_better = True
    concatenated = ("scores", "labels", "weights")

    def __init__(self, curve: str = "roc", name: str | None = None) -> None:
        super().__init__(name=name)
        if curve not in ("roc", "pr"):
            raise lamina.ArgumentError(f"AUC(curve={curve!r}): curve must be 'roc' or 'pr'")
        self.curve = curve
        self.reset()

    def reset(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, pred: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self._parts.append(scores_of(pred, y, self.name, sample_weight))

    def state(self) -> dict[str, np.ndarray]:
        if not self._parts:
            raise lamina.ArgumentError(f"{self.name}: no rows reached this process; give every process rows")
        scores, labels, weights = (np.concatenate(part) for part in zip(*self._parts))
        return {"scores": scores, "labels": labels.astype(np.float64), "weights": weights}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self._parts = [(state["scores"], state["labels"].astype(np.int64), state["weights"])]

    def result(self) -> float:
        if not self._parts:
            return float("nan")
        state = self.state()
        return ranking_score(state["scores"], state["labels"].astype(np.int64), state["weights"], self.curve)


@lamina.hookimpl
def register_metrics(register):
    register(Accuracy, name="accuracy", aliases=("acc", "categorical_accuracy"))
    register(BinaryAccuracy, name="binary_accuracy")
    register(MeanAbsoluteError, name="mae", aliases=("mean_absolute_error",))
    register(MeanSquaredError, name="mse", aliases=("mean_squared_error",))
    register(Precision, name="precision")
    register(Recall, name="recall")
    register(F1, name="f1", aliases=("f1_score",))
    register(TopKAccuracy, name="top_k_accuracy")
    register(AUC, name="auc")
    register(ConfusionMatrix, name="confusion_matrix")
