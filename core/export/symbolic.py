"""Symbolic: the stand-in array that turns a forward-only layer's numpy code into ONNX nodes.

While a layer without `to_onnx` is exported, its forward runs on a `Symbolic` instead of the
input: numpy's operators, ufuncs and functions see it through the same protocols autodiff uses,
compute the value on the example arrays (so shapes and dtypes are known) and add the matching
ONNX node(s) to the graph. What has no ONNX mapping raises a LaminaError naming the layer and
the operation; Python control flow on values (`if x.max() > 0:`) cannot be exported.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lamina import autodiff
from lamina.autodiff import ArrayMethods
from lamina.errors import LaminaError
from lamina.export.graph import Graph
from lamina.parameter import Parameter

# ONNX TensorProto data types, by numpy dtype
ONNX_TYPES = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6,
    np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float16): 10, np.dtype(np.float64): 11,
}
_INT64_MAX = np.iinfo(np.int64).max


def onnx_type(dtype: Any, owner: str) -> int:
    found = ONNX_TYPES.get(np.dtype(dtype))
    if found is None:
        raise LaminaError(f"ONNX export ({owner}): arrays of dtype {np.dtype(dtype)} have no ONNX type lamina writes")
    return found


class ExportTape:
    """Stands where autodiff's tape stands while a layer is exported: Parameters used in numpy
    operations become initializers named after their path in the layer."""

    def __init__(self, graph: Graph, names: dict[int, str]) -> None:
        self.graph, self.names = graph, names

    def parameter(self, param: Parameter) -> Symbolic:
        name = self.names.get(id(param), "param")
        return Symbolic(self.graph, self.graph.parameter(param, name), param.value)


def _who(graph: Graph) -> str:
    """'layer 1.attention (MultiHeadAttention)': the layer being exported, for messages."""
    name = type(graph.layers[-1]).__name__ if graph.layers else "the model"
    return f"layer {graph.scope} ({name})" if graph.scope else name


def _unsupported(what: str, graph: Graph) -> LaminaError:
    return LaminaError(
        f"ONNX export of {_who(graph)}: {what} has no ONNX mapping in lamina; write the layer's "
        "forward with supported operations (see lamina.export.SUPPORTED), or give the layer a to_onnx(graph, x) "
        "method (docs/pages/writing-plugins.md)"
    )


class Symbolic(ArrayMethods):
    """A value of the graph being exported: its ONNX name and its example value."""

    exporting = True  # how lamina.ops tells a Symbolic from a plain or traced array
    __array_priority__ = 200.0
    __hash__ = object.__hash__

    def __init__(self, graph: Graph, name: str, value: Any) -> None:
        self.graph, self.name = graph, name
        self.value = np.asarray(value)
        graph.examples[name] = self.value

    def __repr__(self) -> str:
        return f"Symbolic({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise _unsupported("converting a value to a plain numpy array (np.asarray, or a numpy function lamina does not map)",
                           self.graph)

    def __bool__(self) -> bool:
        raise LaminaError(
            f"ONNX export of {_who(self.graph)}: Python control flow on a value (if, and, or, bool()) cannot "
            "be exported, since the file must work for every input; use np.where, or give the layer a to_onnx method"
        )

    def __float__(self) -> float:
        raise _unsupported("float() of a value", self.graph)

    def __int__(self) -> int:
        raise _unsupported("int() of a value (or using it as a Python index or size)", self.graph)

    __index__ = __int__

    def __setitem__(self, key: Any, value: Any) -> None:
        raise _unsupported("writing into an array in place", self.graph)

    def apply(self, value: Callable[[np.ndarray], np.ndarray], onnx: Callable[[Graph, str], str]) -> Symbolic:
        """What lamina.ops calls: the example through `value`, the graph through `onnx`."""
        return Symbolic(self.graph, onnx(self.graph, self.name), value(self.value))

    # -- operators and ufuncs -----------------------------------------------------------------

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = _resolved(inputs)
        if kwargs.get("out") is not None:
            raise LaminaError(
                f"ONNX export of {_who(self.graph)}: an in-place operation (y += 1, or out=) cannot be exported; "
                "write y = y + 1 instead"
            )
        if method != "__call__" or kwargs:
            raise _unsupported(f"np.{ufunc.__name__}.{method} (or keyword arguments such as where=)", self.graph)
        mapping = UFUNCS.get(ufunc)
        if mapping is None:
            raise _unsupported(f"np.{ufunc.__name__}", self.graph)
        graph = self.graph
        values = [_example(item) for item in inputs]
        out = np.asarray(ufunc(*values))
        if out.dtype == bool and ufunc in BOOLEAN_ARITHMETIC:  # numpy's + and * on booleans: or, and
            mapping = _op(BOOLEAN_ARITHMETIC[ufunc])
        if ufunc in BITWISE and any(np.asarray(v).dtype != bool for v in values):
            raise _unsupported(f"np.{ufunc.__name__} on integers (on booleans it is the logical operation)", graph)
        if ufunc in COMPARISONS or ufunc in PREDICATES:
            common = np.result_type(*values)  # compared in the operands' own type
        elif ufunc in LOGICAL or ufunc in BITWISE:
            common = np.dtype(bool)
        else:
            common = out.dtype
        names = [_as_input(graph, item, common) for item in inputs]
        return Symbolic(graph, mapping(graph, *names), out)

    def __getitem__(self, key: Any) -> Symbolic:
        return _index(self, key)

    # -- methods (the rest come from ArrayMethods, through __array_function__) -------------------------

    def astype(self, dtype: Any, copy: bool = True) -> Symbolic:
        target = np.dtype(dtype)
        if target == self.dtype:
            return self
        return Symbolic(self.graph, self.graph.op("Cast", self.name, to=onnx_type(target, self.graph.scope)), self.value.astype(target))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        rule = FUNCTIONS.get(func)
        if rule is None:
            raise _unsupported(f"np.{func.__name__}", self.graph)
        return rule(self.graph, *_resolved(args), **{k: _resolved(v) for k, v in kwargs.items()})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported(f"the array method .{name}()", self.graph)


def _resolved(items: Any) -> Any:
    """Parameters among `items` as the initializers of the layer being exported."""
    if isinstance(items, Parameter):
        tape = autodiff.active_tape()
        if isinstance(tape, ExportTape):
            return tape.parameter(items)
        return items
    if isinstance(items, (list, tuple)):
        return type(items)(_resolved(item) for item in items)
    return items


def _example(item: Any) -> Any:
    if isinstance(item, Symbolic):
        return item.value
    if isinstance(item, Parameter):
        return item.value
    if isinstance(item, (list, tuple)):
        return type(item)(_example(v) for v in item)
    return item


def _as_input(graph: Graph, item: Any, dtype: Any) -> str:
    """`item` as a value name of `dtype`: a Symbolic (cast if needed) or a constant."""
    dtype = np.dtype(dtype)
    if isinstance(item, Parameter):
        raise LaminaError(f"ONNX export of {graph.scope or 'the model'}: a Parameter was used outside the traced forward")
    if isinstance(item, Symbolic):
        if item.dtype == dtype:
            return item.name
        return graph.op("Cast", item.name, to=onnx_type(dtype, graph.scope))
    return graph.constant(np.asarray(item, dtype=dtype), dtype=dtype)


def _symbolic(graph: Graph, item: Any) -> Symbolic:
    if isinstance(item, Symbolic):
        return item
    value = np.asarray(item)
    return Symbolic(graph, graph.constant(value, dtype=value.dtype if value.dtype.kind != "f" else None), value)


def _op(name: str) -> Callable[..., str]:
    return lambda graph, *inputs: graph.op(name, *inputs)


def _square(graph: Graph, x: str) -> str:
    return graph.op("Mul", x, x)


def _log1p(graph: Graph, x: str) -> str:
    """log(u) * x / (u - 1) with u = 1 + x (x where u == 1): Log(1 + x) alone loses every digit
    near 0; the ratio corrects the rounding of 1 + x (Goldberg, after Kahan)."""
    one = graph.constant(1.0, dtype=graph.dtype_of(x))
    u = graph.op("Add", x, one)
    ratio = graph.op("Div", graph.op("Mul", graph.op("Log", u), x), graph.op("Sub", u, one))
    exact = graph.op("Where", graph.op("Equal", u, one), x, ratio)
    return graph.op("Where", graph.op("IsInf", u), graph.op("Log", u), exact)


def _expm1(graph: Graph, x: str) -> str:
    """(u - 1) * x / log(u) with u = exp(x) (x where u == 1, -1 where u == 0, u where infinite):
    Exp(x) - 1 alone loses every digit near 0."""
    dtype = graph.dtype_of(x)
    one = graph.constant(1.0, dtype=dtype)
    u = graph.op("Exp", x)
    ratio = graph.op("Div", graph.op("Mul", graph.op("Sub", u, one), x), graph.op("Log", u))
    out = graph.op("Where", graph.op("Equal", u, one), x, ratio)
    out = graph.op("Where", graph.op("Equal", u, graph.constant(0.0, dtype=dtype)), graph.constant(-1.0, dtype=dtype), out)
    return graph.op("Where", graph.op("IsInf", u), u, out)


def _isfinite(graph: Graph, x: str) -> str:
    return graph.op("Not", graph.op("Or", graph.op("IsNaN", x), graph.op("IsInf", x)))


UFUNCS: dict[np.ufunc, Callable[..., str]] = {
    np.add: _op("Add"), np.subtract: _op("Sub"), np.multiply: _op("Mul"), np.true_divide: _op("Div"),
    np.power: _op("Pow"), np.maximum: _op("Max"), np.minimum: _op("Min"), np.matmul: _op("MatMul"),
    np.negative: _op("Neg"), np.positive: _op("Identity"), np.exp: _op("Exp"), np.log: _op("Log"),
    np.log1p: _log1p, np.expm1: _expm1, np.sqrt: _op("Sqrt"), np.square: _square,
    np.reciprocal: _op("Reciprocal"), np.absolute: _op("Abs"), np.tanh: _op("Tanh"), np.sin: _op("Sin"),
    np.cos: _op("Cos"), np.sign: _op("Sign"), np.floor: _op("Floor"), np.ceil: _op("Ceil"), np.rint: _op("Round"),
    np.greater: _op("Greater"), np.greater_equal: _op("GreaterOrEqual"), np.less: _op("Less"),
    np.less_equal: _op("LessOrEqual"), np.equal: _op("Equal"),
    np.not_equal: lambda graph, a, b: graph.op("Not", graph.op("Equal", a, b)),
    np.isnan: _op("IsNaN"), np.isinf: _op("IsInf"), np.isfinite: _isfinite,
    np.logical_and: _op("And"), np.logical_or: _op("Or"), np.logical_not: _op("Not"),
    np.bitwise_and: _op("And"), np.bitwise_or: _op("Or"), np.bitwise_xor: _op("Xor"), np.invert: _op("Not"),
}
COMPARISONS = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal}
PREDICATES = {np.isnan, np.isinf, np.isfinite}
LOGICAL = {np.logical_and, np.logical_or, np.logical_not}
BOOLEAN_ARITHMETIC = {np.add: "Or", np.maximum: "Or", np.multiply: "And", np.minimum: "And"}
BITWISE = {np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert}  # ~ & | ^ on booleans


# -- functions -------------------------------------------------------------------------------------


def _axes(axis: Any, ndim: int) -> list[int]:
    if axis is None:
        return list(range(ndim))
    return sorted(int(a) % ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def _reduce(onnx_name: str, np_func: Callable[..., Any]) -> Callable[..., Any]:
    """np.sum, np.mean, np.max, np.min as the matching Reduce* node, reducing in the dtype
    numpy's result has (the mean of integers is a float; a count of booleans an integer)."""
    signature = inspect.signature(np_func)

    def rule(graph: Graph, *args: Any, **kwargs: Any) -> Symbolic:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise _unsupported(f"np.{np_func.__name__} called as ({err})", graph) from None
        options = dict(bound.arguments)
        a, axis, keepdims = options.pop("a"), options.pop("axis", None), bool(options.pop("keepdims", False))
        extra = sorted(k for k, v in options.items() if v is not None and v is not np._NoValue)
        if extra:
            raise _unsupported(f"np.{np_func.__name__}({', '.join(extra)}=...)", graph)
        x = _symbolic(graph, a)
        value = np.asarray(np_func(x.value, axis=axis, keepdims=keepdims))
        name = x.name
        if value.dtype == bool:  # max/min of booleans: reduced as integers
            name = graph.op("Cast", name, to=onnx_type(np.int32, graph.scope))
        elif x.dtype != value.dtype:
            name = graph.op("Cast", name, to=onnx_type(value.dtype, graph.scope))
        name = graph.reduce(onnx_name, name, _axes(axis, x.ndim), keepdims)
        if value.dtype == bool:
            name = graph.op("Cast", name, to=onnx_type(bool, graph.scope))
        return Symbolic(graph, name, value)

    return rule


_sum = _reduce("ReduceSum", np.sum)
_mean = _reduce("ReduceMean", np.mean)
_max = _reduce("ReduceMax", np.max)
_min = _reduce("ReduceMin", np.min)


def _var(graph: Graph, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False,
         **kwargs: Any) -> Any:
    if dtype is not None or out is not None or any(v is not None and v is not np._NoValue for v in kwargs.values()):
        raise _unsupported("np.var or np.std with dtype=, out= or where=", graph)
    x = _symbolic(graph, a)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)  # as numpy: the variance of integers is a float64
    centred = x - _mean(graph, x, axis=axis, keepdims=True)
    count = x.size // max(np.size(np.mean(x.value, axis=axis)), 1)
    return _sum(graph, centred * centred, axis=axis, keepdims=keepdims) / (count - ddof)


def _std(graph: Graph, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False,
         **kwargs: Any) -> Any:
    return np.sqrt(_var(graph, a, axis, dtype, out, ddof, keepdims, **kwargs))


def _reshape(graph: Graph, a: Any, *args: Any, **kwargs: Any) -> Symbolic:
    if kwargs.get("order", "C") not in ("C", None):
        raise _unsupported("np.reshape(order='F')", graph)
    shape: Any = args[0] if args else kwargs.get("shape", kwargs.get("newshape"))
    x = _symbolic(graph, a)
    value = np.reshape(x.value, shape)
    target = [int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,))]
    # A dimension that equals the input's at the same place is copied from it (ONNX's 0): so
    # reshapes that keep the batch axis keep it free.
    spec = [0 if i < x.ndim and size == x.shape[i] and size != -1 and size != 0 else size for i, size in enumerate(target)]
    return Symbolic(graph, graph.op("Reshape", x.name, graph.ints(spec, "shape")), value)


def _transpose(graph: Graph, a: Any, axes: Any = None) -> Symbolic:
    x = _symbolic(graph, a)
    perm = list(range(x.ndim))[::-1] if axes is None else [int(p) % x.ndim for p in axes]
    return Symbolic(graph, graph.op("Transpose", x.name, perm=perm), np.transpose(x.value, perm))


def _swapaxes(graph: Graph, a: Any, axis1: int, axis2: int) -> Symbolic:
    x = _symbolic(graph, a)
    perm = list(range(x.ndim))
    i, j = axis1 % x.ndim, axis2 % x.ndim
    perm[i], perm[j] = perm[j], perm[i]
    return _transpose(graph, x, perm)


def _moveaxis(graph: Graph, a: Any, source: Any, destination: Any) -> Symbolic:
    x = _symbolic(graph, a)
    sources = _axes(source, x.ndim) if not isinstance(source, (tuple, list)) else [int(s) % x.ndim for s in source]
    targets = [int(d) % x.ndim for d in (destination if isinstance(destination, (tuple, list)) else (destination,))]
    order = [n for n in range(x.ndim) if n not in sources]  # as numpy's moveaxis builds it
    for dest, src in sorted(zip(targets, sources)):
        order.insert(dest, src)
    return _transpose(graph, x, order)


def _expand_dims(graph: Graph, a: Any, axis: Any) -> Symbolic:
    x = _symbolic(graph, a)
    value = np.expand_dims(x.value, axis)
    axes = _axes(axis, value.ndim)
    return Symbolic(graph, _unsqueeze(graph, x.name, axes), value)


def _unsqueeze(graph: Graph, name: str, axes: Sequence[int]) -> str:
    return graph.op("Unsqueeze", name, graph.ints(list(axes), "axes"))


def _squeeze(graph: Graph, a: Any, axis: Any = None) -> Symbolic:
    x = _symbolic(graph, a)
    value = np.squeeze(x.value, axis)
    axes = [i for i, s in enumerate(x.shape) if s == 1] if axis is None else _axes(axis, x.ndim)
    if not axes:  # nothing to squeeze (ONNX's Squeeze with no axes would drop every axis of size 1)
        return Symbolic(graph, graph.op("Identity", x.name), value)
    return Symbolic(graph, graph.op("Squeeze", x.name, graph.ints(axes, "axes")), value)


def _concatenate(graph: Graph, arrays: Sequence[Any], axis: int | None = 0, **kwargs: Any) -> Symbolic:
    if axis is None or any(v is not None for v in kwargs.values()):
        raise _unsupported("np.concatenate with axis=None, out= or dtype=", graph)
    values = [_example(a) for a in arrays]
    value = np.concatenate(values, axis=axis)
    names = [_as_input(graph, a, value.dtype) for a in arrays]
    return Symbolic(graph, graph.op("Concat", *names, axis=int(axis) % value.ndim), value)


def _stack(graph: Graph, arrays: Sequence[Any], axis: int = 0, **kwargs: Any) -> Symbolic:
    value = np.stack([_example(a) for a in arrays], axis=axis)
    where = int(axis) % value.ndim
    names = [_unsqueeze(graph, _as_input(graph, a, value.dtype), [where]) for a in arrays]
    return Symbolic(graph, graph.op("Concat", *names, axis=where), value)


def _split(graph: Graph, a: Any, indices_or_sections: Any, axis: int = 0) -> list[Symbolic]:
    x = _symbolic(graph, a)
    pieces = np.split(np.arange(x.shape[axis]), indices_or_sections)
    found = []
    for piece in pieces:
        index: list[Any] = [slice(None)] * x.ndim
        start = int(piece[0]) if len(piece) else 0
        index[axis] = slice(start, start + len(piece))
        found.append(_index(x, tuple(index)))
    return found


def _where(graph: Graph, condition: Any, a: Any = None, b: Any = None) -> Symbolic:
    if a is None or b is None:
        raise _unsupported("np.where with one argument (the positions: their number depends on the values)", graph)
    value = np.where(_example(condition), _example(a), _example(b))
    cond = _as_input(graph, condition, bool)
    return Symbolic(graph, graph.op("Where", cond, _as_input(graph, a, value.dtype), _as_input(graph, b, value.dtype)), value)


def _clip(graph: Graph, a: Any, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None, **kwargs: Any) -> Symbolic:  # noqa: A002
    low = min if a_min is None else a_min
    high = max if a_max is None else a_max
    x = _symbolic(graph, a)
    out = x
    if low is not None:
        out = np.maximum(out, np.asarray(low, dtype=x.dtype))
    if high is not None:
        out = np.minimum(out, np.asarray(high, dtype=x.dtype))
    return out


def _matmul(graph: Graph, a: Any, b: Any, **kwargs: Any) -> Symbolic:
    value = np.matmul(_example(a), _example(b))
    return Symbolic(graph, graph.op("MatMul", _as_input(graph, a, value.dtype), _as_input(graph, b, value.dtype)), value)


def _dot(graph: Graph, a: Any, b: Any, out: Any = None) -> Symbolic:
    if out is not None or np.ndim(_example(a)) > 2 or np.ndim(_example(b)) > 2:
        raise _unsupported("np.dot of arrays above 2-D (or with out=); use np.matmul or np.einsum", graph)
    if np.ndim(_example(a)) == 0 or np.ndim(_example(b)) == 0:
        return np.multiply(a, b)
    return _matmul(graph, a, b)


def _einsum(graph: Graph, subscripts: str, *operands: Any, **kwargs: Any) -> Symbolic:
    if not isinstance(subscripts, str) or "->" not in subscripts:
        raise _unsupported("np.einsum without explicit '->' subscripts", graph)
    value = np.einsum(subscripts, *[_example(o) for o in operands])
    names = [_as_input(graph, o, value.dtype) for o in operands]
    return Symbolic(graph, graph.op("Einsum", *names, equation=subscripts.replace(" ", "")), value)


def _pad(graph: Graph, a: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0, **kwargs: Any) -> Symbolic:
    if mode != "constant":
        raise _unsupported(f"np.pad(mode={mode!r})", graph)
    if np.ndim(_example(constant_values)) != 0:
        raise _unsupported("np.pad with a different constant per side (ONNX's Pad takes one)", graph)
    x = _symbolic(graph, a)
    value = np.pad(x.value, pad_width, mode="constant", constant_values=constant_values)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    pads = [int(w) for w in widths[:, 0]] + [int(w) for w in widths[:, 1]]
    fill = graph.constant(np.asarray(constant_values, dtype=x.dtype), dtype=x.dtype)
    return Symbolic(graph, graph.op("Pad", x.name, graph.ints(pads, "pads"), fill, mode="constant"), value)


def _flip(graph: Graph, a: Any, axis: Any = None) -> Symbolic:
    x = _symbolic(graph, a)
    index: list[Any] = [slice(None)] * x.ndim
    for ax in _axes(axis, x.ndim):
        index[ax] = slice(None, None, -1)
    return _index(x, tuple(index))


def _cumsum(graph: Graph, a: Any, axis: Any = None, **kwargs: Any) -> Symbolic:
    x = _symbolic(graph, a)
    if axis is None:
        return _cumsum(graph, np.reshape(x, -1), axis=0)
    value = np.cumsum(x.value, axis=axis)
    where = graph.constant(np.int64(int(axis) % x.ndim), "axis", np.int64)  # a 0-d tensor, as CumSum wants
    return Symbolic(graph, graph.op("CumSum", x.name, where), value)


def _like(fill: float | None) -> Callable[..., Symbolic]:
    """np.zeros_like / ones_like / full_like: a constant of the input's (possibly dynamic) shape."""

    def rule(graph: Graph, a: Any, fill_value: Any = None, dtype: Any = None, **kwargs: Any) -> Symbolic:
        x = _symbolic(graph, a)
        target = np.dtype(dtype) if dtype is not None else x.dtype
        number = fill if fill is not None else fill_value
        value = np.full_like(x.value, number, dtype=target)
        shape = graph.op("Shape", x.name)
        return Symbolic(graph, graph.op("ConstantOfShape", shape, value=np.asarray([number], dtype=target)), value)

    return rule


def _inspect(np_func: Callable[..., Any]) -> Callable[..., Any]:
    """np.shape, np.ndim, np.size: plain numbers from the example (the batch axis's size, if
    used, is caught by the exporter's second trace)."""
    return lambda graph, *args, **kwargs: np_func(*_example(args), **{k: _example(v) for k, v in kwargs.items()})


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.sum: _sum, np.mean: _mean, np.max: _max, np.min: _min, np.amax: _max, np.amin: _min, np.var: _var,
    np.std: _std, np.reshape: _reshape, np.transpose: _transpose, np.swapaxes: _swapaxes, np.moveaxis: _moveaxis,
    np.expand_dims: _expand_dims, np.squeeze: _squeeze, np.concatenate: _concatenate, np.stack: _stack,
    np.split: _split, np.where: _where, np.clip: _clip, np.matmul: _matmul, np.dot: _dot, np.einsum: _einsum,
    np.pad: _pad, np.flip: _flip, np.cumsum: _cumsum, np.zeros_like: _like(0.0), np.ones_like: _like(1.0),
    np.full_like: _like(None), np.empty_like: _like(0.0),
    np.shape: _inspect(np.shape), np.ndim: _inspect(np.ndim), np.size: _inspect(np.size),
}


# -- indexing ---------------------------------------------------------------------------------------


def _index(x: Symbolic, key: Any) -> Symbolic:
    """Basic indexing (ints, slices, None, ...) as Slice, Gather and Unsqueeze; one integer array
    as a Gather along its axis."""
    graph = x.graph
    key = _resolved(key)
    value = x.value[_example(key)]
    items = list(key) if isinstance(key, tuple) else [key]
    arrays = [i for i, item in enumerate(items) if isinstance(item, (np.ndarray, list, Symbolic))]
    if arrays:  # a traced index (ids computed in forward) stays a value of the graph
        return _gather(x, items, arrays)
    if items.count(Ellipsis) > 1:
        raise _unsupported("indexing with two Ellipses", graph)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        named = sum(1 for item in items if item is not None and item is not Ellipsis)
        items[at : at + 1] = [slice(None)] * (x.ndim - named)
    starts, ends, axes, steps, drops, news = [], [], [], [], [], []
    axis = 0
    out_axis = 0
    for item in items:
        if item is None:
            news.append(out_axis)
            out_axis += 1
            continue
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            i = int(item)
            starts.append(i)
            ends.append(i + 1 if i != -1 else _INT64_MAX)
            axes.append(axis)
            steps.append(1)
            drops.append(axis)
        elif isinstance(item, slice):
            if item != slice(None):
                step = 1 if item.step is None else int(item.step)
                start = item.start if item.start is not None else (0 if step > 0 else -1)
                end = item.stop if item.stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX)
                starts.append(int(start))
                ends.append(int(end))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        else:
            raise _unsupported(f"indexing with {type(item).__name__}", graph)
        axis += 1
    name = x.name
    if axes:
        name = graph.op("Slice", name, graph.ints(starts, "starts"), graph.ints(ends, "ends"), graph.ints(axes, "axes"),
                        graph.ints(steps, "steps"))
    if drops:
        name = graph.op("Squeeze", name, graph.ints(drops, "axes"))
    if news:
        name = _unsqueeze(graph, name, news)
    if name == x.name:
        name = graph.op("Identity", name)
    return Symbolic(graph, name, value)


def _gather(x: Symbolic, items: list[Any], arrays: list[int]) -> Symbolic:
    """x[:, ..., index, rest] with one integer array `index`: a Gather along its axis, then the rest."""
    graph = x.graph
    if len(arrays) > 1 or any(isinstance(item, (int, np.integer)) or item is None for item in items):
        raise _unsupported("indexing with several integer arrays, or an integer array mixed with ints or None", graph)
    before = items[: arrays[0]]
    if any(item is Ellipsis for item in before) or any(item != slice(None) for item in before):
        raise _unsupported("indexing with an integer array after a slice other than ':'", graph)
    chosen = items[arrays[0]]
    index = np.asarray(_example(chosen))
    if index.dtype == bool:
        raise _unsupported("indexing with a boolean mask (its size depends on the values)", graph)
    if index.dtype.kind not in "iu":
        raise _unsupported(f"indexing with an array of {index.dtype}", graph)
    where = _as_input(graph, chosen, np.int64) if isinstance(chosen, Symbolic) else graph.constant(index, "index", np.int64)
    out = graph.op("Gather", x.name, where, axis=arrays[0])
    rest = items[arrays[0] + 1 :]
    result = Symbolic(graph, out, x.value[tuple(_example(items[: arrays[0] + 1]))])
    return _index(result, (slice(None),) * (arrays[0] + index.ndim) + tuple(rest)) if rest else result


SUPPORTED = sorted(
    {f"np.{u.__name__}" for u in UFUNCS} | {f"np.{f.__name__}" for f in FUNCTIONS}
    | {"+ - * / ** @ (operators), comparisons", "indexing (ints, slices, None, ..., one integer array)",
       ".T .reshape .transpose .swapaxes .squeeze .sum .mean .max .min .var .std .cumsum .dot .astype .ravel .flatten .clip",
       "lamina.ops (all)"}
)
