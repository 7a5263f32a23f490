"""Input validation shared by the core and by plugins; messages name the object, expected and actual."""
from __future__ import annotations

import numbers

import numpy as np

from lamina.errors import ArgumentError
from lamina.schedule import Schedule

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


def learning_rate(value: object, owner: str, example: float = 0.01) -> float | Schedule:
    """A learning rate as it enters an optimizer: a positive number, or a Schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, type) and issubclass(value, Schedule):
        raise ArgumentError(
            f"{owner}(lr={value.__name__}): lr is a schedule class, not an instance; "
            f"write e.g. lr=lamina.schedule({value.__name__!r}, ...)"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ArgumentError(
            f"{owner}(lr={value!r}): lr must be a positive number or a lamina.Schedule, got "
            f"{describe(value)}; pass e.g. {owner}(lr={example})"
        )
    return float(value)


def non_negative_number(value: object, name: str, owner: str, example: float = 0.0) -> float:
    """Return `value` as a float, or raise ArgumentError unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a number >= 0, got {describe(value)}; "
            f"pass e.g. {owner}({name}={example})"
        )
    return float(value)


def fraction(value: object, name: str, owner: str, low_open: bool = False, high_open: bool = True) -> float:
    """Return `value` as a float in [0, 1) (or the interval the flags give), else ArgumentError."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(value)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a number in {interval}, got {describe(value)}"
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


def as_integers(x: object, name: str, owner: str) -> np.ndarray:
    """`x` as an integer ndarray (integral floats are converted); for index inputs."""
    arr = as_numeric(x, name, owner)
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "b" or (arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr))):
        return arr.astype(np.int64)
    raise ArgumentError(
        f"{owner}: {name} must hold integer indices, got an array of dtype {arr.dtype} with "
        "non-integer values; pass token or category ids as ints"
    )
