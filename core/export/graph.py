"""Graph: the small builder that layers write their ONNX nodes with.

A layer's `to_onnx(graph, x) -> y` receives the name of its input value and returns the name
of its output, adding nodes with `graph.op(...)`, weights with `graph.parameter(...)` and
other arrays with `graph.constant(...)`. Names are made unique by the graph; nothing here
imports the `onnx` package (the exporter turns the finished graph into a model at the end).

>>> def to_onnx(self, graph, x):          # y = x @ weight + bias
...     y = graph.op("MatMul", x, graph.parameter(self.weight, "weight"))
...     return graph.op("Add", y, graph.parameter(self.bias, "bias"))
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamina.errors import ArgumentError, LaminaError
from lamina.parameter import Parameter

# ONNX TensorProto data types, by numpy dtype
ONNX_TYPES = {np.dtype(t): code for t, code in ((np.float32, 1), (np.uint8, 2), (np.int8, 3), (np.int32, 6),
                                                (np.int64, 7), (np.bool_, 9), (np.float16, 10), (np.float64, 11))}


def onnx_type(dtype: Any, owner: str) -> int:
    found = ONNX_TYPES.get(np.dtype(dtype).newbyteorder("="))  # stored little-endian whatever the order
    if found is None:
        raise LaminaError(f"ONNX export ({owner}): arrays of dtype {np.dtype(dtype)} have no ONNX type lamina writes")
    return found


def _stored(array: np.ndarray) -> np.ndarray:
    """An initializer as ONNX stores it: C order, native byte order (onnx refuses ">f4")."""
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.asarray(array, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


@dataclass
class Node:
    """One ONNX node, and the layer that wrote it (`owner`, for error messages)."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Any]
    owner: str


@dataclass
class Graph:
    """The nodes and arrays of a graph being exported, in the order they were added.

    `opset` is the ONNX operator set being written (some operators' inputs and attributes
    depend on it); `dtype` the model's floating dtype, which constants take by default.
    """

    opset: int
    dtype: np.dtype
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    # values of names where the exporter knows them (layer inputs and outputs, traced values): `shape()` reads them
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)
    _scope: list[str] = field(default_factory=list)
    _parameters: dict[int, str] = field(default_factory=dict)
    layers: list[Any] = field(default_factory=list)  # the layers being exported, outermost first
    # The file's inputs and outputs, by value name, in order (the model's input_names and output_names)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # How a layer is exported (the exporter's export_layer; a field so that this module stays below it)
    export: Callable[[Any, Graph, Any, Any], str] | None = None

    # -- names ---------------------------------------------------------------------------------

    @property
    def scope(self) -> str:
        """The path of the layer being exported, e.g. "layers.1.attention" (names start with it)."""
        return ".".join(self._scope)

    @contextmanager
    def scoped(self, name: str) -> Iterator[None]:
        """Names made inside the block start with `name` (a layer's path part)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def fresh(self, hint: str) -> str:
        """A new, unused value name built from the scope and `hint`."""
        base = ".".join([*self._scope, hint]) if self._scope else hint
        name, count = base, 1
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        return self.reserve(name)

    def reserve(self, name: str) -> str:
        """Claim an exact name (the graph's input), refusing a duplicate."""
        if name in self._taken:
            raise LaminaError(f"ONNX export: the value name {name!r} is used twice")
        self._taken.add(name)
        return name

    # -- what layers call ----------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attributes: Any) -> Any:
        """Add a node `op_type(*inputs)` with ONNX attributes given by keyword (ints, floats,
        strings, lists of them, numpy arrays for tensors); returns its output name, or a tuple
        of `outputs` names. An empty string stands for an omitted optional input."""
        if not isinstance(op_type, str) or not op_type:
            raise ArgumentError(f"Graph.op: op_type must be an ONNX operator name such as 'MatMul', got {op_type!r}")
        for value in inputs:
            if not isinstance(value, str):
                raise ArgumentError(f"Graph.op({op_type!r}): inputs are value names (str), got {value!r}; pass arrays "
                                    "through graph.constant(...) or graph.parameter(...) first")
        hint = name or op_type
        names = tuple(self.fresh(hint if outputs == 1 else f"{hint}_{i}") for i in range(outputs))
        self.nodes.append(Node(op_type, tuple(inputs), names, attributes, self.scope or "model"))
        return names[0] if outputs == 1 else names

    def constant(self, value: Any, name: str = "const", dtype: Any = None, like: str | None = None) -> str:
        """An array stored in the file (an initializer). Python floats and float arrays take
        the dtype of the value named `like`, else the model's, unless `dtype` says otherwise;
        integers become int64."""
        array = np.asarray(value)
        if dtype is None and array.dtype.kind == "f":
            dtype = self.dtype if like is None else self.dtype_of(like)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
        elif array.dtype.kind != "b":
            raise ArgumentError(f"Graph.constant: cannot store an array of dtype {array.dtype} in an ONNX file")
        label = self.fresh(name)
        self.initializers[label] = _stored(array)
        return label

    def ints(self, values: Any, name: str = "ints") -> str:
        """A constant int64 vector (shapes, axes, indices)."""
        return self.constant(np.asarray(values, dtype=np.int64).reshape(-1), name, dtype=np.int64)

    def parameter(self, param: Parameter, name: str) -> str:
        """A layer's Parameter as an initializer named after its path (e.g. "layers.0.weight"),
        stored once however often it is used."""
        if not isinstance(param, Parameter):
            raise ArgumentError(f"Graph.parameter({name!r}): expected a lamina.Parameter, got {type(param).__name__}")
        if id(param) not in self._parameters:
            self._parameters[id(param)] = label = self.fresh(name)
            self.initializers[label] = _stored(param.value)
        return self._parameters[id(param)]

    def cast(self, x: str, dtype: Any) -> str:
        """`x` in `dtype`: itself where its example already has it, else a Cast node."""
        return x if self.dtype_of(x) == np.dtype(dtype) else self.op("Cast", x, to=onnx_type(dtype, self.scope))

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: bool = False) -> str:
        """A Reduce* node over `axes`: ReduceSum takes the axes as an input from opset 13, the
        other reductions from opset 18 (before that, as an attribute). No axes: x itself (ONNX
        would read an empty list as every axis)."""
        if not axes:
            return self.op("Identity", x)
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, x, self.ints(axes, "axes"), keepdims=int(keepdims))
        return self.op(op_type, x, axes=list(axes), keepdims=int(keepdims))

    def example(self, value: str) -> np.ndarray:
        """The value `value` had in the traced example (what forward-only layers run on)."""
        found = self.examples.get(value)
        if found is None:
            raise LaminaError(f"ONNX export of {self.scope or 'the model'}: the value {value!r} has no example (values "
                              "made by graph.op have none); export sublayers on the layer's own input or on another "
                              "graph.layer's output")
        return found

    def dtype_of(self, value: str) -> np.dtype:
        """The dtype of `value` in the traced example, or the model's dtype where none is known."""
        return self.examples[value].dtype if value in self.examples else self.dtype

    def shape(self, value: str) -> tuple[int, ...]:
        """The shape `value` had in the example the exporter traced (the batch axis included,
        at its example size: use ONNX's 0 = "copy this dimension" in Reshape to keep it free)."""
        return tuple(self.example(value).shape)

    def layer(self, layer: Any, x: str | list[str], name: str, kwargs: dict[str, Any] | None = None) -> str:
        """Export a sublayer on `x` (a list of values for a merge layer) under the path part
        `name` (what composites call), called with `kwargs` (a graph node's call keywords)."""
        if self.export is None:
            raise LaminaError("Graph.layer: this graph was not made by the exporter, which knows how to export layers")
        with self.scoped(name):
            return self.export(layer, self, x, kwargs)
