"""Input validation shared by the core and by plugins; messages name the object, expected and actual."""
from __future__ import annotations

import numbers

import numpy as np

from lamina.errors import ArgumentError

DEFAULT_DTYPE = np.dtype(np.float32)


def describe(value: object) -> str:
    """`0 (int)`: the value and its type, as error messages show them."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def positive_int(value: object, name: str, owner: str, example: int = 8) -> int:
    """Return `value` as an int, or raise ArgumentError unless it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a positive int, got {describe(value)}; "
            f"pass a whole number >= 1, e.g. {owner}({name}={example})"
        )
    return int(value)


def positive_number(value: object, name: str, owner: str, example: float = 0.01) -> float:
    """Return `value` as a float, or raise ArgumentError unless it is a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a positive number, got {describe(value)}; "
            f"pass e.g. {owner}({name}={example})"
        )
    return float(value)


def as_numeric(x: object, name: str, owner: str) -> np.ndarray:
    """`x` as a numeric ndarray (bool, int or float; no copy when it already is one)."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged nested lists, for example
        raise ArgumentError(
            f"{owner}: {name} must be a numeric array, but numpy could not convert it ({err}); "
            "pass a rectangular list or an ndarray"
        ) from None
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind == "O":
        try:
            return arr.astype(DEFAULT_DTYPE)
        except (ValueError, TypeError):
            pass
    raise ArgumentError(
        f"{owner}: {name} must be numeric (bool, int or float), got an array of dtype "
        f"{arr.dtype}; convert it first, e.g. np.asarray({name}, dtype=np.float32)"
    )


def as_floating(x: object, name: str, owner: str, dtype: np.dtype | None = None) -> np.ndarray:
    """`x` as a floating ndarray: floats keep their dtype, bools and ints become `dtype` (float32).

    No copy is made when `x` already is a floating ndarray.
    """
    arr = as_numeric(x, name, owner)
    if arr.dtype.kind == "f":
        return arr
    return arr.astype(dtype or DEFAULT_DTYPE)
