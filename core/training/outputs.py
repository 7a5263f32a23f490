"""A model with several outputs in training: a loss per output (or none), weighted into one total;
metrics per output; targets, sample and class weights per output.

`Model.train(loss=..., loss_weights=..., metrics=..., sample_weight=..., class_weight=...)` take
each either one for all outputs or per output: a dict by output name (`loss` and `loss_weights`
also a list by position for a model whose outputs are a list; a list given as `sample_weight`,
`class_weight` or `metrics` is one value for every output). The history then has `loss` (the weighted total) and, per
output, `<name>_loss` and `<name>_<metric>`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lamina.checks import describe
from lamina.errors import ArgumentError
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.registry import default_plugin, resolve
from lamina.training.options import as_list, is_weight
from lamina.training.structure import Layout


def several_outputs(model: Any) -> bool:
    """Whether training reads the model's outputs as a structure (a list or dict of them)."""
    return getattr(model, "output_format", "array") != "array"


def per_output(value: object, layout: Layout, owner: str, arg: str, single: bool) -> dict[str, Any]:
    """`value` by output name: a dict by name (outputs it leaves out get nothing), a list by
    position for list outputs, or, when `single`, the same for every output."""
    names = layout.names
    if isinstance(value, Mapping) and not (single and any(key not in names for key in value) and "type" in value):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ArgumentError(f"{owner}({arg}=...): {unknown[0]!r} is no output of the model; its outputs are "
                                f"{layout.listed()}; key {arg} by output name")
        return dict(value)
    if isinstance(value, (list, tuple)) and layout.format == "list" and len(value) == len(names) and single:
        return dict(zip(names, value))
    if isinstance(value, (list, tuple)) and single:
        raise ArgumentError(f"{owner}({arg}={describe(value)}): the model's outputs are {layout.listed()}; give {arg} "
                            "as a dict by output name" + (f" or a list of {len(names)}, one per output"
                                                          if layout.format == "list" else "") + ", or one for all")
    return {name: value for name in names}


def _fresh(plugin: Any) -> Any:
    """A new instance like `plugin`: losses and metrics keep per-call state, one per output."""
    return type(plugin)(**plugin.get_config())


class OutputLosses(Loss):
    """The loss of a model with several outputs: sum_k weight_k * loss_k(pred_k, y_k), each output's
    loss its (sample-weighted) mean over the rows. `y`, `sample_weight` and `class_weight` are
    dicts by output name; pred and `backward()` the model's structure (None for an output
    without a loss). `last` holds the last call's (value, weight of its rows) per output."""

    def __init__(self, losses: dict[str, Loss], loss_weights: dict[str, float], layout: Layout) -> None:
        self.losses, self.loss_weights, self.layout = losses, loss_weights, layout
        self.last: dict[str, tuple[float, float]] = {}
        self.scale: dict[str, float] = {}  # a process's share of each output's weights (set per step)

    def get_config(self) -> dict[str, Any]:
        return {"losses": dict(self.losses), "loss_weights": dict(self.loss_weights)}

    def __repr__(self) -> str:
        return f"OutputLosses({self.losses!r}, loss_weights={self.loss_weights!r})"

    def __call__(self, pred: Any, y: Any, sample_weight: Any = None, class_weight: Any = None) -> float:
        preds, weights, classes = self.layout.items(pred), sample_weight or {}, class_weight or {}
        total, self.last = 0.0, {}
        for name, loss in self.losses.items():
            w = weights.get(name)
            value = float(loss(preds[name], y[name], sample_weight=w, class_weight=classes.get(name)))
            self.last[name] = (value, float(len(preds[name]) if w is None else w.sum()))
            total += self.loss_weights[name] * self.scale.get(name, 1.0) * value
        return total

    def backward(self) -> Any:
        grads = {}
        for name, loss in self.losses.items():
            grad = loss.backward()
            factor = self.loss_weights[name] * self.scale.get(name, 1.0)
            grads[name] = grad if factor == 1.0 else grad * np.asarray(factor, dtype=grad.dtype)
        return self.layout.join(grads)

    backward._weighs_rows = True  # type: ignore[attr-defined]  # each loss weighs its own rows

    def release(self) -> None:
        for loss in self.losses.values():
            loss.release()

    def total(self, logs: Mapping[str, float], prefix: str = "") -> float:
        """The weighted total of the per-output losses in `logs` (`<name>_loss`)."""
        return float(sum(self.loss_weights[name] * logs[f"{prefix}{name}_loss"] for name in self.losses))


def make_loss(model: Any, loss: object, loss_weights: object, owner: str) -> Loss:
    """The loss `Model.train(loss=..., loss_weights=...)` and `evaluate` use: one Loss for a model
    with one output, else an OutputLosses."""
    if not several_outputs(model):
        if loss_weights is not None:
            raise ArgumentError(f"{owner}(loss_weights={describe(loss_weights)}): loss_weights weighs the losses "
                                "of a model's several outputs, and this model has one; leave it out")
        return default_plugin("loss", loss, "loss", owner)
    if isinstance(loss, OutputLosses):  # the model's own (after training or loading)
        if loss_weights is None:
            loss.scale = {}  # a step's process share, set again by each step that needs it
            return loss
        loss = dict(loss.losses)  # weighed again below
    layout = Layout.outputs(model)
    chosen = per_output(loss, layout, owner, "loss", single=True)
    losses: dict[str, Loss] = {}
    for name in layout.names:  # in the outputs' order
        if name in chosen and chosen[name] is not None:
            made = default_plugin("loss", chosen[name], f"loss[{name!r}]", owner)
            losses[name] = _fresh(made) if made in losses.values() else made
    if not losses:
        raise ArgumentError(f"{owner}(loss=...): no output has a loss; give one for all outputs or a dict by "
                            f"output name ({layout.listed()})")
    weights = per_output(1.0 if loss_weights is None else loss_weights, layout, owner, "loss_weights", single=True)
    for name, weight in weights.items():
        if not is_weight(weight):
            raise ArgumentError(f"{owner}(loss_weights=...): the weight of output {name!r} must be a finite number "
                                f">= 0, got {describe(weight)}")
    return OutputLosses(losses, {name: float(weights.get(name, 1.0)) for name in losses}, layout)


class OutputMetric(Metric):
    """A metric of one output: `metric` on that output's predictions, targets and weights; its key
    is `<output>_<metric name>`."""

    def __init__(self, metric: Metric, output: str, layout: Layout) -> None:  # noqa: D107
        self.metric, self.output, self.layout = metric, output, layout
        self.name = f"{output}_{metric.name}"
        self.greater_is_better = metric.greater_is_better
        self.concatenated = metric.concatenated

    def get_config(self) -> dict[str, Any]:
        return {"metric": self.metric, "output": self.output}

    def update(self, pred: Any, y: Any, sample_weight: Any = None) -> None:
        w = None if sample_weight is None else sample_weight.get(self.output)
        self.metric.update(self.layout.items(pred)[self.output], y[self.output], sample_weight=w)

    def reset(self) -> None:
        self.metric.reset()

    def result(self) -> Any:
        return self.metric.result()

    def state(self) -> dict[str, np.ndarray]:
        return self.metric.state()

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.metric.set_state(state)


class OutputLoss(Metric):
    """`<output>_loss`: one output's loss over the set, its (sample-weighted) mean over every row,
    from what OutputLosses computed on each batch."""

    greater_is_better = False

    def __init__(self, losses: OutputLosses, output: str) -> None:  # noqa: D107
        self.losses, self.output, self.name = losses, output, f"{output}_loss"

    def get_config(self) -> dict[str, Any]:
        return {"output": self.output}

    def update(self, pred: Any, y: Any, sample_weight: Any = None) -> None:
        value, weight = self.losses.last[self.output]
        self._accumulated()[:] += (value * weight, weight)


def make_metrics(model: Any, metrics: object, loss: Loss, owner: str) -> list[Metric]:
    """The metrics of `Model.train(metrics=...)`/`evaluate`: as given for one output; for several,
    each output's loss first, then a list for every output with a loss or a dict by output name."""
    if not isinstance(loss, OutputLosses):
        if isinstance(metrics, Mapping) and "type" not in metrics:
            raise ArgumentError(f"{owner}(metrics={describe(metrics)}): metrics by output name are for a model "
                                "with several outputs, and this one has one; pass a list of metrics")
        listed = [metrics] if isinstance(metrics, Mapping) else as_list(metrics)
        return [resolve("metric", m, "metrics", owner) for m in listed]
    layout = loss.layout
    made: list[Metric] = [OutputLoss(loss, name) for name in loss.losses]
    if isinstance(metrics, Mapping) and "type" not in metrics:
        chosen = per_output(metrics, layout, owner, "metrics", single=False)
    else:  # one list for every output that has a loss
        chosen = {name: metrics for name in loss.losses}
    for name in layout.names:
        value = chosen.get(name) or []
        for m in [value] if isinstance(value, Mapping) else as_list(value):
            metric = resolve("metric", m, f"metrics[{name!r}]", owner)
            made.append(OutputMetric(_fresh(metric) if isinstance(m, Metric) else metric, name, layout))
    return made


def needed_outputs(loss: OutputLosses, metrics: list[Metric]) -> tuple[str, ...]:
    """The outputs whose targets y must hold: those with a loss or a metric."""
    used = set(loss.losses) | {m.output for m in metrics if isinstance(m, OutputMetric)}
    return tuple(name for name in loss.layout.names if name in used)
