"""lamina's one random generator: every random draw lamina makes comes from `rng()`."""
from __future__ import annotations

import numpy as np

from lamina.errors import ArgumentError

_generator = np.random.default_rng()


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
    return _generator
