"""The table of primitives: each numpy ufunc, numpy function and `lamina.ops` operation is one row.

A row (`Primitive`) holds its value (numpy on plain arrays), its vector-Jacobian product
`vjp(g, needs, out, *operands, **params)` -> one gradient per operand (None where `needs` says
none is wanted; a bare array for one operand) and its ONNX form
`onnx(graph, out, *names, **params)` -> the output's name; a `compose` row's value is written in
other rows. `Primitive.bind` splits a call once: operands are what a trace follows, params the
rest (axis, keepdims, ...); a keyword a row does not take is refused. CONSTANT in the vjp column:
the result carries no gradient (comparisons, shapes); in the onnx column: it is a plain number.
The autodiff tape (`tape.py`) and the ONNX export (`lamina.export.symbolic`) read the table.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from lamina.errors import LaminaError
from lamina.parameter import ArrayMethods, Parameter
from lamina.trace import current

CONSTANT = "constant"
ALL = (True, True, True)  # a hand-written backward wants every gradient
_INT64_MAX = np.iinfo(np.int64).max


class Refused(Exception):
    """What a row cannot honour, as a clause; the trace reading the row words the error."""


class Primitive:
    """One row of the table (see the module's docstring); calling it applies it to arrays, traced values, Parameters."""

    def __init__(self, name: str, value: Callable[..., Any], vjp: Any = None, onnx: Any = None, *, spec: Any = None,
                 operands: tuple[str, ...] = ("a",), compose: bool = False, saves: bool = False, check: Any = None,
                 cast: str | None = None) -> None:
        self.name, self.value, self.vjp, self.onnx, self.compose = name, value, vjp, onnx, compose
        # saves: value returns (out, what vjp needs)
        self.operands, self.saves, self.check, self.cast = operands, saves, check, cast
        self.ufunc = isinstance(value, np.ufunc)
        self.signature = (spec if isinstance(spec, inspect.Signature)
                          else None if self.ufunc else inspect.signature(spec or value))
        self.accepts = [] if self.ufunc else list(inspect.signature(value).parameters)
        self.positional = (self.signature is not None and operands[0] not in ("arrays", "operands")  # see bind
                           and list(self.signature.parameters)[: len(operands)] == list(operands))
        self.__doc__ = value.__doc__  # lamina.ops' documentation

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.ufunc:  # numpy dispatches ufuncs to stand-ins and Parameters itself
            return self.value(*args, **kwargs)
        if args and isinstance(args[0], Operand):  # the common traced call, lamina.ops.relu(x) in a forward
            return args[0].trace.run(self, self.name, args, kwargs)
        items = (*args, *kwargs.values())
        if not any(isinstance(item, (Operand, Parameter, list, tuple, dict)) for item in items):  # plain: as it is
            out = self.value(*args, **kwargs)
            return out[0] if self.saves else out
        trace = next((item.trace for item in items if isinstance(item, Operand)), None)
        if trace is None and any(isinstance(item, Parameter) for item in items):
            trace = current.get()
        if trace is None:
            out = self.value(*_plain(args), **_plain(kwargs))
            return out[0] if self.saves else out
        return trace.run(self, self.name, args, kwargs)

    def to_onnx(self, graph: Any, *names: str, **params: Any) -> str:
        """The row's ONNX form on the graph's values `names` (a hand-written layer's to_onnx)."""
        return self.onnx(graph, None, *names, **params)

    def grad(self, g: Any, out: Any, *operands: Any, **params: Any) -> Any:
        """The row's rule as a hand-written backward uses it: dL/d(operands) from dL/d(out) = g."""
        return self.vjp(g, ALL, out, *operands, **params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """(operands, params) of a call; "arrays" and "operands" hold several operands."""
        if not kwargs and self.positional and len(args) == len(self.operands):  # the operands alone, by position
            return list(args), {}
        names = {} if self.signature is None else self.signature.parameters
        given = {k: v for k, v in kwargs.items() if v is not np._NoValue and (k in names or v is not None)}
        if self.signature is None and not given:  # a ufunc's call
            return list(args), {}
        try:  # a ufunc (no signature) binds nothing: every keyword given is refused
            params = None if self.signature is None else dict(self.signature.bind(*args, **given).arguments)
        except TypeError:
            params = None
        # what the spec names but the value does not take (dtype=, out=) is refused unless None
        extra = ([k for k in given if k not in names] if params is None
                 else [k for k, v in params.items() if k not in self.accepts and v is not None])
        if params is None or extra:
            allowed = ", ".join(k for k in self.accepts if k not in self.operands) or "no keyword arguments"
            raise Refused(f"{self.name}({', '.join(f'{k}=...' for k in sorted(extra))}) on a traced array: "
                          f"lamina's rule takes {'only ' * (self.signature is not None)}{allowed}")
        params = {k: v for k, v in params.items() if k in self.accepts}
        operands: list[Any] = []
        for name in self.operands:
            item = params.pop(name, None)
            operands.extend(item) if name in ("arrays", "operands") else operands.append(item)
        for key, item in params.items():
            if key != "key" and isinstance(item, (Operand, Parameter)):
                raise Refused(f"{self.name} with a traced {key}; use it as an operand (e.g. np.maximum for bounds)")
        return operands, params


class Trace:
    """What stand-in arrays' operations go to: the autodiff tape or an ONNX export. Subclasses
    say how a row is applied (`apply`), how a refusal is worded and how a layer is called."""

    __slots__ = ()

    def run(self, row: Primitive | None, name: str, args: Any, kwargs: dict[str, Any]) -> Any:
        if row is None:
            raise self.refuse(name)
        try:
            operands, params = row.bind(args, kwargs)
            return row.value(*operands, **params) if row.compose else self.apply(row, operands, params)
        except Refused as err:
            raise self.refuse(name, str(err)) from None

    apply: Callable[[Primitive, list[Any], dict[str, Any]], Any]  # the row on these operands
    refuse: Callable[..., LaminaError]  # (what, why=None): the error that names what cannot be followed


class Operand(ArrayMethods):
    """A stand-in array of a trace, its example or value in `.value`: numpy's operators, ufuncs,
    functions, indexing and methods look their rows up and go to `.trace`."""

    __slots__ = ()
    trace: Trace

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or kwargs.get("out") is not None:
            same = UFUNC_METHODS.get((ufunc, method))  # np.maximum.reduce(x, axis=0) as np.max(x, axis=0)
            if same is not None and kwargs.get("out") is None:
                return self.trace.run(TABLE.get(same), f"np.{ufunc.__name__}.{method}", inputs, {"axis": 0, **kwargs})
            raise self.trace.refuse(f"np.{ufunc.__name__}.{method}", "an in-place operation (y += 1, or out=) or "
                                    f"np.{ufunc.__name__}.{method} cannot be followed; write y = y + 1 instead")
        return self.trace.run(TABLE.get(ufunc), f"np.{ufunc.__name__}", inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return self.trace.run(TABLE.get(func), f"np.{func.__name__}", args, kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self.trace.run(GETITEM, "indexing", (self, key), {})

    # What would drop the trace is refused, naming it.
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self.trace.refuse("", "a traced array was converted to a plain numpy array (np.asarray, np.array or "
                                "a numpy function lamina does not follow), which would drop it from the trace")

    def __float__(self) -> float:
        raise self.trace.refuse("", "float() of a traced value drops it from the trace; keep it an array")

    def __int__(self) -> int:
        raise self.trace.refuse("", "int() of a value (or using it as a Python index or size) drops it from the trace")

    __index__ = __int__

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self.trace.refuse("", "writing into a traced array in place drops it from the trace; "
                                "build a new array instead (np.where, np.concatenate)")

    def astype(self, dtype: Any, copy: bool = True) -> Any:
        return self.trace.run(ASTYPE, "astype", (self, np.dtype(dtype)), {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "trace":
            raise AttributeError(name)
        raise self.trace.refuse(f".{name}()", f"a traced array has no method .{name}() in lamina (it has {METHODS}); "
                                f"use np.{name}(...) if lamina supports it")


METHODS = (".T, .shape, .dtype, .ndim, .size, .reshape, .transpose, .swapaxes, .squeeze, .sum, .mean, .max, .min, "
           ".var, .std, .cumsum, .dot, .astype, .ravel, .flatten, .clip")


def _plain(x: Any) -> Any:
    if isinstance(x, (Operand, Parameter)):
        return x.value
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _shape(a: Any) -> tuple[int, ...]:
    return a.shape if type(a) is np.ndarray else np.shape(a)


def _axes(axis: Any, ndim: int) -> list[int]:
    if axis is None:
        return list(range(ndim))
    return sorted(int(a) % ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `g` over the axes that broadcasting added or stretched, back to `shape`."""
    if g.shape == shape:
        return g
    if len(shape) == 1 and g.ndim == 2 and g.shape[1] == shape[0]:  # a bias: one call
        return g.sum(axis=0)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _spread(g: np.ndarray, shape: tuple[int, ...], axis: Any, keepdims: bool) -> np.ndarray:
    """`g` of a reduction over `axis` put back in the input's shape (broadcast over that axis)."""
    if not keepdims:
        g = np.expand_dims(g, tuple(_axes(axis, len(shape))))
    return np.broadcast_to(g, shape)


# -- ufuncs: vjp(g, needs, out, *inputs) ----------------------------------------------------------------


def _binary(da: Callable[..., Any], db: Callable[..., Any]) -> Callable[..., list[Any]]:
    return lambda g, needs, out, a, b: [unbroadcast(da(g, out, a, b), _shape(a)) if needs[0] else None,
                                        unbroadcast(db(g, out, a, b), _shape(b)) if needs[1] else None]


# The rules of + - * /, the most common of all (every bias, every gate), written out.
def _add(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    return (unbroadcast(g, _shape(a)) if needs[0] else None, unbroadcast(g, _shape(b)) if needs[1] else None)


def _subtract(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    return (unbroadcast(g, _shape(a)) if needs[0] else None, unbroadcast(-g, _shape(b)) if needs[1] else None)


def _multiply(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    return (unbroadcast(g * b, _shape(a)) if needs[0] else None, unbroadcast(g * a, _shape(b)) if needs[1] else None)


def _divide(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    ga = g / b
    if not needs[1]:
        return unbroadcast(ga, _shape(a)) if needs[0] else None, None
    gb = ga * out  # -g a / b^2 = -(g / b) (a / b)
    np.negative(gb, out=gb)
    return unbroadcast(ga, _shape(a)) if needs[0] else None, unbroadcast(gb, _shape(b))


def _tanh(g: np.ndarray, needs: Any, out: Any, a: Any) -> Any:
    """g (1 - out^2), in one new array."""
    if type(out) is np.ndarray and type(g) is np.ndarray and g.shape == out.shape and g.dtype == out.dtype:
        slope = out * out
        np.subtract(1, slope, out=slope)
        return np.multiply(g, slope, out=slope)
    return g * (1 - out * out)


def _times(g: Any, slope: np.ndarray) -> Any:
    """g * slope, into `slope` (an array the rule made) where that keeps g * slope's shape and dtype."""
    if type(g) is np.ndarray and type(slope) is np.ndarray and g.shape == slope.shape and g.dtype == slope.dtype:
        return np.multiply(g, slope, out=slope)
    return g * slope


def _folded_matmul(a: Any, b: Any) -> Any:
    """a @ b, with a's leading axes folded into one when b is a matrix: one large product
    instead of numpy's loop of small ones (1.5x faster for (32, 64, 128) @ (128, 384))."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim > 2 and b.ndim == 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return np.matmul(a, b)


def _matmul(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> list[Any]:
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 and b.ndim == 2:  # the common case, in one product per gradient
        return [g @ b.T if needs[0] else None, a.T @ g if needs[1] else None]
    if a.ndim > 2 and b.ndim == 2:  # a stack of rows times a matrix (x @ weight): fold the stack
        g2 = g.reshape(-1, g.shape[-1])
        return [(g2 @ b.T).reshape(a.shape) if needs[0] else None,
                a.reshape(-1, a.shape[-1]).T @ g2 if needs[1] else None]
    a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    g2 = np.expand_dims(g, -1) if b.ndim == 1 else g
    g2 = np.expand_dims(g2, -2) if a.ndim == 1 else g2
    ga, gb = g2 @ np.swapaxes(b2, -1, -2), np.swapaxes(a2, -1, -2) @ g2
    return [unbroadcast(ga[..., 0, :] if a.ndim == 1 else ga, a.shape),
            unbroadcast(gb[..., 0] if b.ndim == 1 else gb, b.shape)]


def _extremum(bigger: bool) -> Callable[..., list[Any]]:
    """np.maximum (bigger) or np.minimum: the gradient goes to the operand that wins, and half
    to each on an exact tie (as PyTorch's)."""

    def vjp(g: np.ndarray, needs: Any, out: Any, a: Any, b: Any) -> list[Any]:
        ties = np.equal(a, b)
        tied = bool(ties.any())
        grads: list[Any] = []
        for need, mine, other in ((needs[0], a, b), (needs[1], b, a)):
            wins = (np.greater if bigger else np.less)(mine, other)
            grads.append(unbroadcast(g * (wins + 0.5 * ties) if tied else g * wins, _shape(mine)) if need else None)
        return grads

    return vjp


def _power_b(g: np.ndarray, out: Any, a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * out * np.where(np.asarray(a) > 0, np.log(np.where(np.asarray(a) > 0, a, 1)), 0)


# -- ufuncs: onnx(graph, out, *names) ---------------------------------------------------------------


def _op(name: str) -> Callable[..., str]:
    return lambda graph, out, *xs: graph.op(name, *xs)


def _boolean(name: str, logical: str) -> Callable[..., str]:
    """numpy's + and max on booleans are or, * and min are and; ~ & | ^ are logical on booleans only."""

    def onnx(graph: Any, out: np.ndarray, *xs: str) -> str:
        if out.dtype == bool:
            return graph.op(logical, *xs)
        if name == "":
            raise Refused(f"np.{logical.lower()} on integers (on booleans it is the logical operation)")
        return graph.op(name, *xs)

    return onnx


def _log1p(graph: Any, out: Any, x: str) -> str:
    """log(u) * x / (u - 1) with u = 1 + x (x where u == 1): Log(1 + x) alone loses every digit
    near 0; the ratio corrects the rounding of 1 + x (Goldberg, after Kahan)."""
    one = graph.constant(1.0, dtype=out.dtype)
    u = graph.op("Add", x, one)
    ratio = graph.op("Div", graph.op("Mul", graph.op("Log", u), x), graph.op("Sub", u, one))
    exact = graph.op("Where", graph.op("Equal", u, one), x, ratio)
    return graph.op("Where", graph.op("IsInf", u), graph.op("Log", u), exact)


def _expm1(graph: Any, out: Any, x: str) -> str:
    """(u - 1) * x / log(u) with u = exp(x) (x where u == 1, -1 where u == 0, u where infinite):
    Exp(x) - 1 alone loses every digit near 0."""
    one = graph.constant(1.0, dtype=out.dtype)
    u = graph.op("Exp", x)
    ratio = graph.op("Div", graph.op("Mul", graph.op("Sub", u, one), x), graph.op("Log", u))
    y = graph.op("Where", graph.op("Equal", u, one), x, ratio)
    y = graph.op("Where", graph.op("Equal", u, graph.constant(0.0, dtype=out.dtype)),
                 graph.constant(-1.0, dtype=out.dtype), y)
    return graph.op("Where", graph.op("IsInf", u), u, y)


TABLE: dict[Any, Primitive] = {}
UFUNC_METHODS: dict[tuple[np.ufunc, str], Any] = {}  # (ufunc, method) -> the function in TABLE that computes it


def _rows(*rows: tuple[Any, ...], **options: Any) -> None:
    """TABLE[key] = (value: the ufunc, or the first item), vjp, onnx (or one operator's name), own options (a dict)."""
    for key, *row in rows:
        own = options | (row.pop() if isinstance(row[-1], dict) else {})
        if isinstance(row[-1], str) and row[-1] != CONSTANT:
            row[-1] = _op(row[-1])
        TABLE[key] = Primitive(f"np.{key.__name__}", key if isinstance(key, np.ufunc) else row.pop(0), *row, **own)


_rows(
    (np.add, _add, _boolean("Add", "Or")), (np.subtract, _subtract, "Sub"),
    (np.multiply, _multiply, _boolean("Mul", "And")), (np.true_divide, _divide, "Div"),
    (np.power, _binary(lambda g, o, a, b: g * b * np.power(a, b - 1), _power_b), "Pow"), (np.matmul, _matmul, "MatMul"),
    (np.maximum, _extremum(True), _boolean("Max", "Or")), (np.minimum, _extremum(False), _boolean("Min", "And")),
    (np.negative, lambda g, needs, o, a: -g, "Neg"), (np.reciprocal, lambda g, needs, o, a: -g * o * o, "Reciprocal"),
    (np.positive, lambda g, needs, o, a: g, "Identity"), (np.exp, lambda g, needs, o, a: g * o, "Exp"),
    (np.log, lambda g, needs, o, a: g / a, "Log"), (np.sqrt, lambda g, needs, o, a: g / (2 * o), "Sqrt"),
    (np.log1p, lambda g, needs, o, a: g / (1 + a), _log1p), (np.expm1, lambda g, needs, o, a: g * (o + 1), _expm1),
    (np.square, lambda g, needs, o, a: 2 * a * g, lambda graph, out, x: graph.op("Mul", x, x)),
    (np.tanh, _tanh, _op("Tanh")), (np.sign, CONSTANT, "Sign"), (np.trunc, CONSTANT),
    (np.absolute, lambda g, needs, o, a: g * np.sign(a), "Abs"), (np.sin, lambda g, needs, o, a: g * np.cos(a), "Sin"),
    (np.cos, lambda g, needs, o, a: -g * np.sin(a), "Cos"), (np.floor, CONSTANT, "Floor"), (np.ceil, CONSTANT, "Ceil"),
    (np.rint, CONSTANT, "Round"), (np.logical_and, CONSTANT, "And"), (np.logical_or, CONSTANT, "Or"),
    (np.logical_not, CONSTANT, "Not"),
    *((f, CONSTANT, _boolean("", op)) for f, op in ((np.bitwise_and, "And"), (np.bitwise_or, "Or"),
                                                   (np.bitwise_xor, "Xor"), (np.invert, "Not"))),
    cast="out",
)
_rows(  # compared in the operands' own type
    (np.greater, CONSTANT, "Greater"), (np.greater_equal, CONSTANT, "GreaterOrEqual"), (np.less, CONSTANT, "Less"),
    (np.less_equal, CONSTANT, "LessOrEqual"), (np.equal, CONSTANT, "Equal"), (np.isnan, CONSTANT, "IsNaN"),
    (np.not_equal, CONSTANT, lambda graph, out, a, b: graph.op("Not", graph.op("Equal", a, b))),
    (np.isinf, CONSTANT, "IsInf"), (np.isfinite, CONSTANT,
     lambda graph, out, x: graph.op("Not", graph.op("Or", graph.op("IsNaN", x), graph.op("IsInf", x)))),
    cast="inputs",
)
TABLE[np.matmul].value = _folded_matmul


# -- numpy functions ----------------------------------------------------------------------------


def _reduction(func: Callable[..., Any], op: str, vjp: Callable[..., Any], spec: Any) -> Primitive:
    def onnx(graph: Any, out: np.ndarray, x: str, axis: Any = None, keepdims: bool = False) -> str:
        # in the dtype numpy's result has (the mean of integers is a float; a count of booleans an integer)
        axes = _axes(axis, graph.example(x).ndim)
        x = graph.cast(x, np.int32 if out.dtype == bool else out.dtype)  # max/min of booleans: as integers
        y = graph.reduce(op, x, axes, keepdims)
        return graph.cast(y, bool) if out.dtype == bool else y

    return Primitive(f"np.{func.__name__}", lambda a, axis=None, keepdims=False: func(a, axis=axis, keepdims=keepdims),
                     vjp, onnx, spec=spec)


def _extreme_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    hit = a == _spread(np.asarray(out), a.shape, axis, keepdims)
    count = _spread(np.sum(hit, axis=axis, keepdims=keepdims), a.shape, axis, keepdims)
    return hit / count * _spread(g, a.shape, axis, keepdims)


def _var(a: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    centred = a - np.mean(a, axis=axis, keepdims=True)
    count = int(np.prod([np.shape(a)[i] for i in _axes(axis, np.ndim(a))]))
    return np.sum(centred * centred, axis=axis, keepdims=keepdims) / (count - ddof)


def _transpose_onnx(graph: Any, out: Any, x: str, axes: Any = None) -> str:
    perm = range(out.ndim)[::-1] if axes is None else axes
    return graph.op("Transpose", x, perm=[int(p) % out.ndim for p in perm])


def _permuted(func: Callable[..., Any], a: Any, *args: Any) -> Any:
    """np.swapaxes / np.moveaxis as one transpose: the permutation is read off what `func` does
    to the shape (2, 3, ..., ndim + 1) of a broadcast array (which holds no memory)."""
    moved = func(np.broadcast_to(0, tuple(range(2, np.ndim(a) + 2))), *args)
    return np.transpose(a, [size - 2 for size in moved.shape])


def _reshape(a: Any, shape: Any = None, order: str = "C", newshape: Any = None) -> Any:
    return np.reshape(a, shape if shape is not None else newshape, order=order)  # type: ignore[call-overload]


def _reshape_onnx(graph: Any, out: Any, x: str, shape: Any = None, order: str = "C", newshape: Any = None) -> str:
    if order != "C":
        raise Refused("np.reshape(order='F')")
    target = shape if shape is not None else newshape
    before = graph.example(x).shape
    # A dimension that equals the input's at the same place is copied from it (ONNX's 0): so
    # reshapes that keep the batch axis keep it free.
    spec = [0 if i < len(before) and size == before[i] and size not in (-1, 0) else size
            for i, size in enumerate(int(s) for s in (target if isinstance(target, (tuple, list)) else (target,)))]
    return graph.op("Reshape", x, graph.ints(spec, "shape"))


def _squeeze_onnx(graph: Any, out: Any, x: str, axis: Any = None) -> str:
    shape = graph.example(x).shape
    axes = [i for i, s in enumerate(shape) if s == 1] if axis is None else _axes(axis, len(shape))
    # no axes: Identity (ONNX's Squeeze with no axes would drop every axis of size 1)
    return graph.op("Squeeze", x, graph.ints(axes, "axes")) if axes else graph.op("Identity", x)


def _concatenate(*arrays: Any, axis: int | None = 0) -> Any:
    if axis is None:
        raise Refused("np.concatenate with axis=None")
    return np.concatenate(arrays, axis=axis)


def _concatenate_vjp(g: np.ndarray, needs: Any, out: Any, *arrays: Any, axis: int = 0) -> list[Any]:
    return np.split(g, np.cumsum([np.shape(v)[axis] for v in arrays])[:-1], axis=axis)


def _stack(*arrays: Any, axis: int = 0) -> Any:
    where = axis % (np.ndim(arrays[0]) + 1)
    return np.concatenate([np.expand_dims(a, where) for a in arrays], axis=where)


def _split(a: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    pieces = np.split(np.arange(np.shape(a)[axis]), indices_or_sections)  # the positions each piece holds
    before = (slice(None),) * (axis % np.ndim(a))
    return [a[(*before, slice(int(p[0]), int(p[-1]) + 1) if len(p) else slice(0, 0))] for p in pieces]


def _where(condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None or y is None:
        raise Refused("np.where with one argument (the positions: their number depends on the values) has no rule")
    return np.where(condition, x, y)


def _where_vjp(g: np.ndarray, needs: Any, out: Any, condition: Any, x: Any, y: Any) -> list[Any]:
    cond = np.asarray(condition, dtype=bool)
    return [None, unbroadcast(g * cond, _shape(x)) if needs[1] else None,
            unbroadcast(g * ~cond, _shape(y)) if needs[2] else None]


def _bounds(a_min: Any = None, a_max: Any = None, min: Any = None, max: Any = None) -> tuple[Any, Any]:  # noqa: A002
    """np.clip's (low, high): numpy 2.1 also names them min=, max=."""
    return (min if a_min is None else a_min), (max if a_max is None else a_max)


def _clip(a: Any, a_min: Any = None, a_max: Any = None, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    low, high = _bounds(a_min, a_max, min, max)
    wider = np.broadcast_shapes(np.shape(a), np.shape(low), np.shape(high))
    if wider != np.shape(a):
        raise Refused(f"np.clip: bounds of shapes {np.shape(low)}, {np.shape(high)} would widen the traced array of "
                      f"shape {np.shape(a)} to {wider}; broadcast the array first")
    return np.clip(a, low, high)


def _clip_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, **bounds: Any) -> Any:
    low, high = _bounds(**bounds)
    return g * ((True if low is None else a >= low) & (True if high is None else a <= high))


def _clip_onnx(graph: Any, out: Any, x: str, **bounds: Any) -> str:
    for op, bound in zip(("Max", "Min"), _bounds(**bounds)):
        x = x if bound is None else graph.op(op, x, graph.constant(np.asarray(bound), dtype=out.dtype))
    return x


def _dot(a: Any, b: Any) -> Any:
    if np.ndim(a) > 2 or np.ndim(b) > 2:
        raise Refused("np.dot of arrays above 2-D has no rule in lamina; use np.matmul or np.einsum")
    return np.multiply(a, b) if np.ndim(a) == 0 or np.ndim(b) == 0 else np.matmul(a, b)


def _einsum(*operands: Any, subscripts: str) -> Any:
    if not isinstance(subscripts, str) or "->" not in subscripts:
        raise Refused("np.einsum without explicit '->' subscripts has no rule")
    return np.einsum(subscripts, *operands)


def _einsum_check(*operands: Any, subscripts: str) -> None:
    inputs = subscripts.replace(" ", "").split("->")[0].split(",")
    if "." in subscripts:
        raise Refused("np.einsum needs explicit subscripts with '->' and no '...' to be differentiated")
    if any(len(set(term)) != len(term) for term in inputs):
        raise Refused(f"np.einsum({subscripts!r}) repeats an index within one operand (a diagonal or trace), "
                      "which has no derivative rule in lamina")
    sizes = {(letter, size) for term, v in zip(inputs, operands) for letter, size in zip(term, np.shape(v))}
    if len(sizes) > len({letter for letter, _ in sizes}):  # a letter with two sizes
        raise Refused(f"np.einsum({subscripts!r}) broadcasts an index of size 1 against a larger one, "
                      "which has no derivative rule in lamina; "
                      "give both operands the full size (e.g. with np.repeat on a constant)")


def _einsum_vjp(g: np.ndarray, needs: Any, out: Any, *values: Any, subscripts: str) -> list[Any]:
    inputs, output = subscripts.replace(" ", "").split("->")
    terms, grads = inputs.split(","), []
    for i, term in enumerate(terms):
        others = [t for j, t in enumerate(terms) if j != i]
        known = set(output).union(*others)  # an index only this operand has was summed away: the same along it
        partial = np.einsum(",".join([output, *others]) + "->" + "".join(c for c in term if c in known), g,
                            *[v for j, v in enumerate(values) if j != i])
        partial = np.expand_dims(partial, tuple(k for k, c in enumerate(term) if c not in known))
        grads.append(np.broadcast_to(partial, np.shape(values[i])) if needs[min(i, 2)] else None)
    return grads


def _pad(a: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    if mode != "constant":
        raise Refused(f"np.pad(mode={mode!r}) has no rule in lamina (only 'constant')")
    return np.pad(a, pad_width, mode="constant", constant_values=constant_values)


def _pad_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, pad_width: Any, **constant: Any) -> Any:
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (np.ndim(a), 2))
    return g[tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, np.shape(a)))]


def _pad_onnx(graph: Any, out: Any, x: str, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> str:
    if np.ndim(constant_values) != 0:
        raise Refused("np.pad with a different constant per side (ONNX's Pad takes one)")
    pads = graph.ints(np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (out.ndim, 2)).T, "pads")  # starts, ends
    return graph.op("Pad", x, pads, graph.constant(np.asarray(constant_values), dtype=out.dtype), mode="constant")


def _flip(a: Any, axis: Any = None) -> Any:
    axes = _axes(axis, np.ndim(a))
    return a[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(np.ndim(a)))]


def _cumsum_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, axis: Any = None) -> Any:
    ax = 0 if axis is None else axis
    return np.reshape(np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax), _shape(a))


def _cumsum_onnx(graph: Any, out: Any, x: str, axis: Any = None) -> str:
    if axis is None:
        x, axis = graph.op("Reshape", x, graph.ints([-1], "shape")), 0
    # a 0-d tensor, as CumSum wants
    return graph.op("CumSum", x, graph.constant(np.int64(int(axis) % out.ndim), "axis", np.int64))


def _like(graph: Any, out: np.ndarray, x: str, fill_value: Any = None, dtype: Any = None) -> str:
    """np.zeros_like / ones_like / full_like: the example's fill, in the input's (possibly dynamic) shape."""
    return graph.op("ConstantOfShape", graph.op("Shape", x), value=np.resize(out, 1))  # (0 for an empty out)


# the specs: numpy's positional order, for np.mean(x, 1, None, None, True)
_sum = _reduction(np.sum, "ReduceSum",
                  lambda g, needs, out, a, axis=None, keepdims=False: _spread(g, _shape(a), axis, keepdims),
                  lambda a, axis=None, dtype=None, out=None, keepdims=False: None)
_mean = _reduction(np.mean, "ReduceMean", lambda g, needs, out, a, axis=None, keepdims=False:
                   _spread(g, _shape(a), axis, keepdims) / (np.size(a) // max(np.size(out), 1)), _sum.signature)
_max = _reduction(np.max, "ReduceMax", _extreme_vjp, lambda a, axis=None, out=None, keepdims=False: None)
_min = _reduction(np.min, "ReduceMin", _extreme_vjp, _max.signature)
TABLE.update({np.sum: _sum, np.mean: _mean, np.max: _max, np.amax: _max, np.min: _min, np.amin: _min})
_VAR = {"spec": lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False: None}
_ARRAYS = {"operands": ("arrays",), "spec": lambda arrays, axis=0: None}
_rows(
    (np.reshape, _reshape,
     lambda g, needs, out, a, shape=None, order="C", newshape=None: np.reshape(g, _shape(a), order=order),
     _reshape_onnx),
    (np.transpose, lambda a, axes=None: np.transpose(a, axes), lambda g, needs, out, a, axes=None:
     np.transpose(g, None if axes is None else np.argsort([ax % g.ndim for ax in axes])), _transpose_onnx),
    (np.expand_dims, lambda a, axis: np.expand_dims(a, axis), lambda g, needs, out, a, axis: np.reshape(g, _shape(a)),
     lambda graph, out, x, axis: graph.op("Unsqueeze", x, graph.ints(_axes(axis, out.ndim), "axes"))),
    (np.squeeze, lambda a, axis=None: np.squeeze(a, axis), lambda g, needs, out, a, axis=None: np.reshape(g, _shape(a)),
     _squeeze_onnx),
    (np.concatenate, _concatenate, _concatenate_vjp, lambda graph, out, *xs, axis=0:
     graph.op("Concat", *(graph.cast(x, out.dtype) for x in xs), axis=int(axis) % out.ndim), _ARRAYS),
    (np.where, _where, _where_vjp,
     lambda graph, out, c, x, y: graph.op("Where", graph.cast(c, bool), graph.cast(x, out.dtype),
                                          graph.cast(y, out.dtype)),
     {"operands": ("condition", "x", "y")}),
    (np.clip, _clip, _clip_vjp, _clip_onnx),
    (np.einsum, _einsum, _einsum_vjp, lambda graph, out, *xs, subscripts:
     graph.op("Einsum", *(graph.cast(x, out.dtype) for x in xs), equation=subscripts.replace(" ", "")),
     {"operands": ("operands",), "check": _einsum_check, "spec": lambda subscripts, *operands: None}),
    (np.pad, _pad, _pad_vjp, _pad_onnx),
    (np.cumsum, lambda a, axis=None: np.cumsum(a, axis=axis), _cumsum_vjp, _cumsum_onnx,
     {"spec": lambda a, axis=None, dtype=None, out=None: None}),
    (np.zeros_like, lambda a, dtype=None: np.zeros_like(a, dtype=dtype), CONSTANT, _like),
    (np.ones_like, lambda a, dtype=None: np.ones_like(a, dtype=dtype), CONSTANT, _like),
    (np.empty_like, lambda a, dtype=None: np.zeros_like(a, dtype=dtype), CONSTANT, _like),
    (np.full_like, lambda a, fill_value, dtype=None: np.full_like(a, fill_value, dtype=dtype), CONSTANT, _like),
    (np.shape, np.shape, CONSTANT, CONSTANT), (np.ndim, np.ndim, CONSTANT, CONSTANT),
    (np.size, lambda a, axis=None: np.size(a, axis), CONSTANT, CONSTANT),
)
_rows(  # written in other rows
    (np.swapaxes, lambda a, axis1, axis2: _permuted(np.swapaxes, a, axis1, axis2)),
    (np.moveaxis, lambda a, source, destination: _permuted(np.moveaxis, a, source, destination)),
    (np.stack, _stack, _ARRAYS), (np.split, _split), (np.flip, _flip), (np.var, _var, _VAR),
    (np.std, lambda a, axis=None, ddof=0, keepdims=False: np.sqrt(_var(a, axis, ddof, keepdims)), _VAR),
    (np.dot, _dot, {"operands": ("a", "b"), "spec": lambda a, b, out=None: None}),
    compose=True,
)


# -- indexing and astype ------------------------------------------------------------------------


def _getitem_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, key: Any) -> Any:
    key = _plain(key)
    full = np.zeros(np.shape(a), dtype=g.dtype)
    items = key if isinstance(key, tuple) else (key,)
    if all(item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice)) and not isinstance(item, bool)
           for item in items):
        full[key] = g  # basic indexing: each element at most once, so a plain write
    else:
        np.add.at(full, key, g)  # integer arrays may repeat an index: those add up
    return full


def _index_onnx(graph: Any, out: Any, x: str, key: Any) -> str:
    """Basic indexing (ints, slices, None, ...) as Slice, Squeeze and Unsqueeze; one integer
    array as a Gather along its axis."""
    items = list(key) if isinstance(key, tuple) else [key]
    arrays = [i for i, item in enumerate(items) if isinstance(item, (np.ndarray, list, Operand))]
    if arrays:  # a traced index (ids computed in forward) stays a value of the graph
        return _gather(graph, x, items, arrays)
    if Ellipsis in items:  # (numpy refused two when the value was computed)
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (graph.example(x).ndim + 1 - len(items) + items.count(None))
    slices, drops, news = [], [], []  # (start, end, axis, step) of each Slice; axes to squeeze; axes to add
    axis = out_axis = 0
    for item in items:
        if item is None:
            news.append(out_axis)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            slices.append((int(item), int(item) + 1 or _INT64_MAX, axis, 1))  # x[-1]: from -1 to the end
            drops.append(axis)
        elif not isinstance(item, slice):
            raise Refused(f"indexing with {type(item).__name__}")
        elif item != slice(None):
            step = 1 if item.step is None else int(item.step)
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            stop = item.stop if item.stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX)
            slices.append((int(start), int(stop), axis, step))
        axis += item is not None  # an int or a slice reads an input axis; None or a slice makes an output axis
        out_axis += item is None or isinstance(item, slice)
    name = x
    if slices:
        name = graph.op("Slice", name,
                        *(graph.ints(list(v), n) for v, n in zip(zip(*slices), ("starts", "ends", "axes", "steps"))))
    for op, axes in (("Squeeze", drops), ("Unsqueeze", news)):
        name = graph.op(op, name, graph.ints(axes, "axes")) if axes else name
    return graph.op("Identity", name) if name == x else name


def _gather(graph: Any, x: str, items: list[Any], arrays: list[int]) -> str:
    """x[:, ..., index, rest] with one integer array `index`: a Gather along its axis, then the rest."""
    if len(arrays) > 1 or any(isinstance(item, (int, np.integer)) or item is None for item in items):
        raise Refused("indexing with several integer arrays, or an integer array mixed with ints or None")
    if any(item is Ellipsis or item != slice(None) for item in items[: arrays[0]]):
        raise Refused("indexing with an integer array after a slice other than ':'")
    chosen = items[arrays[0]]
    index = np.asarray(_plain(chosen))
    if index.dtype.kind not in "iu":
        raise Refused("indexing with " + ("a boolean mask (its size depends on the values)" if index.dtype == bool
                                          else f"an array of {index.dtype}"))
    where = (graph.cast(chosen.name, np.int64) if isinstance(chosen, Operand)
             else graph.constant(index, "index", np.int64))
    y = graph.op("Gather", x, where, axis=arrays[0])
    rest = items[arrays[0] + 1 :]
    if not rest:
        return y
    graph.examples[y] = graph.example(x)[tuple(_plain(items[: arrays[0] + 1]))]
    return _index_onnx(graph, None, y, (slice(None),) * (arrays[0] + index.ndim) + tuple(rest))


GETITEM = Primitive("indexing", lambda a, key: a[_plain(key)], _getitem_vjp, _index_onnx)
ASTYPE = Primitive("astype", lambda a, dtype: a.astype(dtype), lambda g, needs, out, a, dtype: g.astype(a.dtype),
                   lambda graph, out, x, dtype: graph.cast(x, dtype))


def supported() -> dict[str, tuple[str, str]]:
    """The table as the user sees it: each operation's (training, export) support."""
    found = {"+ - * / ** @ unary - (operators), comparisons": ("yes", "yes"),
             "indexing: ints, slices, None, ...; integer arrays": ("yes (repeated indices add up)",
                                                                   "yes (one integer array)"),
             "methods: " + METHODS: ("yes", "yes")}
    for key, row in sorted(TABLE.items(), key=lambda item: item[1].name):
        name = row.name if isinstance(key, str) else f"{key.__module__.replace('numpy', 'np')}.{key.__name__}"
        training = "constant" if row.vjp is CONSTANT else "yes" if row.vjp is not None or row.compose else "no"
        found[name] = (training, "yes" if row.onnx is not None or row.compose else "no")
    for (ufunc, method), same in UFUNC_METHODS.items():
        found[f"np.{ufunc.__name__}.{method}"] = found[TABLE[same].name]
    return found
