"""Images, (batch, channels, height, width): Conv2D, 2-D convolution (cross-correlation, as in PyTorch) by
im2col and matrix products, a cache-sized chunk of the batch at a time, and the pools MaxPool2D,
AvgPool2D, GlobalAvgPool2D (no parameters).

Pool windows are visited as kh * kw strided slices of the input, each a whole-array operation:
on numpy this is faster than a reduction over the two window axes of a strided view.
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
    check_images,
    conv_to_onnx,
    max_windows,
    max_windows_backward,
    pair,
    scratch,
    windows_out,
)

if TYPE_CHECKING:
    from lamina.export import Graph


class Conv2D(lamina.Layer):
    """x (batch, channels, h, w) -> y (batch, filters, oh, ow); "weight" (filters, channels, kh, kw), "bias" (filters,).

    y[n, f] = bias[f] + sum over c, i, j of weight[f, c, i, j] * xpad[n, c, s*oy + d*i, s*ox + d*j].
    `padding` is an int, a pair, "valid" (0) or "same" (output size = input size; stride 1).
    The input windows are gathered (im2col, from a strided view) a chunk of samples at a time
    into a buffer kept between steps and multiplied with the kernels, the bias included;
    the output is channels-last in memory (a (n, f, oh, ow) view), which Relu, the pools and
    the next Conv2D read without a copy. Backward gathers the chunk again for dL/dW and gets
    dL/dx from products of dL/dy with one kernel row (or tap) at a time, each added where it
    was read: never a loop over pixels or samples.
    """

    splits_batch = True  # parts of the batch on lamina's threads
    # What forward keeps for backward: the (padded) input; its own padded copy and im2col
    # buffer, kept between steps.
    keeps = ("_xp", "_xpad", "_cols")
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
        n, taps = x.shape[0], channels * kh * kw
        threads = lamina.parallel.threads()
        chunks = batch_chunks(n, oh * ow * (taps + 1) * x.itemsize, threads)
        most = max(chunk.stop - chunk.start for chunk in chunks)
        # Charged before they exist: padding and windows can make these far larger than x.
        padded = bool(pt or pb or pl or pr)
        if padded:
            self.reserve((n, channels, height, width), x.dtype, "the padded input")
        self.reserve((min(threads, len(chunks)) * most * oh * ow, taps + 1), x.dtype, "the im2col buffers")
        self.reserve((n, self.filters, oh, ow), x.dtype, "the output", output=True)
        # im2col copies runs of contiguous input: a kernel row of every channel (kw * c values)
        # when the work is laid out channels-last, (n, h, w, c); an output row (ow values) when
        # it is channels-first with one row of the im2col matrix per kernel tap. The longer run
        # wins: channels-last inside a network, tap rows for a first layer of 1 or 3 channels.
        tap_rows = (ow if sw == 1 else 1) > channels * (kw if dw == 1 else 1)
        order = (0, 1, 2, 3) if tap_rows else (0, 2, 3, 1)  # the working layout's axes of x
        xt = x.transpose(order)
        if padded:
            xp, fresh = scratch(self, "_xpad", tuple(n if a == 0 else (channels, height, width)[a - 1] for a in order),
                                x.dtype)
            if fresh:  # the border stays zero from step to step: only the inside is written
                xp[...] = 0
            xp.transpose(np.argsort(order))[:, :, pt : pt + x.shape[2], pl : pl + x.shape[3]] = x
        elif xt.flags.c_contiguous:  # e.g. this layer's own output, through Relu and a pool
            xp = xt
        else:
            xp, _ = scratch(self, "_xpad", xt.shape, x.dtype)
            xp[...] = xt
        self._xp = xp.transpose(np.argsort(order)).transpose(0, 2, 3, 1)  # (n, h, w, c), whatever the memory
        self._geometry = (x.shape, (oh, ow), chunks, tap_rows)
        self._filled: dict[int, slice] = {}  # the chunk each thread's buffer holds
        # One row per output pixel, one column per kernel tap and a last column of ones: the
        # bias is the weight of a constant input, added by the product itself, and backward's
        # product gives its gradient too.
        kernels = np.empty((taps + 1, self.filters), dtype=self.weight.value.dtype)
        kernels[:taps] = self._tap_matrix(self.weight.value)
        kernels[taps] = self.bias.value
        out = np.empty((n * oh * ow, self.filters), dtype=np.result_type(x.dtype, kernels.dtype))

        def gather_and_multiply(part: Sequence[slice], worker: int) -> None:
            for chunk in part:
                np.matmul(self._im2col(chunk, worker), kernels, out=out[chunk.start * oh * ow : chunk.stop * oh * ow])

        # Both cores for the copies too, not only for BLAS: a part of the chunks on each thread.
        lamina.parallel.split(chunks, gather_and_multiply, work=n * oh * ow * (taps + 1) * x.itemsize)
        # (n, oh, ow, f) memory seen as (n, f, oh, ow): no copy; backward undoes the view for free.
        return out.reshape(n, oh, ow, self.filters).transpose(0, 3, 1, 2)

    def _tap_matrix(self, weight: np.ndarray) -> np.ndarray:
        """weight (f, c, kh, kw) as the (taps, f) matrix the im2col columns multiply: taps in
        (i, j, c) order channels-last, (c, i, j) with tap rows."""
        if self._geometry[3]:
            return weight.reshape(self.filters, -1).T
        return weight.transpose(2, 3, 1, 0).reshape(-1, self.filters)

    def _im2col(self, chunk: slice, worker: int) -> np.ndarray:
        """The windows of samples `chunk` as a (pixels, taps + 1) matrix (the last column ones),
        in thread `worker`'s kept buffer: rows of it channels-last, columns of it with tap rows."""
        kh, kw = self._kernel
        (sh, sw), (dh, dw) = self._stride, self._dilation
        x_shape, (oh, ow), chunks, tap_rows = self._geometry
        xp = self._xp
        taps, size = x_shape[1] * kh * kw + 1, max(chunk.stop - chunk.start for chunk in chunks)
        if tap_rows:  # memory (taps, n, oh, ow), seen as (n, oh, ow, taps)
            kept, fresh = scratch(self, "_cols", (taps, size, oh, ow), xp.dtype, worker)
            cols = kept.transpose(1, 2, 3, 0)
        else:
            kept, fresh = scratch(self, "_cols", (size, oh, ow, taps), xp.dtype, worker)
            cols = kept
        if fresh:
            cols[..., -1] = 1
        cols = cols[: chunk.stop - chunk.start]
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        # (n, oh, ow, c, kh, kw): every window, a view
        windows = sliding_window_view(xp[chunk], (span_h, span_w), axis=(1, 2))[:, ::sh, ::sw, :, ::dh, ::dw]
        if tap_rows:
            cols[..., :-1].reshape(*cols.shape[:3], *windows.shape[3:])[...] = windows
        else:
            cols[..., :-1].reshape(*cols.shape[:3], kh, kw, x_shape[1])[...] = windows.transpose(0, 1, 2, 4, 5, 3)
        self._filled[worker] = chunk
        return cols.reshape(-1, taps)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        kh, kw = self._kernel
        (sh, sw), (dh, dw) = self._stride, self._dilation
        x_shape, (oh, ow), chunks, tap_rows = self._geometry
        n, channels, h, w = x_shape
        taps, pixels = channels * kh * kw, oh * ow
        # dL/dy channels-last, one row per output pixel: a view when it comes in forward's layout.
        g = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(n * pixels, self.filters)
        weight_grad, bias_grad, input_grad = self.weight.trainable, self.bias.trainable, self.needs_input_grad
        dx, plan = None, None
        if input_grad:
            # col2im without the (pixels, taps) matrix: per kernel tap, the product of dL/dy with
            # that tap's (filters, channels) weights is added where the tap read the input
            # (inside the padding only), in forward's working layout, seen as (n, h, w, c).
            dtype = np.result_type(g.dtype, self.weight.value.dtype)
            if tap_rows:
                dx = np.zeros((channels, n, h, w), dtype=dtype).transpose(1, 2, 3, 0)
            else:
                dx = np.zeros((n, h, w, channels), dtype=dtype)
            reach = [[self._reach(i * d, s, o, size, pad) for i in range(k)]
                     for k, d, s, o, size, pad in ((kh, dh, sh, oh, h, self._pads()[0][0]),
                                                   (kw, dw, sw, ow, w, self._pads()[1][0]))]
            if not tap_rows and sw == 1:
                # Channels-last at stride 1, a whole kernel row at once (_input_grad_by_rows):
                # every kernel row's weights side by side, (kw * f, kh * c): one product for all
                # rows, wide enough for the BLAS kernels (kh products c wide ran at half speed).
                row_kernels = self.weight.value[:, :, :, ::-1].transpose(3, 0, 2, 1).reshape(kw * self.filters,
                                                                                             kh * channels)
                plan = ("rows", np.ascontiguousarray(row_kernels), reach)
            else:
                plan = ("taps", np.ascontiguousarray(self.weight.value.transpose(2, 3, 0, 1)), reach)  # (kh, kw, f, c)

        def part_grads(part: Sequence[slice], worker: int) -> np.ndarray | None:
            return self._backward_part(part, worker, g, dx, plan if input_grad else None, weight_grad)

        # A part of the chunks on each thread: their rows of dL/dx, and their share of dL/dW.
        partials = lamina.parallel.split(chunks, part_grads, work=n * pixels * (taps + 1) * g.itemsize)
        sums = [partial for partial in partials if partial is not None]
        if sums:  # the weight's gradient wanted: [dL/dW; dL/db], the threads' shares added
            both = sums[0]
            for other in sums[1:]:
                both += other
            self.weight.grad += self._weight_from_taps(both[:taps])
            if bias_grad:
                self.bias.grad += both[taps]
        elif bias_grad:  # the weight frozen: the bias gradient alone
            self.bias.grad += g.sum(axis=0)
        if dx is None:  # the model's first layer: no col2im at all
            return None
        return dx.transpose(0, 3, 1, 2)

    def _backward_part(self, part: Sequence[slice], worker: int, g: np.ndarray, dx: np.ndarray | None,
                       plan: tuple | None, weight_grad: bool) -> np.ndarray | None:
        """For the chunks of `part` (one thread's): their rows of dL/dx added into `dx` (by
        kernel rows or by taps, as `plan` says; None: no input gradient), and [dL/dW; dL/db] of
        their samples (taps + 1, f) returned when `weight_grad`."""
        kh, kw = self._kernel
        x_shape, (oh, ow), _, tap_rows = self._geometry
        channels, pixels, taps = x_shape[1], oh * ow, x_shape[1] * kh * kw
        both = None
        if weight_grad:
            both = np.zeros((taps + 1, self.filters), dtype=np.result_type(g.dtype, self._xp.dtype))
        most = max((chunk.stop - chunk.start for chunk in part), default=0)
        work: tuple[np.ndarray, ...] = ()
        if plan is not None and dx is not None:
            if plan[0] == "rows":
                span_w, w = self._dilation[1] * (kw - 1) + 1, x_shape[3]
                width = max(span_w - 1 + ow, self._pads()[1][0] + w + span_w - 1)
                work = (np.zeros((most, oh, width, self.filters), dtype=g.dtype), plan[1],
                        np.empty((most * oh * w, kw * self.filters), dtype=g.dtype),
                        np.empty((most * oh * w, kh * channels), dtype=dx.dtype))
            else:
                work = (np.empty((channels, most * pixels) if tap_rows else (most * pixels, channels), dtype=dx.dtype),)
        # Backwards through the chunks: the last one forward gathered is still in the buffer.
        for chunk in reversed(part):
            rows = g[chunk.start * pixels : chunk.stop * pixels]
            if both is not None:
                if self._filled.get(worker) == chunk:
                    cols = vars(self)["_cols"][worker]
                    cols = (cols.transpose(1, 2, 3, 0) if tap_rows else cols)[: chunk.stop - chunk.start]
                    cols = cols.reshape(-1, taps + 1)
                else:
                    cols = self._im2col(chunk, worker)
                both += cols.T @ rows  # [dL/dW; dL/db] = cols^T g (the last column of cols is ones)
            if plan is None or dx is None:
                continue
            if plan[0] == "rows":
                self._input_grad_by_rows(rows, dx[chunk], work, plan[2][0])
            else:
                self._input_grad_by_taps(rows, dx[chunk], plan[1], work[0], plan[2])
        return both

    def _input_grad_by_taps(self, rows: np.ndarray, into: np.ndarray, kernels: np.ndarray, part: np.ndarray,
                            reach: list[list[tuple[tuple[int, int], slice]]]) -> None:
        """Add dL/dx of one chunk (`rows` of dL/dy, (pixels, f)) into `into` (samples, h, w, c),
        one kernel tap at a time: kernels (kh, kw, f, c)."""
        kh, kw = self._kernel
        _, (oh, ow), _, tap_rows = self._geometry
        count, channels = into.shape[0], into.shape[3]
        for i in range(kh):
            (y0, y1), rows_to = reach[0][i]
            for j in range(kw):
                (x0, x1), cols_to = reach[1][j]
                if y0 >= y1 or x0 >= x1:
                    continue
                if tap_rows:
                    tap = np.matmul(kernels[i, j].T, rows.T, out=part[:, : len(rows)])
                    tap = tap.reshape(channels, count, oh, ow).transpose(1, 2, 3, 0)
                else:
                    tap = np.matmul(rows, kernels[i, j], out=part[: len(rows)]).reshape(count, oh, ow, channels)
                into[:, rows_to, cols_to] += tap[:, y0:y1, x0:x1]

    def _input_grad_by_rows(self, rows: np.ndarray, into: np.ndarray, work: tuple[np.ndarray, ...],
                            reach: list[tuple[tuple[int, int], slice]]) -> None:
        """Add dL/dx of one chunk (`rows` of dL/dy, (pixels, f)) into `into` (samples, h, w, c),
        a kernel row at a time (channels-last, stride 1 along the width)."""
        kh, kw = self._kernel
        dw = self._dilation[1]
        _, (oh, ow), _, _ = self._geometry
        wide, row_kernels, gathered, part = work
        count, w, channels = into.shape[0], into.shape[2], into.shape[3]
        left, pad = dw * (kw - 1), self._pads()[1][0]
        wide = wide[:count]
        wide[:, :, left : left + ow] = rows.reshape(count, oh, ow, self.filters)  # zeros either side
        # (samples, oh, w, kw, f): for input column x (padded x + pad), g at x + pad - (kw-1-j')*dw
        windows = sliding_window_view(wide, left + 1, axis=2)[:, :, pad : pad + w, :, ::dw].transpose(0, 1, 2, 4, 3)
        gathered = gathered[: count * oh * w]
        gathered.reshape(windows.shape)[...] = windows
        # (samples, oh, w, kh, c): what kernel row i gives input row oy + i (padded)
        taps = np.matmul(gathered, row_kernels, out=part[: count * oh * w]).reshape(count, oh, w, kh, channels)
        for i in range(kh):
            (y0, y1), rows_to = reach[i]
            if y0 < y1:
                into[:, rows_to] += taps[:, y0:y1, :, i]

    def _weight_from_taps(self, rows: np.ndarray) -> np.ndarray:
        """A (taps, f) matrix in _tap_matrix's order as (f, c, kh, kw)."""
        kh, kw = self._kernel
        channels = self._geometry[0][1]
        if self._geometry[3]:
            return rows.T.reshape(self.filters, channels, kh, kw)
        return rows.reshape(kh, kw, channels, self.filters).transpose(3, 2, 0, 1)

    @staticmethod
    def _reach(offset: int, stride: int, outputs: int, size: int, pad: int) -> tuple[tuple[int, int], slice]:
        """For the kernel tap at `offset` along one axis: the outputs [first, stop) whose input
        falls inside the unpadded input of `size`, and the slice of input positions they read."""
        first = max(0, -((offset - pad) // stride))  # the first output reading position >= 0
        stop = min(outputs, (size - 1 + pad - offset) // stride + 1)  # past the last reading < size
        start = stride * first + offset - pad
        return (first, stop), slice(start, start + stride * (stop - first - 1) + 1, stride)

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

    splits_batch = True  # parts of the batch on lamina's threads
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
        h, w = self._x_like.shape[2:]
        tiles = (sh, sw) == (ph, pw) and h % ph == 0 and w % pw == 0
        return max_windows_backward(self._x_like, self._winner, self._windows, grad, sh < ph or sw < pw, tiles)


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
