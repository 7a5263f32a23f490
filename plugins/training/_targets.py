"""Target checks shared by losses and metrics (private to the built-in plugins)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import lamina


def check_same_shape(owner: str, pred: np.ndarray, y: np.ndarray) -> None:
    """Element-wise losses and metrics compare pred and y pair by pair: shapes must match."""
    if pred.shape != y.shape:
        if pred.size == y.size:
            hint = f"Reshape y with y.reshape{pred.shape}."
        else:
            hint = "Give y one target per output (the model's last layer sets the output width)."
        raise lamina.ShapeError(
            f"{owner}: pred has shape {pred.shape} but y has shape {y.shape}; they must match "
            f"exactly (broadcasting would compare the wrong pairs). {hint}"
        )


def same_shape_target(owner: str, pred: np.ndarray, y: object) -> np.ndarray:
    """`y` as a numeric array of pred's shape and dtype, for element-wise losses and metrics."""
    target = lamina.checks.as_numeric(y, "y", owner)
    check_same_shape(owner, pred, target)
    return target if target.dtype == pred.dtype else target.astype(pred.dtype)


def as_labels(y: object, owner: str) -> np.ndarray | None:
    """Integer class labels of shape (n,) from (n,) or (n, 1) integers, or integral floats of
    shape (n,); None when `y` holds one-hot or probability rows instead."""
    labels = lamina.checks.as_numeric(y, "y", owner)
    if labels.ndim == 2 and labels.shape[1] == 1:  # one label per row, as a column
        labels = labels[:, 0]
    if labels.ndim != 1:
        return None
    if labels.dtype.kind == "b":
        raise lamina.ArgumentError(
            f"{owner}: y holds booleans, which are not class labels; for two classes pass integers "
            "(y.astype(int)), or use BinaryCrossEntropy with one output"
        )
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise lamina.ArgumentError(f"{owner}: y holds NaN or infinity where class labels belong; "
                                       "clean the labels first")
        if not np.array_equal(labels, np.round(labels)):
            raise lamina.ArgumentError(
                f"{owner}: a 1-D y holds class labels, but it has non-integer values; pass "
                "integer labels (n,) or one-hot rows (n, classes)"
            )
        labels = labels.astype(np.int64)
    return labels


def fold_steps(pred: np.ndarray, y: Any, owner: str) -> tuple[np.ndarray, Any]:
    """Sequence predictions as rows: pred (batch, time, ..., classes) becomes (positions,
    classes), and y either labels (batch, time, ...) -> (positions,) or rows of pred's shape ->
    (positions, classes). 2-D pred passes through unchanged."""
    if pred.ndim <= 2:
        return pred, y
    target = lamina.checks.as_numeric(y, "y", owner)
    classes = pred.shape[-1]
    if target.shape == pred.shape[:-1] or (target.ndim == 1 and target.size == math.prod(pred.shape[:-1])):
        return pred.reshape(-1, classes), target.reshape(-1)  # labels (the latter: flattened by prepare_target)
    if target.shape == pred.shape:
        return pred.reshape(-1, classes), target.reshape(-1, classes)
    raise lamina.ShapeError(
        f"{owner}: pred has shape {pred.shape} (batch, time, ..., classes), so y must hold integer "
        f"labels of shape {pred.shape[:-1]} or one-hot rows of shape {pred.shape}; got shape {target.shape}"
    )


def class_targets(pred: np.ndarray, y: object, owner: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(labels, None) for integer labels, (None, rows) for one-hot or probability rows,
    checked against pred's (n, classes) shape."""
    if pred.ndim != 2:
        raise lamina.ShapeError(
            f"{owner}: pred must have shape (samples, classes), got {pred.shape}; put a Flatten "
            "or Linear layer before the output"
        )
    n, classes = pred.shape
    labels = as_labels(y, owner)
    if labels is not None:
        if len(labels) != n:
            raise lamina.ShapeError(f"{owner}: pred has {n} samples but y has {len(labels)} labels")
        # One reduction instead of min() and max(): as unsigned, a negative label is huge.
        if n and int(labels.astype(np.int64, copy=False).view(np.uint64).max()) >= classes:
            raise lamina.ArgumentError(
                f"{owner}: labels must be integers in [0, {classes}) for pred with {classes} "
                f"classes, got values from {labels.min()} to {labels.max()}; give the last layer one "
                "output per class, or re-index the labels from 0"
            )
        return labels, None
    rows = lamina.checks.as_numeric(y, "y", owner)
    if rows.shape != pred.shape:
        raise lamina.ShapeError(
            f"{owner}: one-hot y has shape {rows.shape} but pred has shape {pred.shape}; one-hot "
            f"targets need {classes} columns (one per class, as the model outputs), or pass "
            "integer labels of shape (samples,)"
        )
    if rows.dtype != pred.dtype:
        rows = rows.astype(pred.dtype)
    return None, rows


def per_sample(elements: np.ndarray) -> np.ndarray:
    """Each sample's mean over its elements (all but the first axis): a loss's `values`."""
    return elements.reshape(len(elements), -1).mean(axis=1)


def binary_labels(y: object, owner: str) -> np.ndarray:
    """0/1 targets, one per row ((n,) or (n, 1)), as int64 class labels for class weights."""
    target = lamina.checks.as_numeric(y, "y", owner)
    flat = target.reshape(len(target), -1) if target.ndim else target.reshape(1, 1)
    if flat.shape[1] != 1 or not np.isin(flat, (0, 1)).all():
        raise lamina.ArgumentError(
            f"{owner}: class_weight needs one 0/1 target per row, but y has shape {target.shape} with values "
            f"{np.unique(flat)[:5].tolist()}...; weigh rows of other targets with sample_weight instead"
        )
    return flat[:, 0].astype(np.int64)
