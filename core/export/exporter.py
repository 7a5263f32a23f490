"""Model.export_onnx: a trained model as an ONNX file, in inference form, with a free batch axis.

The whole model is exported twice, with batches of 3 and 5: the two graphs must be the same, or
some layer baked the batch size into a shape, which would make the file work for one batch size only.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lamina.errors import ArgumentError, LaminaError
from lamina.export.graph import Graph, onnx_type
from lamina.export.symbolic import ExportTrace, Symbolic
from lamina.files.atomic import atomic_write
from lamina.files.budget import PASS_SHARE, Pass, max_load_bytes
from lamina.protocols.layer import building, metering, observing
from lamina.trace import tracing

if TYPE_CHECKING:
    from lamina.protocols.layer import Layer
    from lamina.protocols.trainable import Trainable

OPSETS = range(17, 22)  # what lamina writes and tests: ONNX opsets 17 to 21
INPUT, OUTPUT = "input", "output"
_BATCHES = (3, 5)


def export_layer(layer: Layer, graph: Graph, x: str | list[str], kwargs: dict[str, Any] | None = None) -> str:
    """Write `layer` applied to the value `x` (a list of values for a merge layer) into `graph`,
    called with `kwargs` (a graph node's call keywords, e.g. an Embedding's reverse=True);
    returns its output's name."""
    kwargs = kwargs or {}
    listed = isinstance(x, list)
    items = x if isinstance(x, list) else [x]
    known = [graph.examples[v] for v in items if v in graph.examples]
    example: Any = None if len(known) < len(items) else known if listed else known[0]
    method = getattr(layer, "to_onnx", None)
    graph.layers.append(layer)
    try:
        if callable(method):
            y = method(graph, x, **kwargs)
            if not isinstance(y, str):
                raise LaminaError(f"{type(layer).__name__}.to_onnx must return the name (str) of its output value, "
                                  f"got {y!r}")
            if example is not None and y not in graph.examples:  # what later layers read shapes from
                graph.examples[y] = _example(layer, example, kwargs)
            return y
        if layer._autodiff:  # its numpy code, run on a Symbolic, becomes ONNX nodes
            trace = ExportTrace(graph, {id(param): name for name, param in layer.parameters().items()})
            values = [Symbolic(graph, v, graph.example(v), trace) for v in items]
            with tracing(trace):
                out = layer.forward(values if listed else values[0], **kwargs)  # type: ignore[arg-type]
            if isinstance(out, Symbolic):
                return out.name
            value = np.asarray(out)  # an output that depends on no input: a constant
            return Symbolic(graph, graph.constant(value, "output", dtype=value.dtype), value).name
    finally:
        graph.layers.pop()
    name = type(layer).__name__
    raise LaminaError(f"ONNX export: layer {graph.scope or name} ({name}) has a hand-written backward and no to_onnx "
                      f"method, so lamina cannot tell what its forward computes; either write {name} forward-only (no "
                      "backward: lamina then traces its numpy code into ONNX), or add to_onnx(self, graph, x) "
                      "returning its output's name (docs/pages/writing-plugins.md)")


def _example(layer: Layer, x: np.ndarray | list[np.ndarray], kwargs: dict[str, Any]) -> np.ndarray:
    """The layer's output on the example `x`, for its shape and dtype: computed as when building,
    where a costly layer returns zeros of the right shape (no attention scores, no loop through
    time); a layer still to learn from data is called as such, to refuse with its own message."""
    if not all(inner.adapted for inner in layer.walk()):
        return np.asarray(layer(x, **kwargs))
    with building():
        return np.asarray(layer(x, **kwargs))


@contextlib.contextmanager
def _native(model: Trainable) -> Iterator[None]:
    """Within the block the parameters hold native-order copies of big-endian (">f4") values,
    which ONNX files cannot store; the model's own arrays are back afterwards."""
    swapped = []
    for layer in model.layers:
        for param in layer.parameters().values():
            if not param.value.dtype.isnative:
                swapped.append((param, param.value))
                param.value = param.value.astype(param.value.dtype.newbyteorder("="))
    try:
        yield
    finally:
        for param, value in swapped:
            param.value = value


def _build(model: Trainable, batch: int, opset: int) -> Graph:
    """The model as an ONNX graph, traced on examples of `batch` rows: one graph input per model
    input and one output per model output, named as the model names them."""
    floats = np.dtype(model.dtype).newbyteorder("=")  # an ONNX file has no big-endian arrays
    network = getattr(model, "graph", None)
    graph = Graph(opset, floats, export=export_layer)
    # every Model names them (a chain "input" and "output"); the Trainable protocol does not say so
    graph.inputs = list(getattr(model, "input_names", (INPUT,)))
    graph.outputs = list(getattr(model, "output_names", (OUTPUT,)))
    both = sorted(set(graph.inputs) & set(graph.outputs))
    if both:
        raise LaminaError(f"ONNX export: the model has an input and an output both named {both[0]!r}, but an ONNX "
                          "file names each value once; rename the input (lamina.Input(..., name=...)) or the output "
                          "(the key of outputs=)")
    for name in (*graph.inputs, *graph.outputs):
        graph.reserve(name)
    meter = _meter()
    generator = np.random.default_rng(batch)  # its own generator: exporting leaves lamina's alone
    shapes = _input_shapes(model) if network is None else [(s.shape, s.dtype) for s in network.inputs]
    for name, (shape, dtype) in zip(graph.inputs, shapes):
        graph.examples[name] = _example_input(name, (batch, *shape), dtype, floats, meter, generator)
    # The examples are kept until the graph is done: what layers reserve and output adds up.
    with metering(meter), observing(meter.observe):
        if network is None:
            finals = [_chain(model.layers, graph, graph.inputs[0], meter)]
        else:
            finals = _network(model, graph, meter)
    for name, value in zip(graph.outputs, finals):
        graph.op("Identity", value, name="final")
        graph.nodes[-1].outputs = (name,)
        graph.examples[name] = graph.examples[value]
    return graph


def _input_shapes(model: Trainable) -> list[tuple[tuple[int, ...], Any]]:
    """A chain's one input: (shape without the batch axis, dtype), known once it has seen data."""
    if model.input_shape is None:
        raise LaminaError("ONNX export: the model has not seen an input yet; train it, call it on data, "
                          "or load a saved model")
    return [(tuple(model.input_shape), model.input_dtype)]


def _example_input(name: str, shape: tuple[int, ...], dtype: Any, floats: np.dtype, meter: Pass,
                   generator: np.random.Generator) -> np.ndarray:
    """Random floats (the model's dtype) or zeros (integer indices) of `shape`, charged to `meter`."""
    integer = dtype is not None and np.dtype(dtype).kind in "iu"
    meter.reserve(math.prod(shape) * (8 if integer else floats.itemsize),
                  f"the example input {name!r} of shape {shape}")
    return np.zeros(shape, dtype=np.int64) if integer else generator.normal(size=shape).astype(floats)


def _chain(layers: Sequence[Layer], graph: Graph, x: str, meter: Pass) -> str:
    for i, layer in enumerate(layers):
        meter.layer = f"layers[{i}] {layer!r}"
        with graph.scoped(str(i)):
            x = export_layer(layer, graph, x)
    return x


def _network(model: Trainable, graph: Graph, meter: Pass) -> list[str]:
    """A graph model's nodes in order, each under its layer's position in `model.layers` (so a
    shared layer's weights are stored once, named after it, and read by each of its uses)."""
    network = getattr(model, "graph")  # noqa: B009  # a graph model's, which Trainable does not name
    positions = {id(layer): i for i, layer in enumerate(model.layers)}
    values = list(graph.inputs)
    for j, node in enumerate(network.nodes):
        args = [values[slot] for slot in network.refs[j]]
        index = positions[id(node.layer)]
        meter.layer = f"layers[{index}] {node.layer!r}"
        with graph.scoped(str(index)):
            values.append(export_layer(node.layer, graph, args if node.listed else args[0], node.kwargs))
    return [values[slot] for slot in network.output_slots]


def _meter() -> Pass:
    """What exporting may hold in example values: the load-time pass's limit (LAMINA_MAX_LOAD_BYTES / 16)."""
    limit = max_load_bytes(None)
    return Pass("ONNX export", limit // PASS_SHARE, math.inf,
                f"Export on a machine with more memory, raising the limit (a 1/{PASS_SHARE} share of "
                f"{limit:,} bytes) with the environment variable LAMINA_MAX_LOAD_BYTES", error=LaminaError,
                name="the example pass")


def _signature(graph: Graph) -> list[tuple[Any, ...]]:
    def attribute(v: Any) -> Any:
        return ("array", v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else repr(v)

    found: list[tuple[Any, ...]] = [(node.owner, node.op_type, node.inputs, node.outputs,
                                     sorted((k, attribute(v)) for k, v in node.attributes.items()))
                                    for node in graph.nodes]
    return found + [(name.rsplit(".", 1)[0], "initializer", name, attribute(array))
                    for name, array in graph.initializers.items()]


def _same_for_any_batch(graphs: list[Graph]) -> None:
    first, second = (_signature(g) for g in graphs)
    a = next((a for a, b in zip(first, second) if a != b), None)
    if a is not None:
        what = f"its {a[1]} node" if a[1] != "initializer" else f"the constant {a[2]!r}"
        raise LaminaError(f"ONNX export: layer {a[0]} writes a graph that depends on the batch size ({what} differs "
                          f"between batches of {_BATCHES[0]} and {_BATCHES[1]}); the file must work for any batch, so "
                          "compute shapes with -1 or from x.shape[1:] instead of x.shape[0], and make constants "
                          "without the batch axis (they broadcast)")
    if len(first) != len(second):
        raise LaminaError("ONNX export: the model writes a different number of nodes for different batch sizes")


def to_proto(graph: Graph, producer: str = "lamina") -> Any:
    """The finished graph as an onnx.ModelProto (needs the onnx package)."""
    import onnx
    from onnx import helper, numpy_helper

    def attribute(value: Any) -> Any:
        return numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value

    nodes = [helper.make_node(node.op_type, list(node.inputs), list(node.outputs), name=f"{node.owner}/{i}",
                              **{k: attribute(v) for k, v in node.attributes.items()})
             for i, node in enumerate(graph.nodes)]
    initializers = [numpy_helper.from_array(array, name) for name, array in graph.initializers.items()]
    inputs, outputs = ([helper.make_tensor_value_info(name, onnx_type(graph.examples[name].dtype, name),
                                                      ["batch", *graph.examples[name].shape[1:]]) for name in names]
                       for names in (graph.inputs or [INPUT], graph.outputs or [OUTPUT]))
    body = helper.make_graph(nodes, "lamina", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", graph.opset)]
    from lamina.version import __version__

    model = helper.make_model(body, opset_imports=opsets, producer_name=producer, producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx's ValidationError, InferenceError, ...: the node names say which layer
        raise LaminaError(f"ONNX export: the graph fails onnx's check ({type(err).__name__}: {err}); node names are "
                          "'<layer path>/<number>': that layer's to_onnx (or lamina's mapping of one of its numpy "
                          "operations) wrote an invalid node, which is a bug to report") from None
    return model


def export_onnx(model: Trainable, path: str | os.PathLike[str], opset: int = 17) -> Path:
    """Write `model` to `path` as ONNX (see Model.export_onnx)."""
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or int(opset) not in OPSETS:
        raise ArgumentError(f"Model.export_onnx(opset={opset!r}): lamina writes ONNX opsets {OPSETS.start} to "
                            f"{OPSETS.stop - 1}; pass one of them (17, the default, runs on onnxruntime 1.14 and "
                            "later)")
    target = Path(path)
    if not target.parent.is_dir():
        raise LaminaError(f"Model.export_onnx: cannot write {str(target)!r}: the folder {str(target.parent)!r} does "
                          "not exist; create it first")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise LaminaError("Model.export_onnx needs the onnx package: pip install onnx") from None
    with model.lock, model.inference(), _native(model):
        try:
            graphs = [_build(model, batch, int(opset)) for batch in _BATCHES]
        finally:
            model.release()
        _same_for_any_batch(graphs)
        proto = to_proto(graphs[0])
    return atomic_write(target, proto.SerializeToString())
