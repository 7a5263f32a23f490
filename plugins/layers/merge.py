"""Merge layers for graph models: Concatenate, Add, Multiply, Average.

Each takes a list of arrays (the values it was called on, `lamina.layer("Add")([h1, h2])`)
and returns one; backward takes dL/dy and returns the list of dL/dx_i, one per input.
In ONNX (`to_onnx(graph, xs)`, xs the list of input names) they are Concat, Sum, Mul and Sum / n.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import lamina
from lamina.case import Case


def _pair_input(sizes: Sequence[int], axis: int = -1):
    """A conformance input maker: one normal array per size, of the case's shape but that size along `axis`."""

    def make(generator: np.random.Generator, shape: tuple[int, ...]) -> Any:  # a list (Maker says one array)
        parts = []
        for size in sizes:
            part = list(shape)
            part[axis] = size
            parts.append(generator.normal(size=part))
        return parts

    return make


def _two(generator: np.random.Generator, shape: tuple[int, ...]) -> Any:
    return [generator.normal(size=shape), generator.normal(size=shape)]


def _arrays(layer: lamina.Layer, xs: object, least: int = 2) -> list[np.ndarray]:
    """`xs` checked: a list of at least `least` arrays with the same batch size."""
    name = type(layer).__name__
    if not isinstance(xs, (list, tuple)) or len(xs) < least or not all(isinstance(x, np.ndarray) for x in xs):
        raise lamina.ShapeError(
            f"{name} takes a list of at least {least} arrays (e.g. {name.lower()}([h1, h2]) in a graph), got "
            f"{lamina.checks.describe(xs)}"
        )
    if any(x.ndim == 0 for x in xs) or len({x.shape[0] for x in xs}) > 1:
        raise lamina.ShapeError(f"{name}: every input needs the same batch size first; got shapes "
                                f"{[x.shape for x in xs]}")
    return list(xs)


class Concatenate(lamina.Layer):
    """Joins its inputs along `axis` (not the batch axis); the other axes must agree."""

    keeps = ("_sizes",)  # what forward keeps for backward: each input's size along the axis

    conformance_cases = [Case({"axis": -1}, (4, 3), input=_pair_input((3, 2))),
                         Case({"axis": 1}, (2, 3, 2), input=_pair_input((2, 1, 3), axis=1))]

    def __init__(self, axis: int = -1) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise lamina.ArgumentError(f"Concatenate(axis={axis!r}): axis must be a non-zero int (0 is the batch "
                                       "axis), e.g. -1 for the features")
        self.axis = axis

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:  # type: ignore[override]  # a list, not one array
        xs = _arrays(self, xs)
        ndim = xs[0].ndim
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 < axis < ndim or any(x.ndim != ndim for x in xs) or len(
                {x.shape[:axis] + x.shape[axis + 1:] for x in xs}) > 1:
            raise lamina.ShapeError(
                f"Concatenate(axis={self.axis}): the inputs must have the same number of axes and agree on every "
                f"axis but {self.axis} (not the batch axis); got shapes {[x.shape for x in xs]}"
            )
        self._sizes = [x.shape[axis] for x in xs]
        return np.concatenate(xs, axis=axis)

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]  # one per input
        cuts = np.cumsum(self._sizes)[:-1]
        return np.split(grad, cuts, axis=self.axis)

    def to_onnx(self, graph, xs: list[str]) -> str:
        return graph.op("Concat", *xs, axis=self.axis % graph.example(xs[0]).ndim)


def _same_shapes(layer: lamina.Layer, xs: list[np.ndarray]) -> None:
    if len({x.shape for x in xs}) > 1:
        raise lamina.ShapeError(f"{type(layer).__name__}: every input must have the same shape; got shapes "
                                f"{[x.shape for x in xs]}")


class _Sum(lamina.Layer):
    """What Add and Average share: one shape in, the inputs' sum out, one gradient per input."""

    keeps = ("_count",)  # what forward keeps for backward: how many inputs
    conformance_cases = [Case({}, (4, 3), input=_two)]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:  # type: ignore[override]  # a list, not one array
        xs = _arrays(self, xs)
        _same_shapes(self, xs)
        self._count = len(xs)
        return sum(xs[1:], xs[0])

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]  # one per input
        return [grad] * self._count  # read, never written into, by whoever receives it

    def to_onnx(self, graph, xs: list[str]) -> str:
        return graph.op("Sum", *xs)


class Add(_Sum):
    """The element-wise sum of its inputs (all of one shape)."""


class Average(_Sum):
    """The element-wise mean of its inputs (all of one shape)."""

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:  # type: ignore[override]  # a list, not one array
        return super().forward(xs) / self._count

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]  # one per input
        return super().backward(grad / self._count)

    def to_onnx(self, graph, xs: list[str]) -> str:
        # Sum / n as forward computes it (onnxruntime has no double kernel for Mean)
        return graph.op("Div", super().to_onnx(graph, xs), graph.constant(float(len(xs)), "count", like=xs[0]))


class Multiply(lamina.Layer):
    """The element-wise product of its inputs (all of one shape)."""

    keeps = ("_xs",)  # what forward keeps for backward: the inputs
    conformance_cases = [Case({}, (4, 3), input=_two)]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:  # type: ignore[override]  # a list, not one array
        xs = _arrays(self, xs)
        _same_shapes(self, xs)
        self._xs = xs
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]  # one per input
        grads = []
        for i in range(len(self._xs)):
            g = grad
            for k, x in enumerate(self._xs):
                if k != i:
                    g = g * x
            grads.append(g)
        return grads

    def to_onnx(self, graph, xs: list[str]) -> str:
        return onnx_product(graph, xs)


def onnx_product(graph, xs: list[str]) -> str:
    """The ONNX Mul chain of `xs`, in order (forward's order, so that float32 rounds alike); also
    Parallel's merge="multiply"."""
    out = xs[0]
    for x in xs[1:]:
        out = graph.op("Mul", out, x)
    return out


@lamina.hookimpl
def register_layers(register):
    register(Concatenate)
    register(Add)
    register(Multiply)
    register(Average)
