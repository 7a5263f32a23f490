"""Parameter: a trainable array and the gradient that backward passes add into."""
from __future__ import annotations

from functools import partialmethod
from typing import Any, cast

import numpy as np
from attrs import define, field, setters

from lamina.checks import as_floating, boolean
from lamina.files.budget import charge
from lamina.trace import current


def _operands(items: Any) -> Any:
    """Parameters among `items` as numpy should see them: the active trace's leaf, else the value."""
    if isinstance(items, Parameter):
        trace = current.get()
        return items.value if trace is None else trace.parameter(items)
    if isinstance(items, (list, tuple)):
        return type(items)(_operands(item) for item in items)
    return items


class ArrayMethods(np.lib.mixins.NDArrayOperatorsMixin):
    """numpy's operators, array properties and methods on `.value`, each through numpy's function:
    what a Parameter and a trace's stand-in array (`lamina.trace.primitives.Operand`) share."""

    __slots__ = ()
    value: np.ndarray

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    T = property(lambda self: np.transpose(self))

    def __len__(self) -> int:
        return len(self.value)

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        return np.reshape(cast(Any, self), shape[0] if len(shape) == 1 else shape, **kwargs)

    def transpose(self, *axes: Any) -> Any:
        return np.transpose(cast(Any, self), axes[0] if len(axes) == 1 else (axes or None))

    def ravel(self) -> Any:
        return np.reshape(cast(Any, self), -1)

    flatten = ravel


for _f in (np.sum, np.mean, np.max, np.min, np.var, np.std, np.cumsum, np.swapaxes, np.squeeze, np.dot, np.clip):
    setattr(ArrayMethods, _f.__name__, partialmethod(_f))


# Conversion runs when a Parameter is created, not on every assignment: optimizers write
# `param.value -= ...`, which Python turns into an assignment of the same array, each step.
@define(eq=False, repr=False, on_setattr=setters.NO_OP)
class Parameter(ArrayMethods):
    """A trainable array `.value` and its gradient `.grad` (zeros of the same shape and dtype).

    The array is used as given, not copied; integer or boolean values become float32.
    Optimizers update `.value` in place, so references to it stay valid. `trainable=False`
    freezes it: no optimizer updates it or keeps state for it, and the built-in layers skip
    computing its gradient (`.grad` stays zero); usually set through `Layer.trainable`.

    >>> p = Parameter(np.ones(3, dtype=np.float32)); p.grad
    array([0., 0., 0.], dtype=float32)

    A Parameter is also an operand: `x @ weight + bias` and numpy functions use its value, and
    inside a traced forward (autodiff or ONNX export) the trace's leaf for it.
    """

    # Identity, not element-wise comparison: Parameters are dict keys (optimizer state).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    value: np.ndarray = field(converter=lambda value: as_floating(value, "value", "Parameter"))
    grad: np.ndarray = field(init=False)
    _trainable: bool = field(default=True, kw_only=True, converter=lambda flag: boolean(flag, "trainable", "Parameter"))

    def __attrs_post_init__(self) -> None:
        # While a file loads, its gradient is charged to the loading budget before it exists.
        charge(self.value.shape, self.value.dtype, f"a parameter's gradient of shape {self.value.shape}", "gradient")
        self.grad = np.zeros_like(self.value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = _operands(self)
        if not isinstance(value, np.ndarray):
            value.__array__()  # a traced leaf refuses, naming the problem
        return value if dtype is None else value.astype(dtype)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return getattr(ufunc, method)(*_operands(inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return func(*_operands(args), **{k: _operands(v) for k, v in kwargs.items()})

    def __getitem__(self, key: Any) -> Any:
        return _operands(self)[key]

    @property
    def trainable(self) -> bool:
        """False when frozen: optimizers leave it alone and layers skip its gradient."""
        return self._trainable

    @trainable.setter
    def trainable(self, flag: bool) -> None:
        self._trainable = boolean(flag, "trainable", "Parameter")

    def zero_grad(self) -> None:
        """Reset the gradient to zero in place (backward passes add into it)."""
        self.grad.fill(0)

    def __repr__(self) -> str:
        frozen = "" if self._trainable else ", trainable=False"
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype}{frozen})"
