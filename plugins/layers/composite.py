"""Layers made of layers: Sequential (a list as one layer), Residual (y = x + f(x)) and
Parallel (branches on the same input, merged).

Each writes its backward by hand (the fast path): it runs its sublayers' backward in reverse,
so a skip connection costs one addition, not a recorded graph. Sublayers are given as
instances, registered names or dicts (`{"type": "Linear", "units": 8}`), and nest; their
parameters are named after the nesting ("layers.0.weight", "branches.1.0.bias").
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import lamina
from lamina.case import Case
from lamina.plugins.layers.merge import onnx_product

MERGES = ("concat", "add", "mul")


def as_layers(items: object, argument: str, owner: str) -> list[lamina.Layer]:
    """A list of layer specs (instances, names, dicts) as Layer instances; errors name the item."""
    if isinstance(items, (str, dict, lamina.Layer)) or not isinstance(items, (list, tuple)) or not items:
        raise lamina.ArgumentError(
            f"{owner}({argument}={items!r}): {argument} must be a non-empty list of layers, e.g. "
            "[{'type': 'Linear', 'units': 8}, 'Relu']"
        )
    # One instance at several places shares its weights: the Chain saves each call's state.
    return [lamina.resolve("layer", item, f"{argument}[{i}]", owner) for i, item in enumerate(items)]


def export_chain(graph, layers: Sequence[lamina.Layer], x: str, prefix: str) -> str:
    """ONNX export of `layers` in order, each under its path ("layers.0", ...)."""
    for i, layer in enumerate(layers):
        x = graph.layer(layer, x, f"{prefix}.{i}")
    return x


class _Container(lamina.Layer):
    """What the three share: the input gradient is theirs only through their first layers."""

    _needs_input_grad = True

    def _first_layers(self) -> list[lamina.Layer]:
        raise NotImplementedError

    @property
    def needs_input_grad(self) -> bool:
        return self._needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, needed: bool) -> None:
        # Only the first layers' input gradients are this layer's; the others are always needed.
        self._needs_input_grad = needed
        for layer in self._first_layers():
            layer.needs_input_grad = needed


class Sequential(_Container):
    """`layers` applied in order (a `lamina.Chain`), as one layer: `Sequential([Linear(64), "Relu"])`."""

    keeps = ()  # the sublayers keep what their backward needs
    torch_layout = {"layers.": ""}  # torch.nn.Sequential: "0.weight"
    conformance_cases = [
        Case({"layers": [{"type": "Linear", "units": 4}, "Tanh", {"type": "Linear", "units": 2}]}, (4, 3),
             wrong_shape=(4, 5)),
        Case({"layers": [{"type": "LayerNorm"},
                         {"type": "Sequential", "layers": [{"type": "Linear", "units": 3}, "Sigmoid"]}]}, (3, 4)),
    ]

    def __init__(self, layers: Sequence[Any]) -> None:
        self.layers = as_layers(layers, "layers", "Sequential")

    def _first_layers(self) -> list[lamina.Layer]:
        return [self.layers[0]]

    @property
    def integer_input(self) -> bool:  # type: ignore[override]
        return self.layers[0].integer_input

    def forward(self, x: np.ndarray) -> np.ndarray:
        return lamina.Chain(self.layers, "Sequential.layers").forward(x)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        return lamina.Chain(self.layers, "Sequential.layers").backward(grad)

    def to_onnx(self, graph, x):
        return export_chain(graph, self.layers, x, "layers")


class Residual(_Container):
    """`y = x + f(x)`, f the `layers` in order (a skip connection): `Residual([Linear(64), "Relu"])`.

    f must keep the input's shape.
    """

    keeps = ()
    # A torch module holding `self.layers = nn.Sequential(...)`: "layers.0.weight"
    torch_layout = True
    # Widths drawn by the property tests vary, so the cases keep the width whatever it is.
    conformance_cases = [
        Case({"layers": ["LayerNorm", "Tanh"]}, (4, 3), wrong_shape=(4, 2)),
        Case({"layers": [{"type": "Residual", "layers": ["Sigmoid"]}, "Tanh"]}, (2, 3, 4)),
    ]

    def __init__(self, layers: Sequence[Any]) -> None:
        self.layers = as_layers(layers, "layers", "Residual")
        if self.layers[0].integer_input:
            raise lamina.ArgumentError(
                f"Residual(layers=[{type(self.layers[0]).__name__}, ...]): its first layer takes integer "
                "indices, which cannot be added to its output; put it before the Residual"
            )

    def _first_layers(self) -> list[lamina.Layer]:
        return [self.layers[0]]

    def forward(self, x: np.ndarray) -> np.ndarray:
        fx = lamina.Chain(self.layers, "Residual.layers").forward(x)
        if fx.shape != x.shape:
            raise lamina.ShapeError(
                f"Residual: its layers turned the input of shape {x.shape} into shape {fx.shape}, but "
                f"y = x + f(x) needs both the same; make the last layer give {x.shape[-1]} features "
                f"(e.g. Linear({x.shape[-1]})) or take the layers that change the shape out of the Residual"
            )
        return x + fx

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        inner = lamina.Chain(self.layers, "Residual.layers").backward(grad)
        if inner is None:  # nobody needs the input gradient (first layer of a model)
            return None
        return grad + inner

    def to_onnx(self, graph, x):
        return graph.op("Add", x, export_chain(graph, self.layers, x, "layers"))


class Parallel(_Container):
    """Each branch (a list of layers, or one layer) on the same input, the outputs merged by
    `merge`: "concat" along `axis` (default: the features), "add" or "mul" (same shapes).

    `Parallel([[Linear(8), "Relu"], [Linear(8), "Sigmoid"]], merge="mul")` is a gated unit.
    """

    keeps = ("_outputs",)
    # A torch module holding `self.branches = nn.ModuleList([nn.Sequential(...), ...])`: "branches.1.0.weight"
    torch_layout = True
    conformance_cases = [
        Case({"branches": [[{"type": "Linear", "units": 2}, "Tanh"], [{"type": "Linear", "units": 3}]]}, (4, 3),
             wrong_shape=(4, 5)),
        Case({"branches": [["LayerNorm"], ["Sigmoid"]], "merge": "mul"}, (4, 3)),
        Case({"branches": [["Tanh"], ["LayerNorm", "Sigmoid"], ["Tanh", "Tanh"]], "merge": "add"}, (4, 3)),
        Case({"branches": [["Tanh"], ["Sigmoid", "Tanh"]], "axis": 1}, (2, 3, 2)),
    ]

    def __init__(self, branches: Sequence[Any], merge: str = "concat", axis: int = -1) -> None:
        if (isinstance(branches, (str, dict, lamina.Layer)) or not isinstance(branches, (list, tuple))
                or len(branches) < 2):
            raise lamina.ArgumentError(
                f"Parallel(branches={branches!r}): branches must be a list of at least two branches, each a "
                "list of layers, e.g. [[{'type': 'Linear', 'units': 8}], ['Relu']]"
            )
        self.branches = [
            as_layers(branch if isinstance(branch, (list, tuple)) else [branch], f"branches[{b}]", "Parallel")
            for b, branch in enumerate(branches)
        ]
        if merge not in MERGES:
            raise lamina.ArgumentError(f"Parallel(merge={merge!r}): "
                                       f"merge must be one of {', '.join(map(repr, MERGES))}")
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise lamina.ArgumentError(
                f"Parallel(axis={axis!r}): axis must be a non-zero int (axis 0 is the batch); -1, the "
                "features, is the usual one"
            )
        kinds = {branch[0].integer_input for branch in self.branches}
        if len(kinds) > 1:
            raise lamina.ArgumentError(
                "Parallel(branches=...): some branches start with a layer that takes integer indices and "
                "some with one that takes floats; they all get the same input, so make them agree"
            )
        lamina.checks.distinct_layers([layer for branch in self.branches for layer in branch], "Parallel",
                                      "branches (flattened)")
        self.merge, self.axis = merge, axis

    def _first_layers(self) -> list[lamina.Layer]:
        return [branch[0] for branch in self.branches]

    @property
    def integer_input(self) -> bool:  # type: ignore[override]
        return self.branches[0][0].integer_input

    def forward(self, x: np.ndarray) -> np.ndarray:
        outputs = [lamina.Chain(branch, f"Parallel.branches[{b}]").forward(x) for b, branch in enumerate(self.branches)]
        shapes = [out.shape for out in outputs]
        if self.merge == "concat":
            axis = self._concat_axis(outputs)
            rest = {shape[:axis] + shape[axis + 1 :] for shape in shapes}
            if len(rest) > 1:
                raise lamina.ShapeError(
                    f"Parallel(merge='concat', axis={self.axis}): the branches gave shapes "
                    f"{', '.join(map(str, shapes))}, which differ on an axis other than {self.axis}; "
                    "make the branches agree there"
                )
            self._outputs = [out.shape[axis] for out in outputs]
            return np.concatenate(outputs, axis=axis)
        if len(set(shapes)) > 1:
            raise lamina.ShapeError(
                f"Parallel(merge={self.merge!r}): the branches gave shapes {', '.join(map(str, shapes))}, "
                f"but {self.merge!r} needs them all the same; make the branches' last layers agree"
            )
        if self.merge == "add":
            self._outputs = []
            return np.sum(outputs, axis=0, dtype=outputs[0].dtype) if len(outputs) > 2 else outputs[0] + outputs[1]
        self._outputs = outputs
        out = outputs[0] * outputs[1]
        for other in outputs[2:]:
            out *= other
        return out

    def _concat_axis(self, outputs: list[np.ndarray]) -> int:
        ndim = outputs[0].ndim
        if any(out.ndim != ndim for out in outputs) or not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise lamina.ShapeError(
                f"Parallel(merge='concat', axis={self.axis}): the branches gave shapes "
                f"{', '.join(str(out.shape) for out in outputs)}, which have no axis {self.axis} besides "
                "the batch axis to join them on"
            )
        return self.axis % ndim

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self.merge == "concat":
            bounds = np.cumsum(self._outputs)[:-1]
            grads = np.split(grad, bounds, axis=self.axis % grad.ndim)
        elif self.merge == "add":
            grads = [grad] * len(self.branches)
        else:
            grads = []
            for b in range(len(self.branches)):
                g = grad
                for other, out in enumerate(self._outputs):
                    if other != b:
                        g = g * out
                grads.append(g)
        total: np.ndarray | None = None
        for b, (branch, g) in enumerate(zip(self.branches, grads)):
            inner = lamina.Chain(branch, f"Parallel.branches[{b}]").backward(g)
            if inner is not None:
                total = inner if total is None else total + inner
        return total

    def to_onnx(self, graph, x):
        outputs = [export_chain(graph, branch, x, f"branches.{b}") for b, branch in enumerate(self.branches)]
        if self.merge == "concat":
            return graph.op("Concat", *outputs, axis=self.axis % graph.example(outputs[0]).ndim)
        if self.merge == "add":
            return graph.op("Sum", *outputs)
        return onnx_product(graph, outputs)


@lamina.hookimpl
def register_layers(register):
    register(Sequential)
    register(Residual)
    register(Parallel)
