"""Symbolic: the stand-in array that turns a forward-only layer's numpy code into ONNX nodes.

While a layer without `to_onnx` is exported, its forward runs on a `Symbolic`: each numpy
operation on it computes its row's value on the example arrays (so shapes and dtypes are known)
and writes the row's ONNX form into the graph. What has no ONNX form raises a LaminaError naming
the layer and the operation; Python control flow on values (`if x.max() > 0:`) cannot be exported.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lamina.errors import LaminaError
from lamina.export.graph import Graph
from lamina.parameter import Parameter
from lamina.trace.primitives import CONSTANT, Operand, Primitive, Trace


def _who(graph: Graph) -> str:
    """'layer 1.attention (MultiHeadAttention)': the layer being exported, for messages."""
    name = type(graph.layers[-1]).__name__ if graph.layers else "the model"
    return f"layer {graph.scope} ({name})" if graph.scope else name


class ExportTrace(Trace):
    """The ONNX reader of the table: a layer's Parameters become initializers named after their
    path in the layer (`names`), each row writes its ONNX form."""

    def __init__(self, graph: Graph, names: dict[int, str]) -> None:
        self.graph, self.names = graph, names

    def parameter(self, param: Parameter) -> Symbolic:
        return Symbolic(self.graph, self.graph.parameter(param, self.names.get(id(param), "param")), param.value, self)

    def refuse(self, what: str, why: str | None = None) -> LaminaError:
        return LaminaError(f"ONNX export of {_who(self.graph)}: {why or what + ' has no ONNX mapping in lamina'}; "
                           "write the layer's forward with supported operations (see lamina.export.SUPPORTED), or give "
                           "the layer a to_onnx(graph, x) method (docs/pages/writing-plugins.md)")

    def apply(self, row: Primitive, operands: list[Any], params: dict[str, Any]) -> Any:
        operands = [self.parameter(x) if isinstance(x, Parameter) else x for x in operands]
        values = [x.value if isinstance(x, Symbolic) else x for x in operands]
        out = row.value(*values, **params)
        out = out[0] if row.saves else out
        if row.onnx is None:
            raise self.refuse(row.name)
        if row.onnx is CONSTANT:
            return out
        out = np.asarray(out)
        dtype = out.dtype if row.cast == "out" else np.result_type(*values) if row.cast == "inputs" else None
        names = []
        for x, value in zip(operands, values):
            if isinstance(x, Symbolic):
                names.append(x.name if dtype is None else self.graph.cast(x.name, dtype))
            else:  # a constant; a float one takes the result's dtype
                floats = dtype is None and np.asarray(value).dtype.kind == "f" and out.dtype.kind == "f"
                names.append(self.graph.constant(value, dtype=out.dtype if floats else dtype))
                self.graph.examples[names[-1]] = self.graph.initializers[names[-1]]
        return Symbolic(self.graph, row.onnx(self.graph, out, *names, **params), out, self)

    def call_layer(self, layer: Any, x: Symbolic) -> Symbolic:
        """A layer called inside another's traced forward: exported its own way (to_onnx or traced)."""
        graph = self.graph
        siblings = graph.layers[-1].sublayers().items() if graph.layers else ()
        y = graph.layer(layer, x.name, next((key for key, sub in siblings if sub is layer), type(layer).__name__))
        return Symbolic(graph, y, graph.example(y), self)


class Symbolic(Operand):
    """A value of the graph being exported: its ONNX name and its example value."""

    __array_priority__ = 200.0
    __hash__ = object.__hash__

    def __init__(self, graph: Graph, name: str, value: Any, trace: ExportTrace | None = None) -> None:
        self.graph, self.name, self.value = graph, name, np.asarray(value)
        self.trace = trace if trace is not None else ExportTrace(graph, {})
        graph.examples[name] = self.value

    def __repr__(self) -> str:
        return f"Symbolic({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"

    def __bool__(self) -> bool:
        raise LaminaError(f"ONNX export of {_who(self.graph)}: Python control flow on a value (if, and, or, bool()) "
                          "cannot be exported, since the file must work for every input; use np.where, or give the "
                          "layer a to_onnx method")
