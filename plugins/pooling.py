"""Pooling over image windows: MaxPool2D, AvgPool2D, GlobalAvgPool2D (no parameters).

Windows are visited as kh * kw strided slices of the input, each a whole-array operation:
on numpy this is faster than a reduction over the two window axes of a strided view.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import lamina
from lamina.case import Case, distinct
from lamina.plugins._spatial import as_given, check_images, max_windows, max_windows_backward, pair, windows_out

if TYPE_CHECKING:
    from lamina.export import Graph


class _Pool2D(lamina.Layer):
    _onnx_op = ""  # the ONNX pooling operator

    def __init__(self, pool_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> None:
        owner = type(self).__name__
        self.pool_size = as_given(pool_size)
        self.stride = as_given(stride)
        self._pool = pair(pool_size, "pool_size", owner)
        self._stride = self._pool if stride is None else pair(stride, "stride", owner)

    def _slices(self, x: np.ndarray) -> list[tuple[slice, slice]]:
        """The (rows, cols) slice of x for each window position, sized to the output."""
        owner = f"{type(self).__name__}(pool_size={self.pool_size})"
        check_images(x, owner)
        (ph, pw), (sh, sw) = self._pool, self._stride
        oh = windows_out(x.shape[2], ph, sh, owner, "height")
        ow = windows_out(x.shape[3], pw, sw, owner, "width")
        return [
            (slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            for i in range(ph)
            for j in range(pw)
        ]

    def to_onnx(self, graph: Graph, x: str) -> str:
        """ONNX MaxPool or AveragePool, unpadded and in floor mode: whole windows only, as forward."""
        return graph.op(self._onnx_op, x, kernel_shape=list(self._pool), strides=list(self._stride))


class MaxPool2D(_Pool2D):
    """y = the max of each pool_size window (stride defaults to pool_size); (n, c, h, w) -> (n, c, oh, ow).

    The gradient goes to the window's max (the first one on ties), as in PyTorch. Forward
    records which window position won, so backward is one compare and multiply per position.
    """

    keeps = ("_x_like", "_winner", "_windows")  # what forward keeps for backward
    _onnx_op = "MaxPool"

    conformance_cases = [Case({"pool_size": 2}, (2, 2, 4, 4), input=distinct, wrong_shape=(2, 16)),
                         Case({"pool_size": 3, "stride": 1}, (1, 2, 4, 5), input=distinct)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        slices = self._slices(x)
        out, winner = max_windows(x, slices)
        self._x_like, self._winner, self._windows = x, winner, slices
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        (ph, pw), (sh, sw) = self._pool, self._stride
        return max_windows_backward(self._x_like, self._winner, self._windows, grad, sh < ph or sw < pw)


class AvgPool2D(_Pool2D):
    """y = the mean of each pool_size window (stride defaults to pool_size); (n, c, h, w) -> (n, c, oh, ow)."""

    keeps = ("_shape", "_windows")  # what forward keeps for backward
    _onnx_op = "AveragePool"

    conformance_cases = [Case({"pool_size": 2}, (2, 2, 4, 4), wrong_shape=(2, 16)),
                         Case({"pool_size": (2, 3), "stride": 1}, (1, 2, 4, 5))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        slices = self._slices(x)
        out = x[(..., *slices[0])].copy(order="K")
        for rows, cols in slices[1:]:
            out += x[:, :, rows, cols]
        out *= 1.0 / len(slices)
        self._shape, self._windows = x.shape, slices
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        dx = np.zeros(self._shape, dtype=grad.dtype)
        share = grad * (1.0 / len(self._windows))
        for rows, cols in self._windows:
            dx[:, :, rows, cols] += share
        return dx


class GlobalAvgPool2D(lamina.Layer):
    """y = the mean over height and width; (n, c, h, w) -> (n, c)."""

    keeps = ("_shape",)  # what forward keeps for backward

    conformance_cases = [Case(shape=(2, 3, 4, 4), wrong_shape=(2, 3))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_images(x, "GlobalAvgPool2D")
        self._shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        n, c, h, w = self._shape
        return np.broadcast_to((grad * (1.0 / (h * w)))[:, :, None, None], self._shape).copy()

    def to_onnx(self, graph: Graph, x: str) -> str:
        """ReduceMean over height and width: unlike GlobalAveragePool, it drops those axes and
        runs in float64 on onnxruntime."""
        return graph.reduce("ReduceMean", x, [2, 3])


@lamina.hookimpl
def register_layers(register):
    register(MaxPool2D)
    register(AvgPool2D)
    register(GlobalAvgPool2D)
