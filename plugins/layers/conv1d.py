"""Layers over sequences laid out (batch, channels, length), as in PyTorch: Conv1D, MaxPool1D,
AvgPool1D, GlobalAvgPool1D and GlobalMaxPool1D.

Conv1D gathers its input windows once (im2col, from a strided view) and multiplies them with the
kernels in one matrix product; the pools visit their windows as pool_size strided slices, each a
whole-array operation, never a loop over samples or positions.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import lamina
from lamina.case import Case, distinct
from lamina.plugins.layers._spatial import (
    as_given,
    batch_chunks,
    conv_to_onnx,
    max_windows,
    max_windows_backward,
    scratch,
)

if TYPE_CHECKING:
    from lamina.export import Graph


def _single(value: object, name: str, owner: str, minimum: int = 1) -> int:
    """An int >= minimum, or a 1-tuple of one (PyTorch takes both), as an int."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if (len(items) != 1 or isinstance(items[0], bool) or not isinstance(items[0], (int, np.integer))
            or items[0] < minimum):
        raise lamina.ArgumentError(
            f"{owner}({name}={value!r}): {name} must be an int >= {minimum} (or a 1-tuple of one), "
            f"got {lamina.checks.describe(value)}; pass e.g. {name}={max(minimum, 2)}"
        )
    return int(items[0])


def _check_sequences(x: np.ndarray, owner: str) -> None:
    if x.ndim != 3:
        hint = (
            "add a channel axis, e.g. x[:, None, :] or a Reshape((1, -1)) layer"
            if x.ndim == 2
            else "reshape it, e.g. with a Reshape((channels, -1)) layer"
        )
        raise lamina.ShapeError(
            f"{owner} expects sequences laid out as (batch, channels, length), got shape {x.shape} "
            f"({x.ndim} dimensions); {hint}"
        )


def _windows_out(x: np.ndarray, padded: int, window: int, stride: int, owner: str, fix: str) -> int:
    """How many windows of `window` fit in the (padded) length at `stride`; a ShapeError when none does."""
    if padded < window:
        pad = f" ({padded} with padding)" if padded != x.shape[2] else ""
        raise lamina.ShapeError(
            f"{owner}: the input of shape {x.shape} has length {x.shape[2]}{pad}, shorter than the "
            f"window of {window}; expected a length of at least {window - padded + x.shape[2]}: {fix}"
        )
    return (padded - window) // stride + 1


class Conv1D(lamina.Layer):
    """x (batch, channels, length) -> y (batch, filters, out_length); "weight" (filters, channels, k),
    "bias" (filters,).

    y[n, f, o] = bias[f] + sum over c, j of weight[f, c, j] * xpad[n, c, s*o + d*j], as torch.nn.Conv1d.
    `padding` is an int, "valid" (0) or "same" (output length = input length; stride 1; the odd
    position goes at the end, as in PyTorch).
    """

    splits_batch = True  # parts of the batch on lamina's threads
    # What forward keeps for backward: the (padded) input; its own padded copy and im2col buffer,
    # kept between steps.
    keeps = ("_xp", "_xpad", "_cols")
    torch_layout = True  # torch.nn.Conv1d(channels, filters, kernel_size, stride, padding, dilation)

    conformance_cases = [
        Case({"filters": 2, "kernel_size": 3, "padding": 1}, (2, 3, 6), wrong_shape=(2, 2, 6)),
        Case({"filters": 3, "kernel_size": 2, "stride": 2, "dilation": 2, "bias_init": "normal"}, (2, 2, 7),
             wrong_shape=(2, 14)),
        Case({"filters": 2, "kernel_size": 4, "padding": "same", "bias_init": "normal"}, (1, 2, 5),
             wrong_shape=(1, 2, 5, 1)),
    ]

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        dilation: int | tuple[int] = 1,
        weight_init: str | lamina.Initializer = "he_uniform",
        bias_init: str | lamina.Initializer = "zeros",
    ) -> None:
        self.filters = lamina.checks.positive_int(filters, "filters", "Conv1D", example=16)
        self.kernel_size = as_given(kernel_size)
        self.stride = as_given(stride)
        self.padding = as_given(padding)
        self.dilation = as_given(dilation)
        self.weight_init = weight_init
        self.bias_init = bias_init
        self._kernel = _single(kernel_size, "kernel_size", "Conv1D")
        self._stride = _single(stride, "stride", "Conv1D")
        self._dilation = _single(dilation, "dilation", "Conv1D")
        if isinstance(padding, str):
            lamina.checks.one_of(padding, "padding", "Conv1D", ("valid", "same"))
            if padding == "same" and self._stride != 1:
                raise lamina.ArgumentError(
                    f"Conv1D(padding='same', stride={stride!r}): 'same' padding needs stride=1, as in PyTorch; "
                    "pass an int padding for strided convolutions"
                )
            total = 0 if padding == "valid" else self._dilation * (self._kernel - 1)
            self._pads = (total // 2, total - total // 2)  # PyTorch puts the odd position at the end
        else:
            pad = _single(padding, "padding", "Conv1D", minimum=0)
            self._pads = (pad, pad)
        self._weight_init = lamina.resolve("initializer", weight_init, "weight_init", "Conv1D")
        self._bias_init = lamina.resolve("initializer", bias_init, "bias_init", "Conv1D")
        self.weight: lamina.Parameter | None = None
        self.bias: lamina.Parameter | None = None

    def _owner(self) -> str:
        return f"Conv1D(filters={self.filters}, kernel_size={self.kernel_size!r})"

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.weight is None or self.bias is None else {"weight": self.weight, "bias": self.bias}

    def build(self, x: np.ndarray) -> None:
        _check_sequences(x, self._owner())
        if x.shape[1] == 0:
            raise lamina.ShapeError(f"{self._owner()} got shape {x.shape}, with no channels (axis 1); "
                                    "give it at least one")
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        shape = (self.filters, x.shape[1], self._kernel)
        self.weight = lamina.Parameter(self._weight_init(shape, dtype))
        self.bias = lamina.Parameter(self._bias_init((self.filters,), dtype, *lamina.fans(shape)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        owner = self._owner()
        _check_sequences(x, owner)
        if self.weight is None or self.bias is None:  # forward called directly, not through layer(x)
            self.build(x)
        weight, bias = self.weight, self.bias
        if weight is None or bias is None:
            raise lamina.LaminaError(f"{owner}: build() made no weights")
        channels = weight.shape[1]
        if x.shape[1] != channels:
            raise lamina.ShapeError(
                f"{owner} was built for {channels} input channels (axis 1), "
                f"expected shape (batch, {channels}, length), "
                f"but got shape {x.shape}, with {x.shape[1]}; give it {channels} channels, or use a new Conv1D"
            )
        if x.dtype.kind != "f":
            x = x.astype(weight.value.dtype)
        k, s, d = self._kernel, self._stride, self._dilation
        left, right = self._pads
        n, length = x.shape[0], x.shape[2]
        span = d * (k - 1) + 1
        out_len = _windows_out(x, length + left + right, span, s, owner,
                               "use a smaller kernel_size or dilation, more padding, or longer inputs")
        rows = channels * k
        threads = lamina.parallel.threads()
        chunks = batch_chunks(n, (rows + 1) * out_len * x.itemsize, threads)
        most = max(chunk.stop - chunk.start for chunk in chunks)
        # Charged before they exist: padding and windows can make these far larger than x.
        if left or right:
            self.reserve((n, channels, length + left + right), x.dtype, "the padded input")
        self.reserve((rows + 1, min(threads, len(chunks)) * most * out_len), x.dtype, "the im2col buffers")
        self.reserve((n, self.filters, out_len), x.dtype, "the output", output=True)
        if left or right:
            xp, fresh = scratch(self, "_xpad", (n, channels, length + left + right), x.dtype)
            if fresh:  # the ends stay zero from step to step: only the inside is written
                xp[...] = 0
            xp[:, :, left : left + length] = x
        else:
            xp = x
        self._xp, self._geometry = xp, (length, out_len, chunks)
        self._filled: dict[int, slice] = {}  # the chunk each thread's buffer holds
        # A last row of ones in the im2col matrix makes the bias the weight of a constant input:
        # the one matrix product adds it, and backward's product gives its gradient.
        kernels = np.concatenate((weight.value.reshape(self.filters, rows), bias.value[:, None]), axis=1)
        out = np.empty((self.filters, n, out_len), dtype=np.result_type(x.dtype, kernels.dtype))

        def gather_and_multiply(part: Sequence[slice], worker: int) -> None:
            for chunk in part:
                np.matmul(kernels, self._im2col(chunk, worker), out=out[:, chunk].reshape(self.filters, -1))

        # Both cores for the copies too, not only for BLAS: a part of the chunks on each thread.
        lamina.parallel.split(chunks, gather_and_multiply, work=n * (rows + 1) * out_len * x.itemsize)
        # (f, n, out_len) memory seen as (n, f, out_len): no copy; backward undoes the view for free.
        return out.transpose(1, 0, 2)

    def _im2col(self, chunk: slice, worker: int) -> np.ndarray:
        """The windows of samples `chunk` as a (taps + 1, samples * out_len) matrix, one row per
        kernel tap (c, j) (contiguous runs along the length: faster to copy than a row per
        output) and a last row of ones, in thread `worker`'s kept buffer. The batch goes through in
        chunks of a size that stays in the CPU's cache from this copy to the product that reads it."""
        k, s, d = self._kernel, self._stride, self._dilation
        xp = self._xp
        length, out_len, chunks = self._geometry
        rows = xp.shape[1] * k
        most = max(chunk.stop - chunk.start for chunk in chunks)
        kept, fresh = scratch(self, "_cols", (rows + 1, most, out_len), xp.dtype, worker)
        if fresh:
            kept[rows] = 1
        cols = kept[:, : chunk.stop - chunk.start]
        windows = sliding_window_view(xp[chunk], d * (k - 1) + 1, axis=2)[:, :, ::s, ::d]  # (n, c, out_len, k)
        cols[:rows].reshape(xp.shape[1], k, *cols.shape[1:])[...] = windows.transpose(1, 3, 0, 2)
        self._filled[worker] = chunk
        return cols.reshape(rows + 1, -1)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        xp = self._xp
        length, out_len, chunks = self._geometry
        n, channels, padded = xp.shape
        k, s, d = self._kernel, self._stride, self._dilation
        rows = channels * k
        # [dL/dW, dL/db] = g cols^T (the bias row of cols is ones), dL/dcols = W^T g, a chunk at a time.
        # (filters, n, out_len); a chunk of it as a (filters, samples * out_len) matrix is a view
        # when dL/dy comes in forward's layout, else a copy of that chunk only.
        g = grad.transpose(1, 0, 2)
        both = None
        if self.weight.trainable:
            both = np.zeros((rows + 1, self.filters), dtype=np.result_type(g.dtype, xp.dtype))
        elif self.bias.trainable:  # the weight frozen: the bias row of the product alone
            self.bias.grad += g.sum(axis=(1, 2))
        input_grad = self.needs_input_grad
        if input_grad:
            kernels_t = self.weight.value.reshape(self.filters, rows).T
            # col2im: tap j of output o read xpad[s*o + d*j], so one strided add per tap. dxp is
            # laid out (c, n, length) like the taps' products, so each add runs over matching strides.
            dxp = np.zeros((channels, n, padded), dtype=np.result_type(g.dtype, kernels_t.dtype))

        def part_grads(part: Sequence[slice], worker: int) -> np.ndarray | None:
            """[dL/dW, dL/db] of one thread's chunks, their rows of dL/dx added into dxp."""
            mine = None if both is None else np.zeros_like(both)
            # Backwards through the chunks: the last one forward gathered is still in the buffer.
            for chunk in reversed(part):
                rows_g = g[:, chunk].reshape(self.filters, -1)
                if mine is not None:
                    if self._filled.get(worker) == chunk:
                        cols = vars(self)["_cols"][worker][:, : chunk.stop - chunk.start].reshape(rows + 1, -1)
                    else:
                        cols = self._im2col(chunk, worker)
                    mine += cols @ rows_g.T  # (rows + 1, filters): OpenBLAS runs it faster than g @ cols.T
                if not input_grad:
                    continue
                dcols = (kernels_t @ rows_g).reshape(channels, k, chunk.stop - chunk.start, out_len)
                into = dxp[:, chunk]
                for j in range(k):
                    into[:, :, j * d : j * d + s * (out_len - 1) + 1 : s] += dcols[:, j]
            return mine

        # A part of the chunks on each thread: their rows of dL/dx, and their share of dL/dW.
        for partial in lamina.parallel.split(chunks, part_grads, work=n * (rows + 1) * out_len * g.itemsize):
            if both is not None and partial is not None:
                both += partial
        if both is not None:
            self.weight.grad += both[:rows].T.reshape(self.weight.shape)
            if self.bias.trainable:
                self.bias.grad += both[rows]
        if not input_grad:  # the model's first layer: no col2im at all
            return None
        left = self._pads[0]
        return dxp[:, :, left : left + length].transpose(1, 0, 2)

    def to_onnx(self, graph: Graph, x: str) -> str:
        """One ONNX Conv with forward's explicit padding (so "same" keeps PyTorch's split)."""
        return conv_to_onnx(graph, x, self.weight, self.bias, [self._stride], [self._dilation], [self._pads])


class _Pool1D(lamina.Layer):
    _onnx_op = ""  # the ONNX pooling operator

    def __init__(self, pool_size: int | tuple[int], stride: int | tuple[int] | None = None) -> None:
        owner = type(self).__name__
        self.pool_size = as_given(pool_size)
        self.stride = as_given(stride)
        self._pool = _single(pool_size, "pool_size", owner)
        self._stride = self._pool if stride is None else _single(stride, "stride", owner)

    def _slices(self, x: np.ndarray) -> list[slice]:
        """The slice of x's length for each position in the window, sized to the output."""
        owner = f"{type(self).__name__}(pool_size={self.pool_size!r})"
        _check_sequences(x, owner)
        p, s = self._pool, self._stride
        out_len = _windows_out(x, x.shape[2], p, s, owner, "use a smaller pool_size, or longer inputs")
        return [slice(i, i + s * (out_len - 1) + 1, s) for i in range(p)]

    def to_onnx(self, graph: Graph, x: str) -> str:
        """ONNX MaxPool or AveragePool, unpadded and in floor mode: whole windows only, as forward."""
        return graph.op(self._onnx_op, x, kernel_shape=[self._pool], strides=[self._stride])


class MaxPool1D(_Pool1D):
    """y = the max of each pool_size window (stride defaults to pool_size); (n, c, length) -> (n, c, out_length).

    The gradient goes to the window's max (the first one on ties), as in PyTorch. Forward
    records which window position won, so backward is one compare and multiply per position.
    """

    splits_batch = True  # parts of the batch on lamina's threads
    keeps = ("_x_like", "_winner", "_windows")  # what forward keeps for backward
    _onnx_op = "MaxPool"

    conformance_cases = [
        Case({"pool_size": 2}, (2, 3, 6), input=distinct, wrong_shape=(2, 6)),
        Case({"pool_size": 3, "stride": 1}, (1, 2, 5), input=distinct, wrong_shape=(1, 2, 5, 5)),
        Case({"pool_size": 3, "stride": 2}, (2, 2, 7), input=distinct),
    ]

    def forward(self, x: np.ndarray) -> np.ndarray:
        slices = [(window,) for window in self._slices(x)]
        out, winner = max_windows(x, slices)
        self._x_like, self._winner, self._windows = x, winner, slices
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        overlapping = self._stride < self._pool
        tiles = self._stride == self._pool and self._x_like.shape[2] % self._pool == 0
        return max_windows_backward(self._x_like, self._winner, self._windows, grad, overlapping, tiles)


class AvgPool1D(_Pool1D):
    """y = the mean of each pool_size window (stride defaults to pool_size); (n, c, length) -> (n, c, out_length)."""

    keeps = ("_shape", "_windows")  # what forward keeps for backward
    _onnx_op = "AveragePool"

    conformance_cases = [
        Case({"pool_size": 2}, (2, 3, 6), wrong_shape=(2, 6)),
        Case({"pool_size": 3, "stride": 1}, (1, 2, 5), wrong_shape=(1, 2, 5, 5)),
    ]

    def forward(self, x: np.ndarray) -> np.ndarray:
        slices = self._slices(x)
        out = x[:, :, slices[0]].copy(order="K")
        for window in slices[1:]:
            out += x[:, :, window]
        out *= 1.0 / len(slices)
        self._shape, self._windows = x.shape, slices
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # Each position of a window gets grad / pool_size.
        dx = np.zeros(self._shape, dtype=grad.dtype)
        share = grad * (1.0 / len(self._windows))
        for window in self._windows:
            dx[:, :, window] += share
        return dx


def _check_global(x: np.ndarray, owner: str) -> None:
    _check_sequences(x, owner)
    if x.shape[2] == 0:
        raise lamina.ShapeError(f"{owner} got shape {x.shape}, of length 0; give it sequences of length >= 1")


class GlobalAvgPool1D(lamina.Layer):
    """y = the mean over the length; (n, c, length) -> (n, c)."""

    keeps = ("_shape",)  # what forward keeps for backward

    conformance_cases = [Case(shape=(2, 3, 5), wrong_shape=(2, 3))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_global(x, "GlobalAvgPool1D")
        self._shape = x.shape
        return x.mean(axis=2)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # Every position gets grad / length.
        return np.broadcast_to((grad * (1.0 / self._shape[2]))[:, :, None], self._shape).copy()

    def to_onnx(self, graph: Graph, x: str) -> str:
        """ReduceMean over the length: unlike GlobalAveragePool, it drops that axis and runs
        in float64 on onnxruntime."""
        return graph.reduce("ReduceMean", x, [2])


class GlobalMaxPool1D(lamina.Layer):
    """y = the max over the length; (n, c, length) -> (n, c). The gradient goes to the first max, as in PyTorch."""

    keeps = ("_shape", "_argmax")  # what forward keeps for backward

    conformance_cases = [Case(shape=(2, 3, 5), input=distinct, wrong_shape=(2, 3))]

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_global(x, "GlobalMaxPool1D")
        argmax = x.argmax(axis=2)[:, :, None]  # argmax picks the first of equal maxima
        self._shape, self._argmax = x.shape, argmax
        return np.take_along_axis(x, argmax, axis=2)[:, :, 0]

    def backward(self, grad: np.ndarray) -> np.ndarray:
        dx = np.zeros(self._shape, dtype=grad.dtype)
        np.put_along_axis(dx, self._argmax, grad[:, :, None], axis=2)
        return dx

    def to_onnx(self, graph: Graph, x: str) -> str:
        """ReduceMax over the length: unlike GlobalMaxPool, it drops that axis and runs
        in float64 on onnxruntime."""
        return graph.reduce("ReduceMax", x, [2])


@lamina.hookimpl
def register_layers(register):
    register(Conv1D)
    register(MaxPool1D)
    register(AvgPool1D)
    register(GlobalAvgPool1D)
    register(GlobalMaxPool1D)
