"""The loading budget: how much a model file may make lamina allocate before it is refused.

A file's claims are checked before they are believed: while `lamina.load` builds the layers a
file describes, every weight an initializer or a Parameter is about to allocate is charged
here first, so that a 400-byte file describing a 10^12-value embedding is refused before a
byte of it exists. Outside loading nothing is charged and nothing is checked.

Loading also runs one sample of the file's input shape through the layers, so that each builds
its weights: that load-time pass has a limit of its own (`Pass`), a sixteenth of the byte limit
and ten seconds per 16 GiB of it, charged with the sample, every layer's output and what layers
reserve before allocating it (`Layer.reserve`).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import time
from collections.abc import Iterator

import numpy as np
from attrs import Factory, define

from lamina.checks import printable
from lamina.errors import ArgumentError, FileFormatError

DEFAULT_MAX_BYTES = 16 * 2**30  # all arrays of one model: weights, buffers, optimizer state
DEFAULT_MAX_PARAMETERS = 2**31
PASS_SHARE = 16  # the load-time pass may hold max_bytes / 16 of activations (1 GiB by default)
PASS_SECONDS = 10.0  # and run 10 s per 16 GiB of max_bytes (at least 10 s)
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


@define
class Pass:
    """The meter of one pass of layers whose values do not matter (loading a file, exporting a
    model): it holds at most `max_bytes` of activations at a time and runs at most `max_seconds`.

    Charged with what reaches it through `reserve` (before an allocation: the sample input, a
    layer's big temporaries) and `observe` (each layer's output, sublayers too, after the call,
    which also checks the clock). `begin` starts a top-level layer, its input already held.
    A refusal is `error(message)`, the message naming `where`, the layer and the figures, then
    `how` (how to raise the limit).
    """

    where: str
    max_bytes: int
    max_seconds: float
    how: str
    error: type[Exception] = FileFormatError
    name: str = "the load-time pass"
    used: int = 0
    started: float = 0.0
    layer: str = "the sample input"
    prepaid: dict[int, int] = Factory(dict)  # bytes of outputs reserved before the call, by id(layer)

    @classmethod
    def for_load(cls, where: str, max_bytes: int) -> Pass:
        return cls(where, max_bytes // PASS_SHARE, PASS_SECONDS * max(1.0, max_bytes / DEFAULT_MAX_BYTES),
                   f"If you trust the file, raise the limit (a 1/{PASS_SHARE} share of the loading limit, "
                   f"{max_bytes:,} bytes): lamina.load(path, max_bytes=...) or the environment variable {ENVIRONMENT}",
                   started=time.monotonic())

    def begin(self, label: str, held: int) -> None:
        """A top-level layer is called next: `held` bytes (its input) are all that is kept."""
        self.layer, self.used = label, held
        self._clock()

    def reserve(self, nbytes: int, what: str, output_of: object = None) -> None:
        """Charge `nbytes` about to be allocated; `output_of`: the layer whose output they are
        (not charged again when the call returns it)."""
        if output_of is not None:
            self.prepaid[id(output_of)] = self.prepaid.get(id(output_of), 0) + nbytes
        if self.used + nbytes > self.max_bytes:
            raise self.error(
                f"{self.where}: {self.name} through {self.layer}: {what} would bring it to "
                f"{self.used + nbytes:,} bytes, over its limit of {self.max_bytes:,} bytes. {self.how}"
            )
        self.used += nbytes

    def observe(self, layer: object, out: object) -> None:
        if isinstance(out, np.ndarray):  # not a traced value, which holds no bytes of its own
            unpaid = out.nbytes - self.prepaid.pop(id(layer), 0)
            self.reserve(max(unpaid, 0), f"the output of {printable(repr(layer), 80)}, of shape {out.shape}")
        self._clock()

    def _clock(self) -> None:
        spent = time.monotonic() - self.started
        if spent > self.max_seconds:
            raise self.error(
                f"{self.where}: {self.name} through {self.layer} has run {spent:.1f} s, over its limit of "
                f"{self.max_seconds:.0f} s; its input shape makes the layers too slow. {self.how}"
            )


def pass_bytes(shape: tuple[int, ...], dtype: np.dtype | type) -> int:
    """The bytes of an array of `shape` and `dtype` (exact, whatever its size)."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
