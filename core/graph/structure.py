"""The structure of a graph model's inputs and outputs (one value, a list or a dict), and data
that follows it: dicts by name, lists by position, each entry a batch with the batch axis first."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lamina.checks import describe, positive_int
from lamina.errors import ArgumentError, ShapeError
from lamina.graph.symbolic import Symbol
from lamina.training.sources import Lazy, is_lazy


def spec(value: object, what: str, owner: str) -> tuple[str, tuple[str, ...], list[Symbol]]:
    """(format, names, symbols) of the `inputs` or `outputs` argument of Model (`what`)."""
    if isinstance(value, Symbol):
        default = what[:-1]  # "input", "output"
        return "array", (value.name if what == "inputs" and value.name else default,), [value]
    if isinstance(value, Mapping):
        if not value:
            raise ArgumentError(f"{owner}: {what} is an empty dict; give at least one symbolic value")
        bad = [key for key in value if not isinstance(key, str) or not key or not key.isprintable()]
        if bad:
            raise ArgumentError(f"{owner}: the keys of {what} must be non-empty printable str names, got "
                                f"{describe(bad[0])}")
        symbols = [_symbol(item, f"{what}[{key!r}]", owner) for key, item in value.items()]
        return "dict", tuple(value), symbols
    if isinstance(value, (list, tuple)) and value:
        symbols = [_symbol(item, f"{what}[{i}]", owner) for i, item in enumerate(value)]
        if what == "inputs":
            names = tuple(item.name or f"input_{i}" for i, item in enumerate(symbols))
        else:
            names = tuple(f"output_{i}" for i in range(len(symbols)))
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise ArgumentError(f"{owner}: two of the {what} are named {twice!r}; give each Input its own name")
        return "list", names, symbols
    raise ArgumentError(f"{owner}: {what} must be a symbolic value (lamina.Input(...) or a layer called on one), "
                        f"a non-empty list or a dict of them, got {describe(value)}")


def _symbol(item: object, where: str, owner: str) -> Symbol:
    if not isinstance(item, Symbol):
        raise ArgumentError(f"{owner}: {where} is {describe(item)}, not a symbolic value; pass lamina.Input(...) "
                            "or what a layer called on one returned")
    return item


def entries(data: object, form: str, names: Sequence[str], owner: str, what: str) -> list[Any]:
    """The entries of `data` (structured as `form`: "array", "list" or "dict") in `names`' order."""
    if form == "dict":
        if not isinstance(data, Mapping):
            raise ArgumentError(f"{owner}: {what} must be a dict with the keys {list(names)}, got {describe(data)}")
        missing = [name for name in names if name not in data]
        unknown = [key for key in data if key not in names]
        if missing or unknown:
            raise ArgumentError(
                f"{owner}: {what} must have exactly the keys {list(names)}"
                + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else "")
                + ": give one array per name")
        return [data[name] for name in names]
    if form == "list":
        if not isinstance(data, (list, tuple)) or len(data) != len(names):
            raise ArgumentError(f"{owner}: {what} must be a list of {len(names)} arrays, in the order "
                                f"{list(names)}, got {describe(data)}")
        return list(data)
    if isinstance(data, Mapping) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray)):
        raise ArgumentError(f"{owner}: {what} must be one array (the model has one input and one output), "
                            f"got {describe(data)}")
    return [data]


def structured(values: Sequence[Any], form: str, names: Sequence[str]) -> Any:
    """`values` (in `names`' order) in the structure `form`."""
    if form == "dict":
        return dict(zip(names, values))
    if form == "list":
        return list(values)
    return values[0]


def same_rows(arrays: Sequence[Any], names: Sequence[str], owner: str) -> int:
    """The number of rows every input has, or a ShapeError naming those that differ."""
    rows = [len(array) for array in arrays]
    if len(set(rows)) > 1:
        listed = ", ".join(f"{name!r}: {n}" for name, n in zip(names, rows))
        raise ShapeError(f"{owner}: every input must have the same number of rows, got {listed}")
    return rows[0]


def predict(model: Any, x: object, batch_size: int | None) -> Any:
    """A graph model's outputs for `x`, computed `batch_size` rows of every input at a time."""
    owner = "Model.predict"
    graph = model.graph
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    sources = entries(x, graph.input_format, graph.input_names, owner, "x")
    sources = [Lazy(source, owner, name) if is_lazy(source) else graph.prepare_one(i, source, owner, model.dtype)
               for i, (name, source) in enumerate(zip(graph.input_names, sources))]
    rows = same_rows(sources, graph.input_names, owner)
    if rows == 0:
        raise ShapeError(f"{owner}: x has no rows; pass at least one row to predict")
    step = batch_size or (rows if not any(isinstance(s, Lazy) for s in sources) else 256)
    parts: list[list[np.ndarray]] = [[] for _ in graph.output_names]
    try:
        for start in range(0, rows, step):
            batch = [graph.prepare_one(i, s.read(slice(start, start + step)), owner, model.dtype)
                     if isinstance(s, Lazy) else s[start:start + step] for i, s in enumerate(sources)]
            outs = graph.run(batch)
            for part, out in zip(parts, outs):
                part.append(out)
    finally:
        model.release()
    joined = [part[0] if len(part) == 1 else np.concatenate(part) for part in parts]
    return structured(joined, graph.output_format, graph.output_names)
