"""What every property check of the conformance kit shares: how a check fails or does not apply,
and how it builds a plugin and its sample input from a Case."""
from __future__ import annotations

from typing import Any

import numpy as np
from attrs import frozen

from lamina.case import Case
from lamina.protocols.layer import Layer
from lamina.seeding import seed


@frozen
class Result:
    """The outcome of one property check: `ok` True, False, or None when it does not apply."""

    plugin: str
    property: str
    ok: bool | None
    detail: str = ""

    def __str__(self) -> str:
        status = {True: "ok", False: "FAILED", None: "n/a"}[self.ok]
        return f"{self.plugin}: {self.property} {status}" + (f": {self.detail}" if self.detail else "")


class Failed(Exception):
    """A property does not hold; the message says how."""


class NotApplicable(Exception):
    """A property does not apply to this case; the message says why."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def make_layer(cls: type, case: Case) -> Layer:
    seed(0)
    return cls(**case.kwargs)


def layer_input(cls: type, case: Case, dtype: type = np.float64, number: int = 0) -> Any:
    """The case's input: one array, or a list of arrays for a layer that takes a list (a merge layer)."""
    x = case.input(np.random.default_rng(number), case.shape)
    if isinstance(x, (list, tuple)):
        return [np.asarray(item, dtype=dtype) for item in x]
    return np.asarray(x) if getattr(cls, "integer_input", False) else np.asarray(x, dtype=dtype)


def loss_data(case: Case, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(0)
    pred: np.ndarray = np.asarray(case.input(generator, case.shape), dtype=dtype)
    return pred, case.target(generator, pred)


def where(a: np.ndarray, flat: int) -> str:
    """The index of a's element number `flat` (C order), as `(0, 2, 1)`."""
    return str(tuple(int(i) for i in np.unravel_index(flat, a.shape))) if a.ndim else "()"


def first_not_finite(a: np.ndarray) -> str | None:
    """Where a's first NaN or infinity is and what it is (`nan at index (0, 1)`), or None."""
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.ravel()))
    return f"{a.ravel()[flat]} at index {where(a, flat)}"
