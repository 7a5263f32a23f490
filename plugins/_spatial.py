"""Argument and shape checks shared by the image layers (private to the built-in plugins)."""
from __future__ import annotations

import numpy as np

import lamina


def pair(value: object, name: str, owner: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in items):
        raise lamina.ArgumentError(
            f"{owner}({name}={value!r}): {name} must be an int >= {minimum} or a pair of them, e.g. {name}=3"
        )
    return int(items[0]), int(items[1])


def as_given(value: object) -> object:
    """A constructor argument as stored: lists become tuples, so a config read back from JSON
    (which has no tuples) rebuilds an identical layer."""
    return tuple(value) if isinstance(value, list) else value


def check_images(x: np.ndarray, owner: str) -> None:
    if x.ndim != 4:
        raise lamina.ShapeError(
            f"{owner} expects images laid out as (batch, channels, height, width), got shape "
            f"{x.shape} ({x.ndim} dimensions); reshape flat rows with e.g. x.reshape(-1, 1, 8, 8) "
            "or a Reshape layer"
        )


def windows_out(size: int, window: int, stride: int, owner: str, axis: str) -> int:
    """How many windows of `window` fit in `size` at `stride`; a ShapeError when none does."""
    if size < window:
        raise lamina.ShapeError(
            f"{owner}: the {axis} of the (padded) input is {size}, smaller than the window of "
            f"{window}; use a smaller kernel or pool, more padding, or larger inputs"
        )
    return (size - window) // stride + 1
