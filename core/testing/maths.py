"""The kit's checks of the maths, not only the contracts: a case's `reference` (what the layer or
loss must compute) and `causal_axis` (what a causal layer must not look at)."""
from __future__ import annotations

import numpy as np

from lamina.case import Case
from lamina.seeding import rng
from lamina.testing.base import NotApplicable, first_not_finite, layer_input, loss_data, make_layer, require, where

MODES = {True: "training", False: "inference"}


def compare(actual: np.ndarray, expected: np.ndarray, tolerance: float, what: str) -> float:
    """The largest difference of `actual` from `expected` (float64), failing beyond
    `tolerance` times max(1, |expected|): the message says by how much and where."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    require(actual.shape == expected.shape, f"{what}: the output has shape {actual.shape}, the reference "
                                            f"{expected.shape}")
    for name, values in (("the output", actual), ("the reference", expected)):
        bad = first_not_finite(values)
        require(bad is None, f"{what}: {name} is not finite ({bad})")
    if actual.size == 0:
        return 0.0
    difference = np.abs(actual - expected)
    flat = int(np.argmax(difference))
    largest = float(difference.ravel()[flat])
    require(largest <= tolerance * max(1.0, float(np.abs(expected).max())),
            f"{what}: the output differs from the reference by up to {largest:.2e} at index {where(actual, flat)} "
            f"(output {actual.ravel()[flat]:.6g}, reference {expected.ravel()[flat]:.6g}; tolerance {tolerance:g})")
    return largest


def layer_reference(cls: type, case: Case) -> str:
    """layer(x) equals case.reference(layer, x), in training and in inference mode."""
    if case.reference is None:
        raise NotApplicable("no reference in this case")
    worst = 0.0
    for training in (True, False):
        layer = make_layer(cls, case)
        x = layer_input(cls, case)
        layer.training = True
        layer(x)  # build (and, for BatchNorm, gather running statistics)
        layer.training = training
        y = layer(x)
        worst = max(worst, compare(y, case.reference(layer, x.copy()), case.tolerance, f"in {MODES[training]} mode"))
    return f"largest difference {worst:.1e}"


def loss_reference(cls: type, case: Case) -> str:
    """loss(pred, y) equals case.reference(loss, pred, y)."""
    if case.reference is None:
        raise NotApplicable("no reference in this case")
    pred, y = loss_data(case)
    loss = cls(**case.kwargs)
    value = loss(pred, y)
    expected = case.reference(loss, pred.copy(), np.copy(y))
    return f"difference {compare(np.asarray(value), np.asarray(expected), case.tolerance, 'the loss value'):.1e}"


def layer_causal(cls: type, case: Case) -> str:
    """Along case.causal_axis, outputs at positions <= t ignore inputs at positions > t, and a loss
    on those outputs has no gradient at inputs > t; for every t, in training and inference mode
    (the same random draws, e.g. dropout's, in every call)."""
    axis = case.causal_axis
    if axis is None:
        raise NotApplicable("no causal_axis in this case")
    x = layer_input(cls, case)
    for training in (True, False):
        _Causal(cls, case, axis, training).check(x, layer_input(cls, case, number=7))
    return f"{x.shape[axis]} positions along axis {axis}"


class _Causal:
    """One layer, in one mode, probed position by position along `axis`."""

    def __init__(self, cls: type, case: Case, axis: int, training: bool) -> None:
        self.layer = make_layer(cls, case)
        self.axis, self.tolerance, self.mode = axis, case.tolerance, MODES[training]
        self.layer.training = True
        self.layer(layer_input(cls, case))  # build
        self.layer.training = training
        self.state = rng().bit_generator.state

    def run(self, x: np.ndarray) -> np.ndarray:
        rng().bit_generator.state = self.state  # the same dropout mask in every call
        return np.asarray(self.layer(x))

    def check(self, x: np.ndarray, other: np.ndarray) -> None:
        y = self.run(x)
        axis = self.axis % x.ndim
        require(y.ndim == x.ndim and y.shape[axis] == x.shape[axis],
                f"causal_axis={self.axis}: the output {y.shape} does not keep the input's {x.shape} positions "
                "along it")
        for t in range(x.shape[axis] - 1):
            before = (slice(None),) * axis + (slice(0, t + 1),)
            after = (slice(None),) * axis + (slice(t + 1, None),)
            changed = x.copy()
            changed[after] = other[after]
            moved = np.abs(self.run(changed)[before] - y[before])
            flat = int(np.argmax(moved))
            require(float(moved.max()) <= self.tolerance * max(1.0, float(np.abs(y).max())),
                    f"in {self.mode} mode, changing the inputs at positions > {t} along axis {self.axis} changed the "
                    f"output at positions <= {t} by up to {moved.max():.2e} (at index {where(moved, flat)}): the "
                    "layer looks ahead")
            if x.dtype.kind == "f":
                self.check_gradient(x, y, t, before)

    def check_gradient(self, x: np.ndarray, y: np.ndarray, t: int, before: tuple[slice, ...]) -> None:
        self.run(x)
        grad = np.zeros_like(y)
        grad[before] = np.random.default_rng(t).normal(size=grad[before].shape)
        g = self.layer.backward(grad)
        if g is None:
            return
        leak = np.abs(np.asarray(g))
        leak[before] = 0
        flat = int(np.argmax(leak))
        largest = float(leak.ravel()[flat])
        require(largest <= self.tolerance * max(1.0, float(np.abs(g).max())),
                f"in {self.mode} mode, a loss on the outputs at positions <= {t} along axis {self.axis} has an input "
                f"gradient of up to {largest:.2e} at positions > {t} (at index {where(leak, flat)}), not 0: the "
                "layer looks ahead")
