"""GraphBlock: a layer whose inside is a graph of layers, written as a graph model is.

A plugin author writes `__init__` (the configuration, each argument stored under its name, as
for any layer) and `graph(self, x)`, which calls layers on the symbolic input `x` (merge layers
on lists of symbolic values) and returns the symbolic output. The block builds that graph on
its first input, runs it forward and backward like a graph model's (a layer used twice adds the
gradients of both uses), and is a layer like any other: saved by its configuration, its weights
rebuilt by `build`, exported to ONNX with its graph's nodes inline, checked by the kit.

>>> class GatedBlock(lamina.GraphBlock):
...     def __init__(self, units: int = 8):
...         self.units = units
...     def graph(self, x):
...         h = lamina.layer("Linear", self.units)(x)
...         gate = lamina.layer("Sigmoid")(lamina.layer("Linear", self.units)(x))
...         return lamina.layer("Add")([x, lamina.layer("Multiply")([h, gate])])
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lamina.checks import describe
from lamina.errors import ArgumentError, LaminaError, ShapeError
from lamina.graph.network import Graph
from lamina.graph.symbolic import Input, Symbol
from lamina.protocols.layer import Layer

# Where the layers made inside graph() (not attributes of the block) are kept, by position
LAYERS = "layers"


class GraphBlock(Layer):
    """Base class of layers made of a graph: override `graph(self, x) -> y` (x, y symbolic).

    Layers that are attributes of the block (made in `__init__`) keep their attribute names in
    the parameters' names ("dense.weight"); those made inside `graph` are kept in `self.layers`
    in the order of first use ("layers.0.weight"), the same on every build, so saved weights
    load back. A block whose input is integer indices (an Embedding first) sets
    `integer_input = True`, as any layer.
    """

    keeps = ("_call",)  # what forward keeps for backward: the inner graph's saved calls and output shapes

    def graph(self, x: Symbol) -> Symbol:
        """The block's output, computed from the symbolic input `x` (rows of the first input's shape)."""
        raise NotImplementedError(f"{type(self).__name__} must implement graph(self, x), returning the output of "
                                  "layers called on the symbolic input x")

    def build(self, x: np.ndarray) -> None:
        name = type(self).__name__
        if not isinstance(x, np.ndarray) or x.ndim == 0:
            raise ShapeError(f"{name} takes one array with the batch axis first, got {describe(x)}")
        if LAYERS in vars(self):
            raise ArgumentError(f"{name}: a GraphBlock keeps the layers made inside graph() in self.{LAYERS}; store "
                                f"your own layers under another attribute name")
        source = Input(x.shape[1:], dtype=x.dtype if x.dtype.kind in "fiu" else None)
        try:
            out = self.graph(source)
        except ShapeError as err:
            raise ShapeError(f"{name}: {err}") from None
        if not isinstance(out, Symbol) or out.is_input:
            raise LaminaError(f"{name}.graph(x) must return the output of a layer called on x (a symbolic value), "
                              f"got {describe(out) if not isinstance(out, Symbol) else 'x itself'}")
        network = Graph(source, out, owner=f"{name}.graph")
        own = {id(inner) for _, layer in self._sublayers() for inner in layer.walk()}
        made = [layer for layer in network.layers if id(layer) not in own]
        if made:
            setattr(self, LAYERS, made)
        self._network = network
        self.needs_input_grad = self.needs_input_grad  # tell the new layers

    @property
    def network(self) -> Graph:
        """The graph built on the first input (a LaminaError before it)."""
        found = vars(self).get("_network")
        if found is None:
            raise LaminaError(f"{type(self).__name__} has not seen an input yet: its graph is built on the first "
                              "input; call it on data (or on a lamina.Input) first")
        return found

    def forward(self, x: np.ndarray) -> np.ndarray:
        network = self.network
        try:
            out = network.run([x])[0]
        except ShapeError as err:
            raise ShapeError(f"{type(self).__name__}: {err}") from None
        self._drop_call()
        # The saved calls of shared inner layers and the output's shape, taken from the graph, so
        # that a block used at several places keeps one per call (its `_call`, in `keeps`).
        self._call = (network._saved, network._shapes)
        network._saved = {}
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        network = self.network
        network._saved, network._shapes = self._call
        try:
            found = network.backward(grad)
            return found if self.needs_input_grad else None
        except LaminaError as err:
            err.add_note(f"raised in the backward pass of {type(self).__name__}'s graph")
            raise
        finally:
            network._saved = {}  # still the block's: a second backward reads them again

    @property
    def needs_input_grad(self) -> bool:
        return vars(self).get("_needs_input_grad", True)

    @needs_input_grad.setter
    def needs_input_grad(self, needed: bool) -> None:
        # The input gradient is the block's only through the layers that read its input: those
        # that read nothing else skip it when nobody needs it.
        vars(self)["_needs_input_grad"] = needed
        network = vars(self).get("_network")
        if network is None:
            return
        inner = {id(node.layer) for node, refs in zip(network.nodes, network.refs) if max(refs) >= 1}
        for layer in network.layers:
            layer.needs_input_grad = needed or id(layer) in inner or layer.integer_input

    def _drop_call(self) -> None:
        call = vars(self).pop("_call", None)
        if call is not None:
            for saved in call[0].values():
                saved.close()

    def release(self) -> None:
        self._drop_call()
        super().release()

    def to_onnx(self, graph: Any, x: str) -> str:
        """The graph's nodes inline, each layer under its name in the block ("layers.0", "dense")."""
        network = self.network
        names = _paths(self)
        values = [x]
        for node, refs in zip(network.nodes, network.refs):
            args = [values[slot] for slot in refs]
            values.append(graph.layer(node.layer, args if node.listed else args[0], names[id(node.layer)],
                                      node.kwargs))
        return values[network.output_slots[0]]


def _paths(block: Layer) -> dict[int, str]:
    """Every layer inside `block` by id -> its path from the block ("layers.0", "dense.layers.1")."""
    found: dict[int, str] = {}

    def visit(prefix: str, layer: Layer) -> None:
        for name, inner in layer._sublayers():
            if id(inner) not in found:
                found[id(inner)] = f"{prefix}{name}"
                visit(f"{prefix}{name}.", inner)

    visit("", block)
    return found

