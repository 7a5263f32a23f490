"""lamina's one random generator: every random draw lamina makes comes from `rng()`."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

from lamina.errors import ArgumentError

_generator = np.random.default_rng()
# A generator of its own for the code inside `private_generator()` (in this thread only).
_private: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "lamina_private_rng", default=None
)


def seed(n: int) -> None:
    """Re-seed lamina's generator so that the same seed gives the same model, bit for bit.

    >>> lamina.seed(0)
    """
    global _generator
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ArgumentError(
            f"lamina.seed(n={n!r}): n must be a non-negative int, got {type(n).__name__}; "
            "pass e.g. lamina.seed(0)"
        )
    _generator = np.random.default_rng(int(n))


def rng() -> np.random.Generator:
    """The generator that layers and initialisers draw from (fetch it at draw time, never cache it)."""
    private = _private.get()
    return _generator if private is None else private


@contextlib.contextmanager
def private_generator() -> Iterator[np.random.Generator]:
    """Inside the block, `rng()` in this thread is a fresh generator of its own: for work that
    must not move lamina's generator, such as building the layers of a file being loaded
    (their initial weights are overwritten by the file's anyway)."""
    token = _private.set(np.random.default_rng(0))
    try:
        yield rng()
    finally:
        _private.reset(token)
