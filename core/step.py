"""One training step: forward, backward, the gradients summed over processes, the guard
against NaN and infinity, gradient clipping and the optimizer's update."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lamina.errors import NonFiniteError
from lamina.loss import Loss
from lamina.metric import Metric
from lamina.optimizer import Optimizer
from lamina.parameter import Parameter
from lamina.strategy import Strategy

if TYPE_CHECKING:
    from lamina.model import Model


class Step:
    """`step(xb, yb)` trains `model` on one batch (this process's rows of it) and returns the
    sums over the global batch of [loss, *metrics] (each a per-row mean times the rows)."""

    def __init__(
        self, model: Model, loss: Loss, optim: Optimizer, metrics: list[Metric], clip: float | None, strategy: Strategy
    ) -> None:
        self.model, self.loss, self.optim, self.metrics = model, loss, optim, metrics
        self.clip, self.strategy = clip, strategy
        # The loss may take over the last layer's backward (CrossEntropy after Softmax).
        self.fused = loss.fuses_with(model.layers[-1])
        self.params: list[Parameter] | None = None  # a layer may build on the first forward
        self.grads: list[np.ndarray] = []  # every gradient, as views of one buffer per dtype

    def __call__(self, xb: np.ndarray, yb: np.ndarray) -> list[float]:
        model, loss, rows = self.model, self.loss, len(xb)
        pred = model.forward(xb)
        value = float(loss(pred, yb))
        if self.params is None:
            self.params = list(dict.fromkeys(model.parameters().values()))  # a shared one once
            self.grads = gather_gradients(self.params)
        for grads in self.grads:  # one call zeroes every gradient
            grads.fill(0)
        if self.fused:
            model.backward(loss.fused_backward(), from_layer=len(model.layers) - 2)
        else:
            model.backward(loss.backward())
        sums = [value * rows, *(float(metric(pred, yb)) * rows for metric in self.metrics)]
        sums = self.strategy.reduce_step(self.params, sums)
        if not math.isfinite(sums[0]) or not _all_finite(self.grads):
            raise NonFiniteError(diagnose(model, loss, xb, yb))
        if self.clip is not None:
            clip_grad_norm(self.params, self.clip)
        self.optim.step(self.params)
        return sums


def gather_gradients(params: list[Parameter]) -> list[np.ndarray]:
    """Make every parameter's `.grad` a view of one buffer per dtype and return the buffers, so
    that a step zeroes and checks all gradients in one call each instead of one per parameter."""
    groups: dict[np.dtype, list[Parameter]] = {}
    for param in params:
        groups.setdefault(param.grad.dtype, []).append(param)
    buffers = []
    for dtype, group in groups.items():
        flat = np.zeros(sum(param.size for param in group), dtype=dtype)
        offset = 0
        for param in group:
            view = flat[offset : offset + param.size].reshape(param.shape)
            view[...] = param.grad
            param.grad = view
            offset += param.size
        buffers.append(flat)
    return buffers


def _all_finite(arrays: list[np.ndarray]) -> bool:
    # The dot product of an array with itself is NaN or infinite when any element is; it reads
    # the array once through BLAS (3x faster than a sum) and allocates nothing. It overflows
    # for elements beyond ~1e19 in float32, hence the exact recheck on that rare path.
    for array in arrays:
        if not math.isfinite(float(np.vdot(array, array))) and not np.isfinite(array).all():
            return False
    return True


def clip_grad_norm(params: Sequence[Parameter], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most `max_norm` (as
    torch.nn.utils.clip_grad_norm_ does); returns the norm before clipping."""
    total = math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for param in params:
            param.grad *= scale
    return total


def diagnose(model: Model, loss: Loss, xb: np.ndarray, yb: np.ndarray) -> str:
    """Replay a step layer by layer and name the first non-finite output or gradient."""
    if not np.isfinite(xb).all():
        return "the input batch x contains NaN or infinity"
    if yb.dtype.kind == "f" and not np.isfinite(yb).all():
        return "the targets y contain NaN or infinity"
    out = xb
    for i, layer in enumerate(model.layers):
        out = layer(out)
        if not np.isfinite(out).all():
            return f"the output of Model.layers[{i}], {layer!r}, is not finite"
    if not math.isfinite(float(loss(out, yb))):
        return f"the loss {loss!r} is not finite although its input is"
    model.zero_grad()
    grad: np.ndarray | None = loss.backward()
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        if grad is None:
            break
        grad = layer.backward(grad)
        bad = [n for n, p in layer.parameters().items() if not np.isfinite(p.grad).all()]
        if bad or (grad is not None and not np.isfinite(grad).all()):
            what = f"the gradient of its {', '.join(bad)}" if bad else "its input gradient"
            return f"{what} in Model.layers[{i}], {layer!r}, is not finite"
    return "a value is not finite"
