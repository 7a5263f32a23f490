"""Data as structures: a model's several inputs (or outputs) by name, and their arrays read together.

A model says how its inputs and outputs come (`input_format`/`output_format`: "array", "list" or
"dict") and what they are called (`input_names`/`output_names`); `Layout` reads a user's value in
that structure into a dict by name and back (`lamina.training.sources.Several` holds the arrays).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lamina.checks import describe
from lamina.errors import ArgumentError, ShapeError


class Layout:
    """The names and structure of a model's inputs or outputs (`kind` "input" or "output")."""

    def __init__(self, names: tuple[str, ...], format: str, kind: str) -> None:
        self.names, self.format, self.kind = tuple(names), format, kind

    @classmethod
    def outputs(cls, model: Any) -> Layout:
        return cls(getattr(model, "output_names", ("output",)), getattr(model, "output_format", "array"), "output")

    @classmethod
    def inputs(cls, model: Any) -> Layout:
        return cls(getattr(model, "input_names", ("input",)), getattr(model, "input_format", "array"), "input")

    def listed(self) -> str:
        return ", ".join(map(repr, self.names))

    def label(self, arg: str, name: str) -> str:
        """How an error names one item of `arg`: x['a'], y[1], or x itself for one array."""
        if self.format == "dict":
            return f"{arg}[{name!r}]"
        return f"{arg}[{self.names.index(name)}]" if self.format == "list" else arg

    def items(self, value: Any) -> dict[str, Any]:
        """The model's own value (its predictions, say) by name; unchecked."""
        if self.format == "dict":
            return {name: value[name] for name in self.names}
        if self.format == "list":
            return dict(zip(self.names, value))
        return {self.names[0]: value}

    def join(self, items: Mapping[str, Any]) -> Any:
        """A dict by name back in the model's structure (a missing entry is None)."""
        if self.format == "dict":
            return {name: items.get(name) for name in self.names}
        if self.format == "list":
            return [items.get(name) for name in self.names]
        return items.get(self.names[0])

    def read(self, value: object, owner: str, arg: str, needed: tuple[str, ...] | None = None) -> dict[str, Any]:
        """A user's `value` (data for every input, or targets for the outputs `needed`) by name;
        an ArgumentError when its structure is not the model's or a needed entry is missing."""
        needed = self.names if needed is None else needed
        many = f"the model's {self.kind}s are {'a dict' if self.format == 'dict' else 'a list'} ({self.listed()})"
        if self.format == "array":
            if isinstance(value, Mapping):
                raise ArgumentError(f"{owner}: {arg} is a dict ({describe(value)}) but the model has one {self.kind}; "
                                    f"pass {arg} as one array")
            return {self.names[0]: value}
        if self.format == "dict":
            if not isinstance(value, Mapping):
                raise ArgumentError(f"{owner}: {arg} is {describe(value)} but {many}; pass {arg} as a dict by "
                                    f"{self.kind} name, e.g. {{{self.names[0]!r}: array, ...}}")
            found = dict(value)
        elif isinstance(value, (list, tuple)) and len(value) == len(self.names):
            found = dict(zip(self.names, value))
        elif isinstance(value, Mapping):  # list outputs are named output_0, ... and may be keyed so
            found = dict(value)
        else:
            raise ArgumentError(f"{owner}: {arg} is {describe(value)} but {many}; pass {arg} as a list of "
                                f"{len(self.names)} arrays, one per {self.kind} in order")
        unknown = [key for key in found if key not in self.names]
        if unknown:
            raise ArgumentError(f"{owner}: {arg} has {unknown[0]!r}, which is no {self.kind} of the model; "
                                f"{many}")
        missing = [name for name in needed if found.get(name) is None]
        if missing:
            raise ArgumentError(f"{owner}: {arg} has no {missing[0]!r}, which the model needs; {many}: give "
                                f"{self.label(arg, missing[0])}")
        return {name: found[name] for name in self.names if found.get(name) is not None}


def check_rows(sizes: dict[str, int], owner: str) -> None:
    """A ShapeError naming the arrays (by label) whose numbers of rows differ from the first's."""
    counts = list(sizes.items())
    if not counts:
        return
    first, rows = counts[0]
    differ = [f"{label} has {n}" for label, n in counts[1:] if n != rows]
    if differ:
        raise ShapeError(f"{owner}: {first} has {rows} rows but {', '.join(differ)}; every input, target and "
                         "sample_weight needs the same rows (one per sample, along the first axis)")


def rows_of(batch: Any) -> int:
    """The rows of a batch: one array, or the first of a list or dict of them."""
    if type(batch) is np.ndarray:  # the common case first: one step, one call
        return len(batch)
    if isinstance(batch, Mapping):
        batch = next(iter(batch.values()))
    elif isinstance(batch, (list, tuple)):
        batch = batch[0]
    return len(batch)
