"""The loading budget: how much a model file may make lamina allocate before it is refused.

A file's claims are checked before they are believed: while `lamina.load` builds the layers a
file describes, every weight an initializer or a Parameter is about to allocate is charged
here first, so that a 400-byte file describing a 10^12-value embedding is refused before a
byte of it exists. Outside loading nothing is charged and nothing is checked.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator

import numpy as np
from attrs import define

from lamina.errors import ArgumentError, FileFormatError

DEFAULT_MAX_BYTES = 16 * 2**30  # all arrays of one model: weights, buffers, optimizer state
DEFAULT_MAX_PARAMETERS = 2**31
ENVIRONMENT = "LAMINA_MAX_LOAD_BYTES"


@define
class Budget:
    """What one load may still allocate; `where` names the file in messages."""

    where: str
    max_bytes: int
    max_parameters: int = DEFAULT_MAX_PARAMETERS
    # What building the layers may allocate: set from the weights the file declares, so that a
    # config whose layers would build far more than its own weights is refused before it does.
    build_bytes: int | None = None
    used_bytes: int = 0
    used_parameters: int = 0
    built_bytes: int = 0

    def charge(self, shape: tuple[int, ...], dtype: np.dtype | type, what: str, kind: str = "weight") -> None:
        """Count an allocation about to happen: a layer's "weight", its "gradient", or "other"
        arrays (the sample input, optimizer state); refuse it when it passes a limit."""
        count = math.prod(int(n) for n in shape)
        size = count * np.dtype(dtype).itemsize
        built = kind in ("weight", "gradient")
        if built and self.build_bytes is not None and self.built_bytes + size > self.build_bytes:
            raise FileFormatError(
                f"{self.where}: {what} would make the layers allocate more than the weights the file declares "
                f"({self.build_bytes:,} bytes with their gradients); the file is corrupted or forged"
            )
        if kind == "weight" and self.used_parameters + count > self.max_parameters:
            raise FileFormatError(
                f"{self.where}: {what} would bring the model to {self.used_parameters + count:,} parameters, over the "
                f"loading limit of {self.max_parameters:,}; the file is corrupted, or describes a model this "
                "lamina will not build"
            )
        if self.used_bytes + size > self.max_bytes:
            raise FileFormatError(
                f"{self.where}: {what} would bring the arrays to {self.used_bytes + size:,} bytes, over the "
                f"loading limit of {self.max_bytes:,} bytes. If you trust the file, raise the limit: "
                f"lamina.load(path, max_bytes=...) or the environment variable {ENVIRONMENT}"
            )
        self.used_bytes += size
        self.built_bytes += size if built else 0
        self.used_parameters += count if kind == "weight" else 0


_active: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("lamina_load_budget", default=None)


def charge(shape: tuple[int, ...], dtype: np.dtype | type, what: str, kind: str = "weight") -> None:
    """Charge an allocation about to happen to the load in progress (nothing outside a load)."""
    budget = _active.get()
    if budget is not None:
        budget.charge(shape, dtype, what, kind)


@contextlib.contextmanager
def loading(budget: Budget) -> Iterator[Budget]:
    token = _active.set(budget)
    try:
        yield budget
    finally:
        _active.reset(token)


def max_load_bytes(max_bytes: int | None) -> int:
    """The byte limit of a load: the argument, else LAMINA_MAX_LOAD_BYTES, else 16 GiB."""
    if max_bytes is None:
        text = os.environ.get(ENVIRONMENT)
        if text is None:
            return DEFAULT_MAX_BYTES
        try:
            max_bytes = int(text)
        except ValueError:
            raise ArgumentError(f"{ENVIRONMENT}={text!r}: expected a whole number of bytes, e.g. "
                                f"{DEFAULT_MAX_BYTES}") from None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ArgumentError(f"lamina.load(max_bytes={max_bytes!r}): max_bytes must be a positive int, e.g. "
                            "2**34 (16 GiB)")
    return max_bytes
