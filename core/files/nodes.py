"""A graph model's description in a model file (config.json's "graph", as `Graph.describe()`
writes it), checked before anything is built from it, then built within the loading budget.

The checks refuse what cannot be a graph lamina wrote: a reference to a later node (a cycle) or
past the end, a node or a layer that feeds no output, repeated names, shapes that are not
positive sizes, and more nodes, inputs or references than the budget allows, so that a small
hostile file cannot make loading run for long or build huge arrays.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamina.autodiff import no_recording
from lamina.checks import describe, printable
from lamina.errors import ArgumentError, FileFormatError, ShapeError
from lamina.files.budget import Pass, pass_bytes
from lamina.graph.network import Graph
from lamina.graph.symbolic import Symbol
from lamina.protocols.layer import Layer, metering, observing

NODE_BYTES = 2**18  # one node per 256 KiB of the loading limit (65,536 nodes for 16 GiB) ...
MIN_NODES = 1024  # ... and never fewer
MAX_NODE_INPUTS = 1024  # a merge layer's inputs
MAX_REFERENCES = 4  # references in all, per node on average
MAX_GRAPH_INPUTS = 1024
MAX_NDIM = 32
MAX_INPUT_VALUES = 10**8  # values in one input row
FORMATS = ("array", "list", "dict")
DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def max_nodes(max_bytes: int) -> int:
    """The most nodes a graph loaded within `max_bytes` may have."""
    return max(MIN_NODES, max_bytes // NODE_BYTES)


class _Checker:
    """Checks one description; `fail(where, found, expected)` names config.json's path."""

    def __init__(self, path: str, layers: int, max_bytes: int) -> None:
        self.path, self.layers, self.limit, self.max_bytes = path, layers, max_nodes(max_bytes), max_bytes

    def fail(self, where: str, message: str) -> FileFormatError:
        return FileFormatError(
            f"{self.path}: config.json graph{where} {message}; the file is corrupted or forged (a file that "
            "Model.save wrote never is): save the model again from the code that made it"
        )

    def get(self, table: Any, key: str, where: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(f"{where}.{key}", f"is {describe(value)}, expected {what}")
        return value

    def items(self, table: Any, key: str, where: str, most: int, what: str, note: str = "") -> list[Any]:
        """The list table[key], of 1 to `most` items."""
        value = self.get(table, key, where, list, f"a list of {what}")
        if not 1 <= len(value) <= most:
            raise self.fail(f"{where}.{key}", f"has {len(value):,} items, expected 1 to {most:,} {what}{note}")
        return value

    def index(self, value: Any, below: int, where: str, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < below:
            raise self.fail(where, f"is {describe(value)}, expected {what} (an int from 0 to {below - 1})"
                            if below else f"is {describe(value)}, but there is no {what} it could name")
        return value

    def ref(self, ref: Any, inputs: int, nodes: int, where: str) -> int:
        """The slot of a reference ["input", i] or ["node", k] (k an earlier node): inputs first."""
        if not (isinstance(ref, list) and len(ref) == 2 and ref[0] in ("input", "node")):
            raise self.fail(where, f"is {describe(ref)}, expected a reference ['input', i] or ['node', k]")
        if ref[0] == "input":
            return self.index(ref[1], inputs, f"{where}[1]", "an input's index")
        return inputs + self.index(ref[1], nodes, f"{where}[1]", "an earlier node's index (no cycles)")

    def names(self, entries: list[Any], where: str) -> list[str]:
        found: list[str] = []
        for i, entry in enumerate(entries):
            name = self.get(entry, "name", f"{where}[{i}]", str, "a non-empty printable name")
            if not name or not name.isprintable() or len(name) > 200:
                raise self.fail(f"{where}[{i}].name", f"is {printable(name, 60)!r}, expected a non-empty printable "
                                "name of at most 200 characters")
            if name in found:
                raise self.fail(f"{where}[{i}].name", f"is {name!r}, the name of {where}[{found.index(name)}] too; "
                                "names are unique")
            found.append(name)
        return found

    def inputs(self, graph: dict[str, Any]) -> list[tuple[tuple[int, ...], str | None]]:
        """The inputs' (shape, dtype), checked."""
        entries = self.items(graph, "inputs", "", MAX_GRAPH_INPUTS, "inputs")
        self.names(entries, ".inputs")
        found = []
        for i, entry in enumerate(entries):
            where = f".inputs[{i}]"
            shape = self.items(entry, "shape", where, MAX_NDIM, "positive sizes")
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape) or (
                    math.prod(shape) > MAX_INPUT_VALUES):
                raise self.fail(f"{where}.shape", f"is {describe(shape)}, expected positive sizes of at most "
                                f"{MAX_INPUT_VALUES:,} values in all")
            dtype = entry.get("dtype")
            if dtype is not None and dtype not in DTYPES:
                raise self.fail(f"{where}.dtype", f"is {describe(dtype)}, expected null or one of {', '.join(DTYPES)}")
            found.append((tuple(shape), dtype))
        return found

    def nodes(self, graph: dict[str, Any], inputs: int) -> list[tuple[int, list[int]]]:
        """Each node's (layer, input slots), checked: references back only, layers in order of first use."""
        note = f" (the limit for loading within {self.max_bytes:,} bytes: lamina.load(path, max_bytes=...))"
        entries = self.items(graph, "nodes", "", self.limit, "nodes", note)
        found: list[tuple[int, list[int]]] = []
        references, used = 0, 0
        for j, node in enumerate(entries):
            where = f".nodes[{j}]"
            layer = self.index(self.get(node, "layer", where, int, "a layer's index"), min(used + 1, self.layers),
                               f"{where}.layer", "a layer's index, the layers in order of first use")
            used = max(used, layer + 1)
            refs = self.items(node, "inputs", where, MAX_NODE_INPUTS, "references")
            references += len(refs)
            if references > MAX_REFERENCES * self.limit:
                raise self.fail(f"{where}.inputs", f"brings the references to {references:,}, over the limit of "
                                f"{MAX_REFERENCES * self.limit:,}")
            listed = self.get(node, "list", where, bool, "true or false")
            if not listed and len(refs) != 1:
                raise self.fail(f"{where}.inputs", f"has {len(refs)} references but list is false; one, or list true")
            kwargs = node.get("kwargs", {})
            if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
                raise self.fail(f"{where}.kwargs", f"is {describe(kwargs)}, expected a table of arguments")
            found.append((layer, [self.ref(r, inputs, j, f"{where}.inputs[{k}]") for k, r in enumerate(refs)]))
        if used != self.layers:
            raise self.fail(".nodes", f"uses {used} of the file's {self.layers} layers; every layer is used")
        return found

    def outputs(self, graph: dict[str, Any], inputs: int, nodes: int) -> list[int]:
        entries = self.items(graph, "outputs", "", inputs + nodes, "outputs")
        self.names(entries, ".outputs")
        return [self.ref(entry.get("ref") if isinstance(entry, dict) else None, inputs, nodes,
                         f".outputs[{i}].ref") for i, entry in enumerate(entries)]

    def used(self, nodes: list[tuple[int, list[int]]], outputs: list[int], inputs: int) -> None:
        """Every node and every input feeds an output."""
        needed = [False] * (inputs + len(nodes))
        for slot in outputs:
            needed[slot] = True
        for j in range(len(nodes) - 1, -1, -1):
            if needed[inputs + j]:
                for slot in nodes[j][1]:
                    needed[slot] = True
        for slot, flag in enumerate(needed):
            if not flag:
                where = f".inputs[{slot}]" if slot < inputs else f".nodes[{slot - inputs}]"
                raise self.fail(where, "feeds no output; every input and node is used")

    def formats(self, graph: dict[str, Any], inputs: int, outputs: int) -> None:
        for key, count in (("input_format", inputs), ("output_format", outputs)):
            form = graph.get(key)
            if form not in FORMATS:
                raise self.fail(f".{key}", f"is {describe(form)}, expected one of {', '.join(FORMATS)}")
            if form == "array" and count != 1:
                raise self.fail(f".{key}", f"is 'array' (one value), but there are {count}")


def check_graph(graph: Any, layers: int, path: str, max_bytes: int) -> None:
    """Refuse a description that is not a graph of `layers` layers that the budget allows."""
    checker = _Checker(path, layers, max_bytes)
    if not isinstance(graph, dict):
        raise checker.fail("", f"is {describe(graph)}, expected a table (inputs, nodes, outputs)")
    inputs = checker.inputs(graph)
    nodes = checker.nodes(graph, len(inputs))
    outputs = checker.outputs(graph, len(inputs), len(nodes))
    checker.formats(graph, len(inputs), len(outputs))
    checker.used(nodes, outputs, len(inputs))


def build_graph(graph: dict[str, Any], layers: Sequence[Layer], meter: Pass, path: str = "") -> Graph:
    """The Graph of a checked description, its layers called on symbolic inputs (which builds
    them), each node's call charged to `meter`; a call the layer refuses (keywords it does not
    take, an input of the wrong shape) is the file's fault, named by its node."""
    current = [-1]

    def each(j: int, layer: Layer, args: Sequence[Symbol]) -> None:
        current[0] = j
        meter.begin(f"graph.nodes[{j}] {printable(repr(layer), 80)}", 0)
        for arg in args:
            meter.reserve(pass_bytes((1, *arg.shape), arg.dtype or np.float32), "a zero row of its input")

    for item in graph["inputs"]:
        meter.reserve(pass_bytes((1, *item["shape"]), item["dtype"] or np.float32), "a zero row of an input")
    try:
        with no_recording(), metering(meter), observing(meter.observe):
            return Graph.from_description(graph, layers, each=each)
    except (ArgumentError, ShapeError, TypeError) as err:  # TypeError: a keyword named like the input (x=...)
        checker = _Checker(path, len(layers), meter.max_bytes)
        raise checker.fail(f".nodes[{current[0]}]", f"cannot be called as it says ({err})") from None

