"""Parameter: a trainable array and the gradient that backward passes add into."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from attrs import define, field, setters

from lamina.checks import as_floating
from lamina.files.budget import charge


def _to_value(value: object) -> np.ndarray:
    return as_floating(value, "value", "Parameter")


# Set by lamina.autodiff: the tape being recorded, if any (a hook, so that this module stays below it).
tracing_hook: Callable[[], Any] | None = None


def _operand(param: Parameter) -> Any:
    """The Parameter as numpy should see it: its traced leaf inside a traced forward, else its value."""
    tape = tracing_hook() if tracing_hook is not None else None
    return param.value if tape is None else tape.parameter(param)


def _operands(items: Any) -> Any:
    if isinstance(items, Parameter):
        return _operand(items)
    if isinstance(items, (list, tuple)):
        return type(items)(_operands(item) for item in items)
    return items


# Conversion runs when a Parameter is created, not on every assignment: optimizers write
# `param.value -= ...`, which Python turns into an assignment of the same array, each step.
@define(eq=False, repr=False, on_setattr=setters.NO_OP)
class Parameter(np.lib.mixins.NDArrayOperatorsMixin):
    """A trainable array `.value` and its gradient `.grad` (zeros of the same shape and dtype).

    The array is used as given, not copied; integer or boolean values become float32.
    Optimizers update `.value` in place, so references to it stay valid.

    >>> p = Parameter(np.ones(3, dtype=np.float32)); p.grad
    array([0., 0., 0.], dtype=float32)

    A Parameter is also an operand: `x @ weight + bias` and numpy functions use its value, and
    inside a forward that lamina differentiates, its traced leaf (so its gradient is recorded).
    """

    # Identity, not element-wise comparison: Parameters are dict keys (optimizer state).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

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

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = _operand(self)
        if not isinstance(value, np.ndarray):
            value.__array__()  # a traced leaf refuses, naming the problem
        return value if dtype is None else value.astype(dtype)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return getattr(ufunc, method)(*_operands(inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return func(*_operands(args), **{k: _operands(v) for k, v in kwargs.items()})

    def __getitem__(self, key: Any) -> Any:
        return _operand(self)[key]

    def __len__(self) -> int:
        return len(self.value)

    @property
    def T(self) -> Any:
        return np.transpose(self)

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def reshape(self, *shape: Any) -> Any:
        return np.reshape(self, shape[0] if len(shape) == 1 else shape)

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        return np.sum(self, *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        return np.mean(self, *args, **kwargs)

    def zero_grad(self) -> None:
        """Reset the gradient to zero in place (backward passes add into it)."""
        self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"
