"""Graph: the layers of a `Model(inputs=..., outputs=...)` as nodes, run forward in the order
they were called and backward in reverse, the gradients of a value used twice added up.

A layer called at several places (shared weights) keeps one saved state per call: after each
such call the graph takes what the layer kept for its backward (`Layer._save_call`) and gives
it back for that call's backward, so every use gets its own gradient and they add up in the
layer's Parameters.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lamina.checks import as_floating, as_integers, describe, printable
from lamina.errors import ArgumentError, LaminaError, ShapeError
from lamina.graph.structure import entries, same_rows, spec, structured
from lamina.graph.symbolic import Input, Symbol, reachable
from lamina.protocols.chain import placed, shared_places
from lamina.protocols.layer import Layer, SavedCall


class Graph:
    """The nodes between `inputs` and `outputs` (each one symbolic value, a list or a dict of them).

    `nodes` are the layer calls in the order they were made (each after its inputs), `layers`
    each distinct layer once in the order of first use; `refs[j]` are the slots node j reads:
    slot i < len(inputs) is input i, slot len(inputs) + k is node k's output.
    """

    def __init__(self, inputs: object, outputs: object, owner: str = "Model") -> None:
        self.input_format, self.input_names, self.inputs = spec(inputs, "inputs", owner)
        self.output_format, self.output_names, self.outputs = spec(outputs, "outputs", owner)
        for i, symbol in enumerate(self.inputs):
            if not symbol.is_input:
                raise ArgumentError(f"{owner}: inputs entry {self.input_names[i]!r} is {symbol!r}, not a "
                                    "lamina.Input; a model's inputs are the Inputs its outputs are computed from")
        if len({id(s) for s in self.inputs}) != len(self.inputs):
            raise ArgumentError(f"{owner}: one Input is given twice among the inputs {list(self.input_names)}; "
                                "give each Input once")
        found = reachable(self.outputs)
        slots = {id(symbol): i for i, symbol in enumerate(self.inputs)}
        self._check_inputs(found, slots, owner)
        self.nodes = [symbol for symbol in found if not symbol.is_input]
        for symbol in self.nodes:
            slots[id(symbol)] = len(slots)
        self.refs = [tuple(slots[id(item)] for item in node.inputs) for node in self.nodes]
        self.output_slots = [slots[id(symbol)] for symbol in self.outputs]
        self.layers: list[Layer] = list({id(node.layer): node.layer for node in self.nodes}.values())
        self.shared = shared_places([node.layer for node in self.nodes])
        self._saved: dict[int, SavedCall] = {}
        self._shapes: list[tuple[int, ...]] = []  # the outputs' shapes in the last forward

    def _check_inputs(self, found: list[Symbol], slots: dict[int, int], owner: str) -> None:
        """Every Input the outputs need is among the inputs, and every input is needed."""
        for symbol in found:
            if symbol.is_input and id(symbol) not in slots:
                needing = [name for name, out in zip(self.output_names, self.outputs)
                           if any(s is symbol for s in reachable([out]))]
                raise ArgumentError(
                    f"{owner}: output {needing[0]!r} is computed from {symbol!r}, which is not among the inputs "
                    f"{list(self.input_names)}: it cannot be reached from the model's inputs. Add that Input to "
                    "inputs=, or compute the output from the given inputs only"
                )
        used = {id(symbol) for symbol in found}
        unused = [name for name, symbol in zip(self.input_names, self.inputs) if id(symbol) not in used]
        if unused:
            raise ArgumentError(f"{owner}: the input(s) {unused} are not used by any output; remove them from "
                                "inputs=, or compute an output from them")

    def place(self, j: int) -> str:
        """'Model node 3 (Linear)': node j as messages name it."""
        return f"Model node {j} ({type(self.nodes[j].layer).__name__})"

    # -- data ------------------------------------------------------------------------------

    def prepare_one(self, i: int, x: object, owner: str, dtype: np.dtype) -> np.ndarray:
        """Input i's data as the graph takes it: integers for an integer Input, else floats (ints and
        bools become the model's `dtype`), in rows of the Input's shape."""
        symbol, name = self.inputs[i], self.input_names[i]
        integer = symbol.dtype is not None and symbol.dtype.kind in "iu"
        array = as_integers(x, name, owner) if integer else as_floating(x, name, owner, dtype)
        if array.shape[1:] != symbol.shape:
            raise ShapeError(f"{owner}: input {name!r} must have rows of shape {symbol.shape} (an array of shape "
                             f"{(None, *symbol.shape)}); got an array of shape {array.shape}")
        return array

    def prepare(self, x: object, owner: str, dtype: np.dtype) -> list[np.ndarray]:
        """`x` (in the input structure) as a list of checked arrays in the inputs' order."""
        arrays = [self.prepare_one(i, item, owner, dtype)
                  for i, item in enumerate(entries(x, self.input_format, self.input_names, owner, "x"))]
        same_rows(arrays, self.input_names, owner)
        return arrays

    # -- forward and backward -------------------------------------------------------------------

    def forward(self, x: object, dtype: np.dtype) -> Any:
        """The outputs (in the output structure) for `x` (in the input structure)."""
        outs = self.run(self.prepare(x, "Model.forward", dtype))
        return structured(outs, self.output_format, self.output_names)

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The outputs, in order, for the inputs' arrays in order (already checked)."""
        self._drop_saved()
        values: list[Any] = [*arrays, *([None] * len(self.nodes))]
        first = len(arrays)
        for j, node in enumerate(self.nodes):
            layer = node.layer
            args = [values[slot] for slot in self.refs[j]]
            try:
                out = layer(args if node.listed else args[0], **node.kwargs)
            except ShapeError as err:
                raise ShapeError(f"{self.place(j)}: {err}") from None
            except Exception as err:
                err.add_note(f"raised in the forward pass of {self.place(j)}, {printable(repr(layer), 120)}")
                raise
            if j in self.shared:
                self._saved[j] = layer._save_call()
            values[first + j] = out
        self._shapes = [np.shape(values[slot]) for slot in self.output_slots]
        return [values[slot] for slot in self.output_slots]

    def backward(self, grad: object) -> Any:
        """dL/d(inputs), in the input structure, from dL/d(outputs) in the output structure (an
        entry None: that output has no loss). Every use of a shared layer adds into its gradients."""
        given = entries(grad, self.output_format, self.output_names, "Model.backward", "grad")
        if not self._shapes:
            raise LaminaError("Model.backward was called before forward; run model.forward(x) first")
        first = len(self.inputs)
        sums: list[Any] = [None] * (first + len(self.nodes))
        for i, (slot, g) in enumerate(zip(self.output_slots, given)):
            if g is not None:
                g = np.asarray(g)
                if g.shape != self._shapes[i]:
                    raise ShapeError(f"Model.backward: the gradient of output {self.output_names[i]!r} has shape "
                                     f"{g.shape}, but the output had shape {self._shapes[i]}; pass dL/d(output)")
                sums[slot] = g if sums[slot] is None else sums[slot] + g
        for j in range(len(self.nodes) - 1, -1, -1):
            g, sums[first + j] = sums[first + j], None
            if g is not None:
                self._backward_node(j, g, sums)
        return structured(sums[:first], self.input_format, self.input_names)

    def _backward_node(self, j: int, grad: np.ndarray, sums: list[Any]) -> None:
        node = self.nodes[j]
        layer = node.layer
        try:
            saved = self._saved.get(j)
            result = layer.backward(grad) if saved is None else layer._backward_with(saved, grad)
        except LaminaError as err:
            raise placed(err, self.place(j)) from None
        except Exception as err:
            err.add_note(f"raised in the backward pass of {self.place(j)}, {printable(repr(layer), 120)}")
            raise
        refs = self.refs[j]
        if result is None:
            return
        if node.listed != isinstance(result, (list, tuple)) or (node.listed and len(result) != len(refs)):
            raise ShapeError(f"{self.place(j)}: backward returned {describe(result)}; a layer called on "
                             + (f"a list of {len(refs)} values returns a list of {len(refs)} gradients"
                                if node.listed else "one value returns one gradient array"))
        for slot, g in zip(refs, result if node.listed else (result,)):
            if g is not None:
                sums[slot] = g if sums[slot] is None else sums[slot] + g

    # -- modes and state ----------------------------------------------------------------------

    def set_training(self, training: bool) -> None:
        """Training or inference mode; in training, a layer whose every use reads only the model's
        inputs is told that nobody needs its input gradient."""
        for layer in self.layers:
            layer.training = training
            layer.needs_input_grad = True
        if training:
            first = len(self.inputs)
            needed = {id(node.layer) for node, refs in zip(self.nodes, self.refs) if max(refs) >= first}
            for layer in self.layers:
                # a layer holding one that is needed elsewhere (a GraphBlock around a shared layer) would
                # tell it otherwise: it keeps its input gradient too
                if not layer.integer_input and not any(id(inner) in needed for inner in layer.walk()):
                    layer.needs_input_grad = False

    def _drop_saved(self) -> None:
        for saved in self._saved.values():
            saved.close()
        self._saved = {}

    def release(self) -> None:
        """Drop the saved calls of shared layers (the layers drop their own state)."""
        self._drop_saved()

    # -- description --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The graph as JSON values: each node's layer (its index in `layers`), inputs (["input", i]
        or ["node", j], j an earlier node) and, when the call had any, its keyword arguments
        ("kwargs"); the inputs (name, shape, dtype) and outputs (name, ref)."""
        first = len(self.inputs)

        def ref(slot: int) -> list[Any]:
            return ["input", slot] if slot < first else ["node", slot - first]

        index = {id(layer): i for i, layer in enumerate(self.layers)}
        return {
            "input_format": self.input_format,
            "inputs": [{"name": name, "shape": list(s.shape), "dtype": None if s.dtype is None else s.dtype.name}
                       for name, s in zip(self.input_names, self.inputs)],
            "nodes": [_node(index[id(node.layer)], [ref(slot) for slot in refs], node)
                      for node, refs in zip(self.nodes, self.refs)],
            "output_format": self.output_format,
            "outputs": [{"name": name, "ref": ref(slot)} for name, slot in zip(self.output_names, self.output_slots)],
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any], layers: Sequence[Layer], owner: str = "Model",
                         each: Callable[[int, Layer, list[Symbol]], None] | None = None) -> Graph:
        """The graph `describe()` gave, on `layers` (called again on symbolic inputs, which builds them);
        `each(j, layer, inputs)` is told of node j before its layer is called (loading meters it)."""
        values = [Input(tuple(item["shape"]), name=item["name"], dtype=item["dtype"])
                  for item in description["inputs"]]
        first = len(values)
        for j, node in enumerate(description["nodes"]):
            args = [_resolve(ref, values, first, j, owner) for ref in node["inputs"]]
            layer = _index(layers, node["layer"], f"nodes[{j}].layer", owner)
            if each is not None:
                each(j, layer, args)
            value = args if node["list"] else _single(args, j, owner)
            values.append(layer(value, **_kwargs(node, j, owner)))
        names = [item["name"] for item in description["inputs"]]
        outs = [_resolve(item["ref"], values, first, len(description["nodes"]), owner)
                for item in description["outputs"]]
        inputs = structured(values[:first], description["input_format"], names)
        outputs = structured(outs, description["output_format"], [item["name"] for item in description["outputs"]])
        return cls(inputs, outputs, owner)


def _node(layer: int, refs: list[list[Any]], node: Symbol) -> dict[str, Any]:
    """One node's description; "kwargs" (the call's keyword arguments, JSON values) only when it has some."""
    found: dict[str, Any] = {"layer": layer, "inputs": refs, "list": node.listed}
    kwargs = getattr(node, "kwargs", None)
    if kwargs:
        found["kwargs"] = dict(kwargs)
    return found


def _index(items: Sequence[Any], index: object, where: str, owner: str) -> Any:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
        raise ArgumentError(f"{owner}: graph description {where} is {describe(index)}, not an index below "
                            f"{len(items)}")
    return items[index]


def _resolve(ref: object, values: list[Symbol], first: int, before: int, owner: str) -> Symbol:
    """The symbol of a reference ["input", i] or ["node", j] (j < before: references point back)."""
    if isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[0] == "input":
        return _index(values[:first], ref[1], f"reference {ref!r}", owner)
    if isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[0] == "node":
        return _index(values[first:first + before], ref[1], f"reference {ref!r} (only earlier nodes)", owner)
    raise ArgumentError(f"{owner}: graph description reference {describe(ref)} is not ['input', i] or ['node', j]")


def _kwargs(node: Mapping[str, Any], j: int, owner: str) -> dict[str, Any]:
    """A described node's call keywords ({} when it has none): a dict by str name."""
    found = node.get("kwargs", {})
    if not isinstance(found, Mapping) or not all(isinstance(key, str) and key.isidentifier() for key in found):
        raise ArgumentError(f"{owner}: graph description nodes[{j}].kwargs is {describe(found)}, not a dict of "
                            "keyword arguments by name")
    return dict(found)


def _single(args: list[Symbol], j: int, owner: str) -> Symbol:
    if len(args) != 1:
        raise ArgumentError(f"{owner}: graph description nodes[{j}] has {len(args)} inputs but no list: true")
    return args[0]
