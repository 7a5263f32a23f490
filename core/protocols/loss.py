"""Loss: the protocol every loss plugin implements."""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from lamina import autodiff
from lamina.autodiff import Tape, Traced
from lamina.checks import as_numeric
from lamina.errors import ArgumentError, ShapeError
from lamina.protocols.configurable import Configurable


class Loss(Configurable):
    """Base class of losses: `loss(pred, y) -> float`, then `loss.backward() -> dL/dpred`.

    `backward` returns the gradient of exactly the value the last call returned, with the
    shape and dtype of `pred`. Subclasses implement `forward(pred, y)`; `backward()` is
    optional: a loss without one gets it derived from `forward` by `lamina.autodiff` (each
    call outside model inference records the forward), so `forward` must compute in numpy and
    return the scalar itself, not a `float(...)` of it.

    >>> class MeanAbs(Loss):
    ...     def forward(self, pred, y): return np.abs(pred - y).mean()

    Sample and class weights. `loss(pred, y, sample_weight=w)` returns the weighted mean
    `sum(w_i * l_i) / sum(w_i)` over the rows (the first axis of pred), where l_i are the
    per-sample losses from `values(pred, y)` (shape (rows,)), whose plain mean is `forward`'s
    value. A loss supports weights by implementing `values` (then `forward` may be left out: it
    is the mean of `values`); without weights nothing changes, so a loss with `forward` only
    keeps working unweighted, and asked for weights it raises an ArgumentError saying to write
    `values`. The gradient follows without more code: a forward-only loss gets the weighted
    mean derived by autodiff; a hand-written `backward` (and `fused_backward`) returns the
    gradient of the unweighted mean, and lamina scales its row i by n w_i / sum(w), which is
    exact when l_i depends on row i of pred only (as for every per-sample loss).
    `class_weight` (one weight per class index) comes with `sample_weight` (which already holds
    each row's class weight) for losses whose value involves other classes than the row's own:
    CrossEntropy's label smoothing uses it as PyTorch does; other losses ignore it. A loss
    whose targets are classes implements `labels(y)` (the class of each row), which
    `Model.train(class_weight=...)` needs.

    >>> class WeightedAbs(Loss):
    ...     def values(self, pred, y): return np.abs(pred - y).reshape(len(pred), -1).mean(axis=1)
    """

    _autodiff: bool = False  # no hand-written backward: lamina derives it from forward

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._autodiff = cls.backward is Loss.backward
        for name in ("backward", "fused_backward"):  # hand-written gradients: scaled per row when weighted
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_weighs_rows", False):
                setattr(cls, name, _weighs_rows(method))

    def __call__(self, pred: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
                 class_weight: np.ndarray | None = None) -> float:
        self._row_scale: np.ndarray | None = None
        self._class_weight = class_weight  # read by values() of losses that spread over classes (label smoothing)
        weights = None if sample_weight is None else self._check_weights(pred, sample_weight)
        if not self._autodiff:
            if weights is None:
                return self.forward(pred, y)
            scale = _row_scale(weights)
            values = self.values(pred, y)  # keeps what backward needs, as forward does
            self._row_scale = scale
            return float(np.dot(scale.astype(np.float64), np.asarray(values, dtype=np.float64)) / len(scale))
        if not autodiff.recording.get():  # evaluation records nothing
            if weights is None:
                return float(self.forward(pred, y))
            values = np.asarray(self.values(pred, y), dtype=np.float64)
            return float(np.dot(_row_scale(weights), values) / len(weights))
        previous = self.__dict__.get("_tape")
        if previous is not None:
            previous.close()
        tape = Tape()
        leaf = tape.leaf(np.asarray(pred))
        token = autodiff.current.set(tape)
        try:
            if weights is None:
                out = self.forward(leaf, y)  # type: ignore[arg-type]
            else:  # the weighted mean, traced: its gradient is derived with it
                scale = _row_scale(weights).astype(leaf.value.dtype)
                out = np.sum(self.values(leaf, y) * scale) / len(scale)  # type: ignore[arg-type]
        finally:
            autodiff.current.reset(token)
        self._tape, self._out, self._leaf = tape, out, leaf
        return float(out.value) if isinstance(out, Traced) else float(out)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        """The mean loss over the batch; by default the mean of `values`."""
        if type(self).values is Loss.values:
            raise NotImplementedError(f"{type(self).__name__} must implement forward(pred, y) or values(pred, y)")
        return np.mean(self.values(pred, y))  # a Traced value when traced

    def values(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The loss of each sample, shape (rows,): what sample weights weigh; forward's value is their mean."""
        raise ArgumentError(
            f"{type(self).__name__} computes only the mean loss, so it cannot weigh samples; implement "
            "values(pred, y) returning one loss per sample (shape (rows,)), or train without sample_weight "
            "and class_weight"
        )

    def labels(self, y: np.ndarray) -> np.ndarray:
        """The class index of each row of the targets `y` (as `prepare_target` made them), for
        class weights; a loss whose targets are not classes raises an ArgumentError."""
        raise ArgumentError(
            f"{type(self).__name__} takes regression targets, not classes, so class_weight does not apply; use "
            "sample_weight to weigh rows, or a classification loss (CrossEntropy, BinaryCrossEntropy)"
        )

    def _check_weights(self, pred: np.ndarray, sample_weight: object) -> np.ndarray:
        owner = type(self).__name__
        weights = as_numeric(sample_weight, "sample_weight", owner)
        rows = np.shape(pred)[0] if np.ndim(pred) else 1
        if weights.shape != (rows,):
            raise ShapeError(f"{owner}: sample_weight must have shape ({rows},), one weight per row of pred "
                             f"{np.shape(pred)}; got shape {weights.shape}")
        return weights

    def backward(self) -> np.ndarray:
        """dL/dpred of the last call; derived from forward for a loss that does not write it."""
        if not self._autodiff:
            raise NotImplementedError(f"{type(self).__name__} must implement backward()")
        out, leaf = self._out, self._leaf
        if not isinstance(out, Traced):
            return np.zeros_like(leaf.value)
        found = self._tape.backward(out, np.ones((), dtype=leaf.value.dtype)).get(leaf)
        return np.zeros_like(leaf.value) if found is None else found

    def release(self) -> None:
        """Drop what the last call kept for backward (a forward-only loss's recorded graph)."""
        tape = self.__dict__.pop("_tape", None)
        if tape is not None:
            tape.close()
        for name in ("_out", "_leaf", "_row_scale", "_class_weight"):
            self.__dict__.pop(name, None)

    def fuses_with(self, layer: object) -> bool:
        """True when `fused_backward` can replace this loss's and `layer`'s backward together.

        The model asks this of its last layer; e.g. CrossEntropy after Softmax returns the
        gradient with respect to the softmax's input, (p - y) / n, in one stable step.
        """
        return False

    def fused_backward(self) -> np.ndarray:
        """dL/d(input of the fused layer); only called when `fuses_with` returned True."""
        raise NotImplementedError(f"{type(self).__name__} fuses with no layer")

    def prepare_target(self, y: object, dtype: np.dtype) -> np.ndarray:
        """Convert targets once before training (not per step); by default to `dtype`.

        Losses that take integer labels override this to keep them as integers.
        """
        return as_numeric(y, "y", type(self).__name__).astype(dtype, copy=False)



def _row_scale(weights: np.ndarray) -> np.ndarray:
    """n w_i / sum(w): the factor by which row i's share of the plain mean becomes its share of
    the weighted mean; all zeros when the weights sum to 0 (the batch counts for nothing)."""
    weights = weights.astype(np.float64, copy=False)
    total = float(weights.sum())
    return weights * (len(weights) / total) if total > 0 else np.zeros_like(weights)


def _weighs_rows(method: Callable[[Loss], np.ndarray]) -> Callable[[Loss], np.ndarray]:
    """A hand-written gradient of the plain mean, made that of the weighted mean of the last call."""

    @functools.wraps(method)
    def weighed(self: Loss) -> np.ndarray:
        grad = method(self)
        scale = self.__dict__.get("_row_scale")
        if scale is None:
            return grad
        return grad * scale.astype(grad.dtype).reshape(-1, *([1] * (grad.ndim - 1)))

    weighed._weighs_rows = True  # type: ignore[attr-defined]
    return weighed
