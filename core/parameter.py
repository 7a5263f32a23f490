"""Parameter: a trainable array and the gradient that backward passes add into."""
from __future__ import annotations

import numpy as np
from attrs import define, field, setters

from lamina.budget import charge
from lamina.checks import as_floating


def _to_value(value: object) -> np.ndarray:
    return as_floating(value, "value", "Parameter")


# Conversion runs when a Parameter is created, not on every assignment: optimizers write
# `param.value -= ...`, which Python turns into an assignment of the same array, each step.
@define(eq=False, repr=False, on_setattr=setters.NO_OP)
class Parameter:
    """A trainable array `.value` and its gradient `.grad` (zeros of the same shape and dtype).

    The array is used as given, not copied; integer or boolean values become float32.
    Optimizers update `.value` in place, so references to it stay valid.

    >>> p = Parameter(np.ones(3, dtype=np.float32)); p.grad
    array([0., 0., 0.], dtype=float32)
    """

    value: np.ndarray = field(converter=_to_value)
    grad: np.ndarray = field(init=False)

    def __attrs_post_init__(self) -> None:
        # While a file loads, its gradient is charged to the loading budget before it exists.
        charge(self.value.shape, self.value.dtype, f"a parameter's gradient of shape {self.value.shape}", "gradient")
        self.grad = np.zeros_like(self.value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    def zero_grad(self) -> None:
        """Reset the gradient to zero in place (backward passes add into it)."""
        self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"
