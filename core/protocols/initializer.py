"""Initializer: the protocol of weight initialisers, `init(shape, dtype) -> array`."""
from __future__ import annotations

import math

import numpy as np

from lamina.checks import DEFAULT_DTYPE
from lamina.files.budget import charge
from lamina.protocols.configurable import Configurable


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape.

    (in, out) for a matrix used as `x @ weight`; (out, in, *kernel) for convolution kernels,
    as PyTorch lays them out; (n, n) for a vector of n.
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer(Configurable):
    """Base class of initialisers: `init(shape, dtype, fan_in=None, fan_out=None) -> ndarray`.

    Subclasses implement `sample(shape, fan_in, fan_out)`; draws come from `lamina.rng()`.
    A layer passes `fan_in` and `fan_out` when its weight layout is not the one `fans` assumes.
    """

    def __call__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype | type = DEFAULT_DTYPE,
        fan_in: int | None = None,
        fan_out: int | None = None,
    ) -> np.ndarray:
        shape = tuple(int(n) for n in shape)
        charge(shape, dtype, f"a {type(self).__name__} weight of shape {shape}")  # while loading a file
        default_in, default_out = fans(shape)
        values = self.sample(shape, fan_in or default_in, fan_out or default_out)
        return np.asarray(values, dtype=dtype).reshape(shape)

    def sample(self, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement sample(shape, fan_in, fan_out)")

