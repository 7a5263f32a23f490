"""Class decisions and the ranking arithmetic behind the classification metrics (private to the
built-in plugins). Each formula follows scikit-learn's, operation for operation, so that the
metrics equal its results on the same predictions."""
from __future__ import annotations

import math

import numpy as np

import lamina
from lamina.plugins.training._targets import class_targets, fold_steps


def weights_of(sample_weight: object, n: int, positions: int, owner: str) -> np.ndarray:
    """One float64 weight per row (ones without sample_weight), repeated per sequence position."""
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(weights) * positions != n:
        raise lamina.ShapeError(f"{owner}: sample_weight has {len(weights)} values for {n // positions} rows; "
                                "give one weight per row")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise lamina.ArgumentError(f"{owner}: sample_weight must be finite and >= 0; clean the weights first")
    return np.repeat(weights, positions) if positions > 1 else weights


def binary_truth(y: object, n: int, owner: str) -> np.ndarray:
    """Labels 0 or 1, one per row, for a single-output (sigmoid) prediction."""
    truth = lamina.checks.as_numeric(y, "y", owner).reshape(-1)
    if len(truth) != n:
        raise lamina.ShapeError(f"{owner}: pred has {n} outputs but y has {len(truth)} values; give one 0/1 per row")
    if not np.isin(truth, (0, 1)).all():
        raise lamina.ArgumentError(f"{owner}: with one output per row, y must hold 0 or 1; got other values")
    return truth.astype(np.int64)


def decisions(pred: np.ndarray, y: object, owner: str, threshold: float, sample_weight: object
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(true labels, predicted labels, weights, classes) of a batch: argmax over the columns of
    probabilities or logits (integer labels or one-hot y), or `pred > threshold` for one output."""
    positions = math.prod(pred.shape[1:-1]) if pred.ndim > 2 else 1
    pred, y = fold_steps(pred, y, owner)
    if pred.ndim == 1 or pred.shape[1] == 1:
        scores = pred.reshape(-1)
        truth, predicted, classes = binary_truth(y, len(scores), owner), (scores > threshold).astype(np.int64), 2
    else:
        labels, rows = class_targets(pred, y, owner)
        truth = labels if labels is not None else np.asarray(rows).argmax(axis=1)
        predicted, classes = pred.argmax(axis=1), pred.shape[1]
    return truth, predicted, weights_of(sample_weight, len(truth), positions, owner), classes


def scores_of(pred: np.ndarray, y: object, owner: str, sample_weight: object
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (n, columns) as float64, true labels, weights) for the ranking metrics: one output
    as it is (any monotone scale ranks alike); several as probabilities (softmax of logits)."""
    positions = math.prod(pred.shape[1:-1]) if pred.ndim > 2 else 1
    pred, y = fold_steps(pred, y, owner)
    if pred.ndim == 1 or pred.shape[1] == 1:
        scores = pred.reshape(-1, 1).astype(np.float64)
        truth = binary_truth(y, len(scores), owner)
    else:
        labels, rows = class_targets(pred, y, owner)
        truth = labels if labels is not None else np.asarray(rows).argmax(axis=1)
        scores = pred.astype(np.float64)
        if not ((scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)):  # logits
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = shifted / shifted.sum(axis=1, keepdims=True)
    return scores, truth, weights_of(sample_weight, len(truth), positions, owner)


def counts(truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray, classes: int) -> np.ndarray:
    """The weighted confusion matrix (rows: true class, columns: predicted class)."""
    matrix = np.bincount(truth * classes + predicted, weights=weights, minlength=classes * classes)
    return matrix.reshape(classes, classes)


def divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, and 0 where b is 0 (scikit-learn's zero_division default)."""
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def precision_recall_f1(matrix: np.ndarray, seen: np.ndarray, average: str) -> tuple[float, float, float]:
    """Averaged precision, recall and F1 from a confusion matrix, over the classes seen (as true or
    predicted labels), as sklearn.metrics.precision_recall_fscore_support."""
    tp, pred_sum, true_sum = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    if average == "binary":
        tp, pred_sum, true_sum = tp[1:2], pred_sum[1:2], true_sum[1:2]
    else:
        present = seen > 0
        tp, pred_sum, true_sum = tp[present], pred_sum[present], true_sum[present]
        if average == "micro":
            tp, pred_sum, true_sum = tp.sum(keepdims=True), pred_sum.sum(keepdims=True), true_sum.sum(keepdims=True)
    precision, recall = divide(tp, pred_sum), divide(tp, true_sum)
    f1 = divide(2 * tp, true_sum + pred_sum)
    if average == "weighted":
        if true_sum.sum() == 0:
            return 0.0, 0.0, 0.0
        return tuple(float(np.average(v, weights=true_sum)) for v in (precision, recall, f1))  # type: ignore[return-value]
    if len(tp) == 0:
        return 0.0, 0.0, 0.0
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(f1))


def curve_points(truth: np.ndarray, score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, true positives) at each distinct threshold, as sklearn's
    confusion_matrix_at_thresholds (zero-weight rows left out)."""
    keep = weights != 0
    truth, score, weights = truth[keep], score[keep], weights[keep]
    order = np.argsort(-score, kind="stable")
    score, truth, weights = score[order], truth[order].astype(np.float64), weights[order]
    ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(truth * weights)[ends]
    fps = np.cumsum((1 - truth) * weights)[ends]
    return fps, tps


def roc_auc(truth: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """Area under the ROC curve (sklearn.metrics.roc_auc_score); NaN when one class is missing."""
    fps, tps = curve_points(truth, score, weights)
    if len(fps) == 0 or fps[-1] <= 0 or tps[-1] <= 0:
        return float("nan")
    if len(fps) > 2:  # sklearn's drop_intermediate: collinear points go (the sum's rounding follows)
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[keep], tps[keep]
    fpr, tpr = np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]
    trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 (numpy 2 renamed it)
    return float(trapezoid(tpr, fpr))


def average_precision(truth: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """Average precision, the step integral of the PR curve (sklearn.metrics.average_precision_score)."""
    fps, tps = curve_points(truth, score, weights)
    if len(fps) == 0:
        return float("nan")
    precision = divide(tps, tps + fps)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def ranking_score(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray, curve: str) -> float:
    """AUC of one output or the positive column of two; the one-vs-rest macro mean over classes of
    more (classes without both positives and negatives left out of ROC's mean: undefined there)."""
    area = roc_auc if curve == "roc" else average_precision
    if scores.shape[1] <= 2:
        return area(truth, scores[:, -1], weights)
    values = [area((truth == c).astype(np.int64), scores[:, c], weights) for c in range(scores.shape[1])]
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")
