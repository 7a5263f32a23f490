"""Flatten and Reshape: the same values under another shape (the batch axis is kept)."""
from __future__ import annotations

import math

import numpy as np

import lamina
from lamina.case import Case


class Flatten(lamina.Layer):
    """(batch, ...) -> (batch, product of the rest)."""

    keeps = ("_shape",)  # what forward keeps for backward

    conformance_cases = [Case(shape=(2, 3, 2, 2))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1:
            raise lamina.ShapeError("Flatten needs a batch axis; got a scalar")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(self._shape)

    def to_onnx(self, graph, x):
        return graph.op("Reshape", x, graph.ints([0, -1], "shape"))  # 0: the batch axis as it comes


class Reshape(lamina.Layer):
    """(batch, ...) -> (batch, *shape); one entry of `shape` may be -1."""

    keeps = ("_shape",)  # what forward keeps for backward

    conformance_cases = [Case({"shape": (2, -1)}, (3, 2, 4), wrong_shape=(3, 5))]

    def __init__(self, shape: tuple[int, ...] | list[int]) -> None:
        if (
            not isinstance(shape, (tuple, list))
            or not shape
            or any(isinstance(n, bool) or not isinstance(n, int) or (n < 1 and n != -1) for n in shape)
            or list(shape).count(-1) > 1
        ):
            raise lamina.ArgumentError(
                f"Reshape(shape={shape!r}): shape must be a non-empty list of positive ints, with "
                "at most one -1, e.g. Reshape((1, 8, 8))"
            )
        self.shape = tuple(shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        per_sample = math.prod(x.shape[1:])
        known = math.prod(n for n in self.shape if n != -1)
        if (-1 in self.shape and per_sample % known) or (-1 not in self.shape and known != per_sample):
            raise lamina.ShapeError(
                f"Reshape(shape={self.shape}): each sample of the input {x.shape} has {per_sample} "
                f"values, which do not fit the shape {self.shape}"
            )
        self._shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(self._shape)

    def to_onnx(self, graph, x):
        return graph.op("Reshape", x, graph.ints([0, *self.shape], "shape"))


@lamina.hookimpl
def register_layers(register):
    register(Flatten)
    register(Reshape)
