"""Symbolic values: `lamina.Input(shape)` and what a layer called on symbolic values returns.

Calling a layer on a Symbol (or on a list of them, for a merge layer) computes nothing: it
records a node (the layer and the values it was called on). The layer is built then, on a zero
row of the input's shape, so a wrong shape fails at the call that is wrong and every Symbol
knows its shape. `lamina.Model(inputs=..., outputs=...)` turns the recorded nodes into a graph.
"""
from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lamina.checks import DEFAULT_DTYPE, describe, printable
from lamina.errors import ArgumentError, LaminaError, ShapeError

_serial = itertools.count()  # creation order: a node is always made after the values it was called on


class Symbol:
    """A value of a graph under construction: an Input (`layer` None) or a layer's output.

    `shape` is one row's shape (without the batch axis); `inputs` the Symbols the layer was
    called on, `listed` True when it was called on a list of them (a merge layer); `kwargs` the
    call's keyword arguments (`emb(h, reverse=True)`), JSON values, passed to every run's forward.
    """

    __slots__ = ("shape", "dtype", "layer", "inputs", "listed", "name", "serial", "kwargs")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | None, layer: Any = None,
                 inputs: tuple[Symbol, ...] = (), listed: bool = False, name: str | None = None,
                 kwargs: dict[str, Any] | None = None) -> None:
        self.shape, self.dtype, self.layer = shape, dtype, layer
        self.inputs, self.listed, self.name = inputs, listed, name
        self.kwargs: dict[str, Any] = kwargs or {}
        self.serial = next(_serial)

    @property
    def is_input(self) -> bool:
        return self.layer is None

    def __repr__(self) -> str:
        what = f"Input {self.name!r}" if self.is_input else f"output of {type(self.layer).__name__}"
        return f"<Symbol: {what}, shape {(None, *self.shape)}>"

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise LaminaError(
            f"{self!r} is symbolic: it stands for data that a Model made from it will get; it has no values. "
            "Make a lamina.Model(inputs=..., outputs=...) from it and call the model on arrays"
        )


def Input(shape: int | Sequence[int], name: str | None = None, dtype: Any = None) -> Symbol:  # noqa: N802
    """A model input of rows of `shape` (without the batch axis): `lamina.Input((6,), name="a")`.

    `dtype` None means floats in the model's dtype (float32 unless the layers are built in
    another); an integer dtype ("int64") means integer indices (for an Embedding).
    """
    owner = f"Input(shape={describe(shape)})"
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    if isinstance(shape, (str, bytes)) or not isinstance(dims, (tuple, list)) or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) >= 1 for n in dims):
        raise ArgumentError(f"{owner}: shape must be a tuple of positive ints, one row's shape without the batch "
                            "axis, e.g. Input((28, 28)) or Input(6)")
    if name is not None and (not isinstance(name, str) or not name or not name.isprintable()):
        raise ArgumentError(f"{owner}: name must be a non-empty printable str or None, got {describe(name)}")
    found = None
    if dtype is not None:
        try:
            found = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError):  # numpy parses strings ("float64,(" is a SyntaxError)
            found = None
        if found is None or found.kind not in "fiu":
            raise ArgumentError(f"{owner}: dtype must be a floating or integer numpy dtype ('float32', 'float64', "
                                f"'int64') or None for the model's floats, got {describe(dtype)}")
    return Symbol(tuple(int(n) for n in dims), found, name=name)


def record(layer: Any, x: Any, build: Callable[..., np.ndarray], kwargs: dict[str, Any] | None = None) -> Symbol:
    """`layer` called on the Symbol `x` (or a list of Symbols), with keyword arguments `kwargs`: a
    new Symbol. `build(zeros, **kwargs)` runs the layer on one zero row of each input, building it
    and giving the output's shape."""
    listed = not isinstance(x, Symbol)
    items = tuple(x) if listed else (x,)
    name = type(layer).__name__
    kwargs = dict(kwargs or {})
    if kwargs:
        _check_kwargs(name, kwargs)
    loose = [i for i, item in enumerate(items) if not isinstance(item, Symbol)]
    if loose:
        raise ArgumentError(
            f"{name} was called on a list that mixes symbolic values with {describe(items[loose[0]])} (item "
            f"{loose[0]}); in a graph every input of a layer is a symbolic value (lamina.Input or a layer's output): "
            "make constants a layer's weights, or an Input"
        )
    zeros = [np.zeros((1, *item.shape), dtype=item.dtype or DEFAULT_DTYPE) for item in items]
    try:
        out = build(zeros if listed else zeros[0], **kwargs)
    except ShapeError as err:
        shapes = ", ".join(str((None, *item.shape)) for item in items)
        raise ShapeError(f"calling {printable(repr(layer), 120)} on symbolic input of shape {shapes}: {err}") from None
    if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] != 1:
        raise ShapeError(f"{name} called on symbolic input gave {describe(out)}, not an array with the batch axis "
                         "first; a layer in a graph returns one array of shape (batch, ...)")
    return Symbol(out.shape[1:], out.dtype, layer, items, listed, kwargs=kwargs)


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """A graph node's keyword arguments are saved with the model (config.json): JSON values only."""
    for key, value in kwargs.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise ArgumentError(
                f"{name} was called on symbolic input with {key}={printable(repr(value), 80)}; the keyword arguments "
                "of a layer call in a graph are saved with the model, so they must be JSON values (bool, int, finite "
                "float, str, None, or lists and dicts of them)"
            ) from None


def reachable(outputs: Sequence[Symbol]) -> list[Symbol]:
    """Every Symbol the outputs are computed from (themselves included), in creation order:
    each after the values it is computed from."""
    found: dict[int, Symbol] = {}
    stack = list(outputs)
    while stack:
        symbol = stack.pop()
        if id(symbol) not in found:
            found[id(symbol)] = symbol
            stack.extend(symbol.inputs)
    return sorted(found.values(), key=lambda symbol: symbol.serial)
