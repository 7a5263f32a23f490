"""Images, (batch, channels, height, width): Conv2D, 2-D convolution (cross-correlation, as in PyTorch) by
im2col and one matrix product, and the pools MaxPool2D, AvgPool2D, GlobalAvgPool2D (no parameters).

Pool windows are visited as kh * kw strided slices of the input, each a whole-array operation:
on numpy this is faster than a reduction over the two window axes of a strided view.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import lamina
from lamina.case import Case, distinct
from lamina.plugins.layers._spatial import (
    as_given,
    check_images,
    conv_to_onnx,
    max_windows,
    max_windows_backward,
    pair,
    windows_out,
)

if TYPE_CHECKING:
    from lamina.export import Graph


class Conv2D(lamina.Layer):
    """x (batch, channels, h, w) -> y (batch, filters, oh, ow); "weight" (filters, channels, kh, kw), "bias" (filters,).

    y[n, f] = bias[f] + sum over c, i, j of weight[f, c, i, j] * xpad[n, c, s*oy + d*i, s*ox + d*j].
    `padding` is an int, a pair, "valid" (0) or "same" (output size = input size; stride 1).
    The input windows are gathered once (im2col, from a strided view) and multiplied with the
    kernels in one matrix product; backward scatters the window gradients back (col2im) with
    one vectorised add per kernel position, never a loop over pixels or samples.
    """

    keeps = ("_cols",)  # what forward keeps for backward
    torch_layout = True  # torch.nn.Conv2d(channels, filters, kernel_size, stride, padding, dilation)

    conformance_cases = [
        Case({"filters": 2, "kernel_size": 3, "padding": 1}, (2, 3, 5, 5), wrong_shape=(2, 2, 5, 5)),
        Case({"filters": 3, "kernel_size": (2, 3), "stride": 2, "dilation": (1, 2), "bias_init": "normal"},
             (2, 2, 6, 7)),
    ]

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        weight_init: str | lamina.Initializer = "he_uniform",
        bias_init: str | lamina.Initializer = "zeros",
    ) -> None:
        self.filters = lamina.checks.positive_int(filters, "filters", "Conv2D", example=16)
        self.kernel_size = as_given(kernel_size)
        self.stride = as_given(stride)
        self.padding = as_given(padding)
        self.dilation = as_given(dilation)
        self.weight_init = weight_init
        self.bias_init = bias_init
        self._kernel = pair(kernel_size, "kernel_size", "Conv2D")
        self._stride = pair(stride, "stride", "Conv2D")
        self._dilation = pair(dilation, "dilation", "Conv2D")
        if padding in ("valid", "same"):
            if padding == "same" and self._stride != (1, 1):
                raise lamina.ArgumentError("Conv2D(padding='same'): 'same' padding needs stride=1, as in PyTorch")
        else:
            pair(padding, "padding", "Conv2D", minimum=0)
        self._weight_init = lamina.resolve("initializer", weight_init, "weight_init", "Conv2D")
        self._bias_init = lamina.resolve("initializer", bias_init, "bias_init", "Conv2D")
        self.weight: lamina.Parameter | None = None
        self.bias: lamina.Parameter | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.weight is None or self.bias is None else {"weight": self.weight, "bias": self.bias}

    def _pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":  # PyTorch puts the odd pixel at the bottom and right
            totals = [d * (k - 1) for d, k in zip(self._dilation, self._kernel)]
            return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
        ph, pw = pair(self.padding, "padding", "Conv2D", minimum=0)
        return (ph, ph), (pw, pw)

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_images(x, f"Conv2D(filters={self.filters})")
        kh, kw = self._kernel
        if self.weight is None or self.bias is None:
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            shape = (self.filters, x.shape[1], kh, kw)
            self.weight = lamina.Parameter(self._weight_init(shape, dtype))
            self.bias = lamina.Parameter(self._bias_init((self.filters,), dtype, *lamina.fans(shape)))
        channels = self.weight.shape[1]
        if x.shape[1] != channels:
            raise lamina.ShapeError(
                f"Conv2D(filters={self.filters}) was built for {channels} input channels (axis 1) "
                f"but got shape {x.shape}, with {x.shape[1]}"
            )
        if x.dtype.kind != "f":
            x = x.astype(self.weight.value.dtype)
        (pt, pb), (pl, pr) = self._pads()
        (sh, sw), (dh, dw) = self._stride, self._dilation
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        owner = f"Conv2D(filters={self.filters}, kernel_size={self.kernel_size})"
        height, width = x.shape[2] + pt + pb, x.shape[3] + pl + pr
        oh = windows_out(height, span_h, sh, owner, "height")
        ow = windows_out(width, span_w, sw, owner, "width")
        n = x.shape[0]
        # Charged before they exist: padding and windows can make these far larger than x.
        padded = bool(pt or pb or pl or pr)
        if padded:
            self.reserve((n, channels, height, width), x.dtype, "the padded input")
        self.reserve((channels * kh * kw, n * oh * ow), x.dtype, "the im2col buffer")
        self.reserve((n, self.filters, oh, ow), x.dtype, "the output", output=True)
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if padded else x
        # (c, kh, kw, n, oh, ow) view of every window; the reshape makes the one im2col copy.
        # This layout (one row per kernel tap) copies and adds the bias several times faster
        # than one row per output pixel.
        windows = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
        cols = windows.transpose(1, 4, 5, 0, 2, 3).reshape(channels * kh * kw, n * oh * ow)
        out = self.weight.value.reshape(self.filters, -1) @ cols
        out += self.bias.value[:, None]
        self._cols, self._xp_shape, self._x_shape, self._out_hw = cols, xp.shape, x.shape, (oh, ow)
        # (f, n, oh, ow) memory seen as (n, f, oh, ow): no copy; backward undoes the view for free.
        return out.reshape(self.filters, n, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        kh, kw = self._kernel
        (sh, sw), (dh, dw) = self._stride, self._dilation
        n, channels = self._x_shape[:2]
        oh, ow = self._out_hw
        g = grad.transpose(1, 0, 2, 3).reshape(self.filters, n * oh * ow)
        weight = self.weight.value.reshape(self.filters, -1)
        if self.weight.trainable:  # a frozen one's gradient is never computed
            self.weight.grad += (g @ self._cols.T).reshape(self.weight.shape)
        if self.bias.trainable:
            self.bias.grad += g.sum(axis=1)
        if not self.needs_input_grad:  # the model's first layer: no col2im at all
            return None
        dcols = (weight.T @ g).reshape(channels, kh, kw, n, oh, ow)
        dxp = np.zeros(self._xp_shape, dtype=dcols.dtype)
        for i in range(kh):  # col2im: one strided add per kernel position
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                dxp[:, :, rows, cols] += dcols[:, i, j].transpose(1, 0, 2, 3)
        (pt, _), (pl, _) = self._pads()
        h, w = self._x_shape[2:]
        return dxp[:, :, pt : pt + h, pl : pl + w]

    def to_onnx(self, graph: Graph, x: str) -> str:
        """One ONNX Conv with forward's explicit padding (so "same" keeps PyTorch's split)."""
        return conv_to_onnx(graph, x, self.weight, self.bias, self._stride, self._dilation, self._pads())



# -- pools --------------------------------------------------------------------------------------------


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
    register(Conv2D)
    register(MaxPool2D)
    register(AvgPool2D)
    register(GlobalAvgPool2D)
