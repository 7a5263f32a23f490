"""The graph form of a `lamina train` config: `inputs`, `nodes` and `outputs` instead of `layers`,
checked when the config is read and built into a `Model(inputs=..., outputs=...)`.

    outputs = "same"            # a node's name, or a list of names: a model with several outputs

    [[inputs]]                  # each input: its name, one row's shape, a dtype ("int64" for ids)
    name = "left"
    shape = [64]

    [[nodes]]                   # each layer call, in order: its name, its inputs, its layer
    name = "enc_left"
    inputs = "left"             # a name (an input or an earlier node), or a list of names
    type = "Linear"             # the layer as a [[layers]] entry: type and its arguments
    units = 32

    [[nodes]]
    name = "enc_right"
    inputs = "right"
    layer = "enc_left"          # the layer of node enc_left, called again: shared weights

A node's `call` table holds keyword arguments of the call (`call = {reverse = true}`). Nothing
here knows the config file: `error(key, problem)` makes the ConfigError that names it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lamina.checks import describe, printable
from lamina.errors import ConfigError, LaminaError
from lamina.graph.symbolic import Input, Symbol
from lamina.model import Model

GRAPH_KEYS = ("inputs", "nodes", "outputs")
# A node's own keys; every other key of a node is its layer's (type, its arguments, trainable).
NODE_KEYS = ("name", "inputs", "layer", "call")
INPUT_KEYS = ("name", "shape", "dtype")

Error = Callable[[str, str], ConfigError]


def is_graph(data: Mapping[str, Any]) -> bool:
    """True when the config describes a graph model (it has inputs, nodes or outputs)."""
    return any(key in data for key in GRAPH_KEYS)


def check(data: Mapping[str, Any], error: Error) -> None:
    """The graph keys of a config read from TOML: every name defined once and used after it is
    defined, every node's layer given one way; a ConfigError naming the key otherwise."""
    if "layers" in data:
        given = next(key for key in GRAPH_KEYS if key in data)
        raise error(given, "a config gives either layers (a chain of layers) or inputs, nodes and outputs (a graph "
                           "model), not both")
    for key in GRAPH_KEYS:
        if key not in data:
            raise error(key, "missing; a graph model needs inputs (its inputs by name), nodes (its layer calls) and "
                             "outputs (the names of the nodes it returns)")
    names = _check_inputs(data["inputs"], error)
    _check_nodes(data["nodes"], names, error)
    output_names(data, error)


def _check_inputs(inputs: object, error: Error) -> list[str]:
    if not isinstance(inputs, list) or not inputs:
        raise error("inputs", f'expected a list of tables with "name" and "shape" ([[inputs]]), got {describe(inputs)}')
    names: list[str] = []
    for i, table in enumerate(inputs):
        key = f"inputs[{i}]"
        if not isinstance(table, dict):
            raise error(key, f'expected a table with "name", "shape" and optionally "dtype", got {describe(table)}')
        unknown = [name for name in table if name not in INPUT_KEYS]
        if unknown:
            raise error(f"{key}.{unknown[0]}", f"unknown key; an input takes {', '.join(INPUT_KEYS)}")
        _new_name(table, key, names, error)
        if "shape" not in table:
            raise error(f"{key}.shape", "missing; give one row's shape without the batch axis, e.g. shape = [64]")
        make_input(table, key, error)
        names.append(table["name"])
    return names


def make_input(table: Mapping[str, Any], key: str, error: Error) -> Symbol:
    """The `lamina.Input` an [[inputs]] entry describes."""
    try:
        return Input(table["shape"], name=table["name"], dtype=table.get("dtype"))
    except LaminaError as err:
        raise error(key, str(err)) from None


def _new_name(table: Mapping[str, Any], key: str, names: list[str], error: Error) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise error(f"{key}.name", f"expected a name (a non-empty string), got {describe(name)}")
    if name in names:
        raise error(f"{key}.name", f"{name!r} is given twice; every input and node needs its own name")
    return name


def _check_nodes(nodes: object, names: list[str], error: Error) -> None:
    if not isinstance(nodes, list) or not nodes:
        raise error("nodes", f'expected a list of tables with "name", "inputs" and the layer ([[nodes]]), got '
                             f"{describe(nodes)}")
    layered: list[str] = []  # the nodes that have a layer another node may reuse
    for i, node in enumerate(nodes):
        key = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise error(key, f'expected a table with "name", "inputs" and the layer ("type" and its arguments, or '
                             f'layer = "<node name>"), got {describe(node)}')
        name = _new_name(node, key, names, error)
        node_inputs(node, key, names, error)
        if "layer" in node:
            extra = [k for k in node if k not in NODE_KEYS]
            if not isinstance(node["layer"], str) or node["layer"] not in layered:
                raise error(f"{key}.layer", f"expected the name of an earlier node whose layer this node calls again "
                                            f"(shared weights), one of {layered}, got {describe(node['layer'])}")
            if extra:
                raise error(f"{key}.{extra[0]}", f"node {name!r} reuses the layer of node {node['layer']!r}, so it "
                                                 "takes no layer arguments; give them on that node")
        elif "type" not in node:
            raise error(key, f'node {name!r} has no layer: give "type" and its arguments, or layer = "<node name>" '
                             "to call an earlier node's layer again")
        if not isinstance(node.get("call", {}), dict):
            raise error(f"{key}.call", f"expected a table of the call's keyword arguments, e.g. call = {{reverse = "
                                       f"true}}, got {describe(node['call'])}")
        names.append(name)
        layered.append(name)


def node_inputs(node: Mapping[str, Any], key: str, names: list[str], error: Error) -> list[str]:
    """The names a node is called on: one name, or a list of them (a merge layer's list)."""
    given = node.get("inputs")
    listed = [given] if isinstance(given, str) else given
    if not isinstance(listed, list) or not listed or not all(isinstance(name, str) for name in listed):
        raise error(f"{key}.inputs", f"expected the name of an input or an earlier node, or a list of such names, "
                                     f"got {describe(given)}")
    for name in listed:
        if name not in names:
            raise error(f"{key}.inputs", f"{printable(repr(name), 60)} is no input and no earlier node; the names "
                                         f"defined before it are {names}")
    return listed


def output_names(data: Mapping[str, Any], error: Error) -> list[str]:
    """The outputs' node names; one name (a model with one output) is a list of one."""
    outputs = data["outputs"]
    listed = [outputs] if isinstance(outputs, str) else outputs
    nodes = [node.get("name") for node in data["nodes"]]
    if not isinstance(listed, list) or not listed or not all(isinstance(name, str) for name in listed):
        raise error("outputs", f"expected a node's name or a list of node names, got {describe(outputs)}")
    for name in listed:
        if name not in nodes:
            raise error("outputs", f"{printable(repr(name), 60)} is no node; the nodes are {nodes}")
    if len(set(listed)) != len(listed):
        raise error("outputs", f"names a node twice ({listed}); give each output once")
    return listed


def several(data: Mapping[str, Any]) -> bool:
    """True for a graph config whose outputs are a list (the model's outputs are a dict by name)."""
    return is_graph(data) and isinstance(data.get("outputs"), list)


def build(data: Mapping[str, Any], error: Error, make_layer: Callable[[Any, str], Any], dict_inputs: bool) -> Model:
    """The graph model: its Inputs, each node's layer called on the values it names (a layer
    named by `layer = "<node>"` called again), the outputs. `dict_inputs`: the model takes a
    dict by input name (else its one input as an array)."""
    values = {table["name"]: make_input(table, f"inputs[{i}]", error) for i, table in enumerate(data["inputs"])}
    layers: dict[str, Any] = {}
    for i, node in enumerate(data["nodes"]):
        key = f"nodes[{i}]"
        if "layer" in node:
            layer = layers[node["layer"]]
        else:
            layer = make_layer({k: v for k, v in node.items() if k not in NODE_KEYS}, key)
        args = [values[name] for name in node_inputs(node, key, list(values), error)]
        try:
            values[node["name"]] = layer(args if isinstance(node["inputs"], list) and len(args) > 1 else args[0],
                                         **node.get("call", {}))
        except LaminaError as err:
            raise error(key, str(err)) from None
        layers[node["name"]] = layer
    inputs = [table["name"] for table in data["inputs"]]
    if not dict_inputs and len(inputs) > 1:
        raise error("inputs", f"the model has {len(inputs)} inputs {inputs}, but the dataset gives one array for x; "
                              "use a dataset whose x is a dict by input name")
    outputs = output_names(data, error)
    try:
        return Model(inputs={name: values[name] for name in inputs} if dict_inputs else values[inputs[0]],
                     outputs={name: values[name] for name in outputs} if several(data) else values[outputs[0]])
    except LaminaError as err:
        raise error("outputs", str(err)) from None
