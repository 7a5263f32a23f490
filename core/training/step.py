"""One training step: forward, backward, the gradients summed over processes, the guard
against NaN and infinity, gradient clipping and the optimizer's update."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamina.errors import NonFiniteError
from lamina.parameter import Parameter
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.protocols.strategy import Strategy
from lamina.protocols.trainable import Trainable
from lamina.training.outputs import OutputLosses
from lamina.training.structure import Layout, rows_of


class Step:
    """`step(xb, yb)` trains `model` on one batch (this process's rows of it) and returns the
    sums over the global batch of [loss] (a per-row mean times the rows); each metric is updated
    with this process's rows (the loop sums their states over processes at the end of the set).

    `step(xb, yb, wb)` with the rows' sample weights `wb` minimises the weighted mean loss
    sum(w l) / sum(w); the loss's sum is then sum(w l) (the loop divides by the weights), the
    metrics are updated with the weights, and the strategy's shard of the batch (set by the loop)
    is its share of the weights."""

    def __init__(
        self, model: Trainable, loss: Loss, optim: Optimizer, metrics: list[Metric], clip: float | None,
        strategy: Strategy
    ) -> None:
        self.model, self.loss, self.optim, self.metrics = model, loss, optim, metrics
        self.clip, self.strategy = clip, strategy
        # The loss may take over the last layer's backward (CrossEntropy after Softmax): in a chain
        # with one output, whose last layer is the output's.
        self.fused = is_chain(model) and loss.fuses_with(model.layers[-1])
        self.params: list[Parameter] | None = None  # a layer may build on the first forward
        self.grads: list[np.ndarray] = []  # every gradient, as views of one buffer per dtype
        # Model.train's class weights, per class index (in wb already); by output for several outputs
        self.class_weight: Any = None

    def __call__(self, xb: Any, yb: Any, wb: Any = None) -> list[float]:
        model, loss, rows = self.model, self.loss, rows_of(xb)
        pred = model.forward(xb)
        if wb is None:
            value, weight = float(loss(pred, yb)), float(rows)
        else:  # the loss's sum below is sum(w l): the mean times the weights, not the rows (with several
            # outputs, a dict of weights by output: each output's loss weighs its rows, the total counts rows)
            value = float(loss(pred, yb, sample_weight=wb, class_weight=self.class_weight))
            weight = float(rows) if isinstance(wb, dict) else float(wb.sum())
        if self.params is None:
            self.params = list(dict.fromkeys(model.parameters().values()))  # a shared one once
            self.grads = gather_gradients(self.params)
        for grads in self.grads:  # one call zeroes every gradient
            grads.fill(0)
        if self.fused:
            model.backward(loss.fused_backward(), from_layer=len(model.layers) - 2)
        else:
            model.backward(loss.backward())
        sums = [value * weight]
        update_metrics(self.metrics, pred, yb, sample_weight=wb)
        # Frozen parameters take no part: not summed over processes, clipped or updated (read
        # each step: a callback may freeze or unfreeze a layer between steps).
        params = [param for param in self.params if param.trainable]
        sums = self.strategy.reduce_step(params, sums)
        if not math.isfinite(sums[0]) or not _all_finite(self.grads):
            raise NonFiniteError(explain(model, loss, xb, yb, self.optim.iterations))
        if self.clip is not None:
            clip_grad_norm(params, self.clip)
        self.optim.step(params)
        return sums


def is_chain(model: Trainable) -> bool:
    """A chain of layers with one output (not a graph): its last layer makes the output."""
    return getattr(model, "graph", None) is None and getattr(model, "output_format", "array") == "array"


def update_metrics(metrics: list[Metric], pred: Any, y: Any, sample_weight: Any = None) -> None:
    """Add a batch to every metric's state (this process's rows; sample_weight one per row or None,
    a dict by output for several outputs)."""
    for metric in metrics:
        metric.update(pred, y, sample_weight=sample_weight)


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


# What to do about a non-finite value, by where it came from.
DATA_ADVICE = (
    "The data itself is not finite, so no learning rate or clipping can help: find the rows with "
    "~np.isfinite(a).all(axis=tuple(range(1, a.ndim))) and remove or fill them before training."
)
FIRST_STEP_ADVICE = (
    "No update has been made yet (the weights are as initialised or loaded), so the learning rate plays "
    "no part: the {pass_} pass itself overflows for this input at these weights. Scale the input (e.g. "
    "standardise it), or make the layer numerically stable (lamina.ops has stable sigmoid, softmax, "
    "log_softmax, logsumexp and softplus) or start it from smaller weights."
)
DIVERGED_ADVICE = (
    "The weights have had {updates} update(s) since they were initialised or loaded and have most likely "
    "diverged: try a lower learning rate or clip_grad_norm=1.0, and check the scale of the data."
)


def explain(model: Trainable, loss: Loss, xb: Any, yb: Any, updates: int) -> str:
    """Why a step's loss or gradients are not finite, and what to do: fix the data (no learning
    rate helps), the forward or backward pass before any update (no learning rate is involved
    yet), or a lower learning rate after `updates` optimizer steps (divergence)."""
    cause, where = diagnose(model, loss, xb, yb)
    if where == "data":
        advice = DATA_ADVICE
    elif updates == 0:
        advice = FIRST_STEP_ADVICE.format(pass_="backward" if where == "backward" else "forward")
    else:
        advice = DIVERGED_ADVICE.format(updates=updates)
    return f"{cause}. The model keeps its weights from before this step. {advice}"


def _where_not_finite(a: np.ndarray, name: str) -> str:
    """'the input batch x contains NaN or infinity: 2 value(s), in row(s) 1, 3 of its 4 (...)'."""
    bad = ~np.isfinite(a.reshape(len(a), -1)) if a.ndim > 1 else ~np.isfinite(a)[:, None]
    rows = np.flatnonzero(bad.any(axis=1))
    shown = ", ".join(str(r) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    return (f"{name} contains NaN or infinity: {int(bad.sum())} value(s), in row(s) {shown} of its {len(a)} "
            "(rows of this batch, counted from 0)")


def diagnose(model: Trainable, loss: Loss, xb: Any, yb: Any) -> tuple[str, str]:
    """Replay a step layer by layer and name the first non-finite input, output or gradient;
    with where it is: "data" (x or y), "forward", "backward" or "unknown"."""
    if not is_chain(model) or getattr(model, "input_format", "array") != "array":
        return diagnose_graph(model, loss, xb, yb)
    if xb.dtype.kind in "fc" and not np.isfinite(xb).all():
        return _where_not_finite(xb, "the input batch x"), "data"
    if yb.dtype.kind in "fc" and not np.isfinite(yb).all():
        return _where_not_finite(yb, "the targets y of this batch"), "data"
    out = xb
    for i, layer in enumerate(model.layers):
        out = layer(out)
        if not np.isfinite(out).all():
            return f"the output of Model.layers[{i}], {layer!r}, is not finite although its input is", "forward"
    if not math.isfinite(float(loss(out, yb))):
        return f"the loss {loss!r} is not finite although its input is", "forward"
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
            return f"{what} in Model.layers[{i}], {layer!r}, is not finite", "backward"
    # e.g. another process's rows, or a layer that drew other random numbers in the replay
    return "a value is not finite (replaying the step layer by layer found none)", "unknown"


def diagnose_graph(model: Trainable, loss: Loss, xb: Any, yb: Any) -> tuple[str, str]:
    """`diagnose` for a model whose layers are no chain (a graph) or whose data are a list or dict:
    the data by name, the model's outputs, each output's loss, then each layer's gradients."""
    inputs, outputs = Layout.inputs(model), Layout.outputs(model)
    targets = yb if isinstance(yb, dict) else {outputs.names[0]: yb}
    for layout, arg, batch in ((inputs, "x", inputs.items(xb)), (outputs, "y", targets)):
        for name, array in batch.items():
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                return _where_not_finite(array, f"the batch of {layout.label(arg, name)}"), "data"
    pred = model.forward(xb)
    for name, out in outputs.items(pred).items():
        if not np.isfinite(out).all():
            return f"the model's output {name!r} is not finite although its inputs are", "forward"
    value = float(loss(pred, yb))
    if isinstance(loss, OutputLosses):
        for name, (part, _) in loss.last.items():
            if not math.isfinite(part):
                return (f"the loss of output {name!r}, {loss.losses[name]!r}, is not finite although the output "
                        "is"), "forward"
    if not math.isfinite(value):
        return f"the loss {loss!r} is not finite although its input is", "forward"
    model.zero_grad()
    model.backward(loss.backward())
    for i, layer in enumerate(model.layers):
        bad = [n for n, p in layer.parameters().items() if not np.isfinite(p.grad).all()]
        if bad:
            return f"the gradient of its {', '.join(bad)} in Model.layers[{i}], {layer!r}, is not finite", "backward"
    return "a value is not finite (replaying the step found none)", "unknown"
