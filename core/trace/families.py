"""More of numpy as rows of the table of primitives (`primitives.py`), by family: element-wise
maths, reductions, products, shapes and indexing, small linear algebra, and integer-valued results
(argmax, argsort, rounding: constants, whose slope is zero or undefined). A `compose` row is written
in other rows, so it trains and exports as they do. `lamina.autodiff` imports this module, which
fills TABLE and the ufunc methods (`np.maximum.reduce`) that `Operand.__array_ufunc__` follows.
"""
from __future__ import annotations

import math
import string
from typing import Any

import numpy as np

from lamina.trace.primitives import (
    CONSTANT,
    TABLE,
    UFUNC_METHODS,
    Primitive,
    Refused,
    _axes,
    _binary,
    _extremum,
    _reduction,
    _rows,
    _shape,
    _spread,
    unbroadcast,
)

LN2, LN10 = math.log(2.0), math.log(10.0)


def _slope(d: Any) -> Any:
    """The vjp of an element-wise function whose derivative is d(out, input)."""
    return lambda g, needs, o, a: g * d(o, a)


def _const(graph: Any, out: Any, value: Any) -> str:
    return graph.constant(value, dtype=out.dtype)


def _scaled(op: str, scale: float) -> Any:
    """op(x) * scale in ONNX (log2, log10)."""
    return lambda graph, out, x: graph.op("Mul", graph.op(op, x), _const(graph, out, scale))


def _logaddexp_onnx(scale: float) -> Any:
    """m + log(exp((a - m) s) + exp((b - m) s)) / s with m = max(a, b): finite for any a, b."""

    def onnx(graph: Any, out: Any, a: str, b: str) -> str:
        m, s = graph.op("Max", a, b), _const(graph, out, scale)
        total = graph.op("Add", *(graph.op("Exp", graph.op("Mul", graph.op("Sub", v, m), s)) for v in (a, b)))
        return graph.op("Add", m, graph.op("Div", graph.op("Log", total), s))

    return onnx


def _arctan2_onnx(graph: Any, out: Any, y: str, x: str) -> str:
    """atan(y / x), turned by pi (with y's sign) where x < 0."""
    zero = _const(graph, out, 0.0)
    turn = graph.op("Where", graph.op("Less", y, zero), _const(graph, out, -math.pi), _const(graph, out, math.pi))
    turned = graph.op("Where", graph.op("Less", x, zero), turn, zero)
    return graph.op("Add", graph.op("Atan", graph.op("Div", y, x)), turned)


def _remainder_onnx(graph: Any, out: Any, a: str, b: str) -> str:
    if out.dtype.kind != "f":  # ONNX's Mod with fmod=0 is numpy's on integers (the sign of b)
        return graph.op("Mod", a, b)
    return graph.op("Sub", a, graph.op("Mul", graph.op("Floor", graph.op("Div", a, b)), b))


def _floor_divide_onnx(graph: Any, out: Any, a: str, b: str) -> str:
    if out.dtype.kind != "f":
        raise Refused("np.floor_divide (//) of integers (ONNX's Div truncates toward zero)")
    return graph.op("Floor", graph.op("Div", a, b))


def _nan_to_num_onnx(graph: Any, out: Any, x: str, copy: bool = True, nan: float = 0.0, posinf: Any = None,
                     neginf: Any = None) -> str:
    info = np.finfo(out.dtype)
    tests = [(graph.op("IsNaN", x), nan),
             (graph.op("IsInf", x, detect_negative=0), info.max if posinf is None else posinf),
             (graph.op("IsInf", x, detect_positive=0), info.min if neginf is None else neginf)]
    for test, value in tests:
        x = graph.op("Where", test, _const(graph, out, value), x)
    return x


_rows(  # element-wise: (ufunc, derivative in the output o and the input a, ONNX form)
    (np.arctan, _slope(lambda o, a: 1 / (1 + a * a)), "Atan"),
    (np.arcsin, _slope(lambda o, a: 1 / np.sqrt(1 - a * a)), "Asin"),
    (np.arccos, _slope(lambda o, a: -1 / np.sqrt(1 - a * a)), "Acos"), (np.tan, _slope(lambda o, a: 1 + o * o), "Tan"),
    (np.sinh, _slope(lambda o, a: np.cosh(a)), "Sinh"), (np.cosh, _slope(lambda o, a: np.sinh(a)), "Cosh"),
    (np.arcsinh, _slope(lambda o, a: 1 / np.sqrt(a * a + 1)), "Asinh"),
    (np.arccosh, _slope(lambda o, a: 1 / np.sqrt(a * a - 1)), "Acosh"),
    (np.arctanh, _slope(lambda o, a: 1 / (1 - a * a)), "Atanh"),
    (np.log2, _slope(lambda o, a: 1 / (a * LN2)), _scaled("Log", 1 / LN2)),
    (np.log10, _slope(lambda o, a: 1 / (a * LN10)), _scaled("Log", 1 / LN10)),
    (np.exp2, _slope(lambda o, a: o * LN2), lambda graph, out, x: graph.op("Pow", _const(graph, out, 2.0), x)),
    (np.cbrt, _slope(lambda o, a: 1 / (3 * o * o)),
     lambda graph, out, x: graph.op("Mul", graph.op("Sign", x), graph.op("Pow", graph.op("Abs", x),
                                                                           _const(graph, out, 1 / 3)))),
    (np.deg2rad, _slope(lambda o, a: math.pi / 180), _scaled("Identity", math.pi / 180)),
    (np.rad2deg, _slope(lambda o, a: 180 / math.pi), _scaled("Identity", 180 / math.pi)),
    (np.fabs, _slope(lambda o, a: np.sign(a)), "Abs"),
    (np.logaddexp, _binary(lambda g, o, a, b: g * np.exp(a - o), lambda g, o, a, b: g * np.exp(b - o)),
     _logaddexp_onnx(1.0)),
    (np.logaddexp2, _binary(lambda g, o, a, b: g * np.exp2(a - o), lambda g, o, a, b: g * np.exp2(b - o)),
     _logaddexp_onnx(LN2)),
    (np.hypot, _binary(lambda g, o, a, b: g * a / o, lambda g, o, a, b: g * b / o),
     lambda graph, out, a, b: graph.op("Sqrt", graph.op("Add", graph.op("Mul", a, a), graph.op("Mul", b, b)))),
    (np.arctan2, _binary(lambda g, o, a, b: g * b / (a * a + b * b), lambda g, o, a, b: -g * a / (a * a + b * b)),
     _arctan2_onnx),
    (np.fmax, _extremum(True), "Max"), (np.fmin, _extremum(False), "Min"),
    (np.remainder, _binary(lambda g, o, a, b: g, lambda g, o, a, b: -g * np.floor_divide(a, b)), _remainder_onnx),
    (np.floor_divide, CONSTANT, _floor_divide_onnx),
    cast="out",
)
TABLE[np.nan_to_num] = Primitive("np.nan_to_num", lambda x, copy=True, nan=0.0, posinf=None, neginf=None: np.nan_to_num(
    x, nan=nan, posinf=posinf, neginf=neginf), lambda g, needs, out, x, **to: g * np.isfinite(x), _nan_to_num_onnx,
    operands=("x",))


# -- reductions ---------------------------------------------------------------------------------


def _exclusive(x: np.ndarray) -> np.ndarray:
    """The product of the elements before each one along the last axis (1 for the first)."""
    return np.cumprod(np.concatenate([np.ones_like(x[..., :1]), x[..., :-1]], axis=-1), axis=-1)


def _prod_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """g times the product of the other elements: from both ends' running products, exact where some are 0."""
    if a.size == 0:
        return np.zeros(a.shape, g.dtype)
    axes = _axes(axis, a.ndim)
    order = [i for i in range(a.ndim) if i not in axes] + axes
    moved = np.transpose(a, order)
    flat = moved.reshape(*moved.shape[: a.ndim - len(axes)], -1)
    others = _exclusive(flat) * np.flip(_exclusive(np.flip(flat, -1)), -1)
    return _spread(g, a.shape, axis, keepdims) * np.transpose(others.reshape(moved.shape), np.argsort(order))


def _cumprod_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, axis: Any = None) -> Any:
    ax = -1 if axis is None else int(axis)
    x, gm, om = (np.moveaxis(np.reshape(v, -1) if axis is None else v, ax, -1) for v in (a, g, out))
    if np.all(x != 0):  # sum over j >= i of g_j out_j / x_i
        gx = np.flip(np.cumsum(np.flip(gm * om, -1), -1), -1) / x
    else:  # out_j's slope in x_i is the product of x_k, k <= j, k != i: a square per row, only with zeros
        others = np.where(np.eye(x.shape[-1], dtype=bool), 1, x[..., None, :])
        gx = np.sum(np.triu(np.cumprod(others, -1)) * gm[..., None, :], -1)
    return np.reshape(np.moveaxis(gx, -1, ax), a.shape)


def _norm_kind(x: Any, ord: Any, axis: Any) -> int:  # noqa: A002
    """1 or 2: the vector norm that np.linalg.norm(x, ord, axis) is; Refused for the others."""
    vector = np.ndim(x) == 1 if axis is None else np.size(axis) == 1
    if ord is None or ord == 2 and vector or ord == "fro" and not vector:
        return 2
    if ord == 1 and vector:
        return 1
    raise Refused(f"np.linalg.norm(ord={ord!r}) on {'vectors' if vector else 'matrices'}: lamina's rule takes ord "
                  "None, 'fro' (matrices), 1 or 2 (vectors)")


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    _norm_kind(x, ord, axis)
    return np.linalg.norm(x, ord, axis, keepdims)


def _norm_vjp(g: np.ndarray, needs: Any, out: Any, x: Any, ord: Any = None, axis: Any = None,  # noqa: A002
              keepdims: bool = False) -> Any:
    g = _spread(g, x.shape, axis, keepdims)
    if _norm_kind(x, ord, axis) == 1:
        return g * np.sign(x)
    n = _spread(out, x.shape, axis, keepdims)
    return g * np.divide(x, n, out=np.zeros_like(x), where=n != 0)  # 0 at a zero vector (a subgradient)


def _norm_onnx(graph: Any, out: Any, x: str, ord: Any = None, axis: Any = None, keepdims: bool = False) -> str:  # noqa: A002
    example = graph.example(x)
    op = "ReduceL1" if _norm_kind(example, ord, axis) == 1 else "ReduceL2"
    return graph.reduce(op, x, _axes(axis, example.ndim), bool(keepdims))


def _quantile(a: Any, q: Any, axis: Any = None, keepdims: bool = False, method: str = "linear",
              scale: float = 1.0) -> Any:
    """numpy's quantile (method 'linear'; percentile: scale 100): the two nearest order statistics
    (np.sort, np.take), weighted, in the dtype numpy gives (float64 for a list of q)."""
    if method != "linear" or isinstance(axis, (tuple, list)):
        raise Refused(f"np.quantile with method={method!r} or several axes (lamina's rule: 'linear', one axis)")
    ndim = np.ndim(a)
    dtype = (np.percentile if scale == 100 else np.quantile)(np.zeros(1, a.dtype), q).dtype
    if axis is None:
        a, axis = np.reshape(a, -1), 0
    axis, q = int(axis) % np.ndim(a), np.asarray(q, dtype=float) / scale
    n = np.shape(a)[axis]
    at = q * (n - 1)
    low = np.floor(at).astype(np.int64)
    ordered = np.sort(a, axis=axis)
    ends = [np.moveaxis(np.take(ordered, i, axis=axis), list(range(axis, axis + q.ndim)), list(range(q.ndim)))
            for i in (low, np.minimum(low + 1, n - 1))]
    t = np.reshape(at - low, q.shape + (1,) * (np.ndim(ends[0]) - q.ndim)).astype(dtype)
    y = ends[0] + (ends[1] - ends[0]) * t
    if keepdims:
        y = np.reshape(y, q.shape + (1,) * ndim) if ndim != np.ndim(a) else np.expand_dims(y, q.ndim + axis)
    return y


def _truth(op: str) -> Any:
    """np.all (ReduceMin) or np.any (ReduceMax) of x != 0 in ONNX."""

    def onnx(graph: Any, out: Any, x: str, axis: Any = None, keepdims: bool = False) -> str:
        ints = graph.cast(graph.cast(x, bool), np.int32)
        return graph.cast(graph.reduce(op, ints, _axes(axis, graph.example(x).ndim), bool(keepdims)), bool)

    return onnx


def _arg_onnx(op: str) -> Any:
    """np.argmax / np.argmin: ONNX's first index of the extreme, as numpy's."""

    def onnx(graph: Any, out: Any, x: str, axis: Any = None, keepdims: bool = False) -> str:
        if axis is None:
            y = graph.op(op, graph.op("Reshape", x, graph.ints([-1], "shape")), axis=0, keepdims=0)
            return graph.op("Reshape", y, graph.ints(out.shape, "shape")) if keepdims else y
        return graph.op(op, x, axis=int(axis) % graph.example(x).ndim, keepdims=int(bool(keepdims)))

    return onnx


def _round_onnx(graph: Any, out: Any, x: str, decimals: int = 0) -> str:
    """np.round(x, decimals) as numpy computes it: round(x * 10^decimals) / 10^decimals, halves to even."""
    scale = _const(graph, out, 10.0**decimals)
    return graph.op("Div", graph.op("Round", graph.op("Mul", x, scale)), scale)


_SUM = TABLE[np.sum].signature
TABLE[np.prod] = _reduction(np.prod, "ReduceProd", _prod_vjp, _SUM)
TABLE[np.all] = Primitive("np.all", lambda a, axis=None, keepdims=False: np.all(a, axis, keepdims=keepdims), CONSTANT,
                          _truth("ReduceMin"), spec=lambda a, axis=None, out=None, keepdims=False: None)
TABLE[np.any] = Primitive("np.any", lambda a, axis=None, keepdims=False: np.any(a, axis, keepdims=keepdims), CONSTANT,
                          _truth("ReduceMax"), spec=TABLE[np.all].signature)
_rows(
    (np.cumprod, lambda a, axis=None: np.cumprod(a, axis=axis), _cumprod_vjp, None,
     {"spec": lambda a, axis=None, dtype=None, out=None: None}),
    (np.linalg.norm, _norm, _norm_vjp, _norm_onnx, {"operands": ("x",)}),
    (np.argmax, lambda a, axis=None, keepdims=False: np.argmax(a, axis, keepdims=keepdims), CONSTANT,
     _arg_onnx("ArgMax"), {"spec": lambda a, axis=None, out=None, keepdims=False: None}),
    (np.argmin, lambda a, axis=None, keepdims=False: np.argmin(a, axis, keepdims=keepdims), CONSTANT,
     _arg_onnx("ArgMin"), {"spec": lambda a, axis=None, out=None, keepdims=False: None}),
    (np.round, lambda a, decimals=0: np.round(a, decimals), CONSTANT, _round_onnx,
     {"spec": lambda a, decimals=0, out=None: None}),
    (np.count_nonzero, lambda a, axis=None, keepdims=False: np.count_nonzero(a, axis, keepdims=keepdims), CONSTANT),
    *((f, f, CONSTANT) for f in (np.argpartition, np.nonzero, np.flatnonzero, np.argwhere)),
    *((f, f, CONSTANT, {"operands": operands}) for f, operands in (
        (np.searchsorted, ("a", "v")), (np.digitize, ("x", "bins")), (np.isclose, ("a", "b")))),
)
TABLE[np.around] = TABLE[np.round]
_QUANTILE = {"spec": lambda a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False: None}
_rows(  # written in other rows
    (np.quantile, _quantile, _QUANTILE),
    (np.percentile, lambda a, q, axis=None, keepdims=False, method="linear":
     _quantile(a, q, axis, keepdims, method, 100), _QUANTILE),
    (np.median, lambda a, axis=None, keepdims=False: _quantile(a, 0.5, axis, keepdims),
     {"spec": lambda a, axis=None, out=None, overwrite_input=False, keepdims=False: None}),
    (np.ptp, lambda a, axis=None, keepdims=False: np.max(a, axis=axis, keepdims=keepdims)
     - np.min(a, axis=axis, keepdims=keepdims), {"spec": lambda a, axis=None, out=None, keepdims=False: None}),
    compose=True,
)


# -- sorting, shapes and indexing ---------------------------------------------------------------


def _flat(a: Any, axis: Any) -> tuple[Any, int]:
    """(a, axis), raveled with axis 0 where axis is None (numpy's meaning for sort, take, ...)."""
    return (np.reshape(a, -1), 0) if axis is None else (a, int(axis))


def _sort(a: Any, axis: Any = -1) -> tuple[Any, Any]:
    a, axis = _flat(a, axis)
    order = np.argsort(a, axis=axis, kind="stable")
    return np.take_along_axis(a, order, axis), order  # order: where each sorted element came from


def _sort_vjp(g: np.ndarray, needs: Any, order: Any, a: Any, axis: Any = -1) -> Any:
    full = np.zeros(order.shape, g.dtype)
    np.put_along_axis(full, order, g, _flat(a, axis)[1])
    return full.reshape(a.shape)


def _take_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, indices: Any, axis: Any = None) -> Any:
    full = np.zeros(a.size if axis is None else a.shape, g.dtype)
    at: Any = (slice(None),) * (0 if axis is None else int(axis) % a.ndim) + (np.asarray(indices),)
    np.add.at(full, at, g)
    return full.reshape(a.shape)


def _along_vjp(g: np.ndarray, needs: Any, out: Any, arr: Any, indices: Any, axis: Any = -1) -> Any:
    a, ax = _flat(arr, axis)
    wide = list(g.shape)
    wide[ax % g.ndim] = a.shape[ax]
    full = np.zeros(wide, g.dtype)  # where arr broadcast against indices, then summed back
    at: list[Any] = list(np.indices(g.shape, sparse=True))
    at[ax % g.ndim] = np.broadcast_to(indices, g.shape)
    np.add.at(full, tuple(at), g)
    return unbroadcast(full, a.shape).reshape(arr.shape)


def _flatten_onnx(graph: Any, x: str, axis: Any) -> tuple[str, int]:
    if axis is None:
        return graph.op("Reshape", x, graph.ints([-1], "shape")), 0
    return x, int(axis) % graph.example(x).ndim


def _gather(graph: Any, x: str, indices: str, axis: Any, op: str) -> str:
    """np.take (Gather) or np.take_along_axis (GatherElements) on the int64 indices."""
    x, axis = _flatten_onnx(graph, x, axis)
    return graph.op(op, x, graph.cast(indices, np.int64), axis=axis)


def _sort_onnx(output: int) -> Any:
    """np.sort (0: values) or np.argsort (1: indices): TopK over the whole axis, smallest first."""

    def onnx(graph: Any, out: Any, x: str, axis: Any = -1) -> str:
        x, axis = _flatten_onnx(graph, x, axis)
        k = graph.ints([out.shape[axis]], "k")
        return graph.op("TopK", x, k, axis=axis, largest=0, sorted=1, outputs=2)[output]

    return onnx


def _tile_vjp(g: np.ndarray, needs: Any, out: Any, a: Any, reps: Any) -> Any:
    reps = (1,) * (g.ndim - np.size(reps)) + tuple(np.atleast_1d(reps))
    shape = (1,) * (g.ndim - a.ndim) + a.shape
    paired = g.reshape([n for pair in zip(reps, shape) for n in pair])  # (rep, size) per axis
    return paired.sum(axis=tuple(range(0, 2 * g.ndim, 2))).reshape(a.shape)


def _tile_onnx(graph: Any, out: Any, x: str, reps: Any) -> str:
    extra = out.ndim - graph.example(x).ndim
    x = graph.op("Unsqueeze", x, graph.ints(list(range(extra)), "axes")) if extra else x
    return graph.op("Tile", x, graph.ints((1,) * (out.ndim - np.size(reps)) + tuple(np.atleast_1d(reps)), "repeats"))


def _expand_onnx(graph: Any, out: Any, x: str, shape: Any) -> str:
    """Expand, with 1 where the input already has the size (so a free batch axis stays free)."""
    before = (1,) * (out.ndim - graph.example(x).ndim) + graph.example(x).shape
    return graph.op("Expand", x, graph.ints([1 if b == n else n for b, n in zip(before, out.shape)], "shape"))


def _repeat(a: Any, repeats: Any, axis: Any = None) -> Any:
    a, axis = _flat(a, axis)
    return np.take(a, np.repeat(np.arange(np.shape(a)[axis]), repeats), axis=axis)


def _roll(a: Any, shift: Any, axis: Any = None) -> Any:
    if axis is None:
        return np.reshape(_roll(np.reshape(a, -1), shift, 0), np.shape(a))
    for s, ax in np.broadcast(shift, axis):
        ax = int(ax) % np.ndim(a)
        n = np.shape(a)[ax]
        cut = (n - int(s) % n) % n if n else 0  # the result starts at a[cut]
        if cut:
            before = (slice(None),) * ax
            a = np.concatenate([a[(*before, slice(cut, None))], a[(*before, slice(0, cut))]], axis=ax)
    return a


def _diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal as a masked sum over the last axis, then the rows that hold it."""
    m = np.moveaxis(a, (axis1, axis2), (-2, -1))
    rows, cols = np.shape(m)[-2:]
    start = max(-offset, 0)
    picked = np.sum(np.where(np.eye(rows, cols, offset, dtype=bool), m, np.zeros((), m.dtype)), axis=-1)
    return picked[..., start : start + max(min(rows - start, cols - max(offset, 0)), 0)]


def _triangle(upper: bool) -> Any:
    def value(m: Any, k: int = 0) -> Any:
        rows, cols = np.shape(m)[-2:]
        keep = np.tri(rows, cols, k - 1 if upper else k, dtype=bool)
        return np.where(~keep if upper else keep, m, np.zeros((), m.dtype))

    return value


def _diag(v: Any, k: int = 0) -> Any:
    if np.ndim(v) == 2:
        return _diagonal(v, k)
    n = np.shape(v)[0]
    square = np.eye(n, dtype=v.dtype) * v
    return np.pad(square, ((0, k), (k, 0)) if k >= 0 else ((-k, 0), (0, -k)))


def _tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """As np.einsum: a's axes get letters, b's summed axes the same ones."""
    na, nb = np.ndim(a), np.ndim(b)
    if np.ndim(axes) == 0:
        axes = (list(range(na - int(axes), na)), list(range(int(axes))))
    left, right = ([int(i) % n for i in np.atleast_1d(side)] for side, n in zip(axes, (na, nb)))
    ta = string.ascii_letters[:na]
    free = iter(string.ascii_letters[na:])
    tb = "".join(ta[left[right.index(i)]] if i in right else next(free) for i in range(nb))
    kept = [c for i, c in enumerate(ta) if i not in left] + [c for i, c in enumerate(tb) if i not in right]
    return np.einsum(f"{ta},{tb}->{''.join(kept)}", a, b)


_EINSUM = TABLE[np.einsum]


def _einsum(*operands: Any, subscripts: str) -> Any:
    """Implicit subscripts ("ij,jk") made explicit: numpy's output is the letters used once, in order."""
    if isinstance(subscripts, str) and "->" not in subscripts:
        letters = [c for c in subscripts if c.isalpha()]
        subscripts += "->" + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return _EINSUM(subscripts, *operands)


def _stacked(axis: int, shape: Any) -> Any:
    """np.hstack, vstack, column_stack, dstack: arrays of few axes reshaped by shape(ndim, size), joined."""

    def value(*arrays: Any) -> Any:
        at = axis if axis >= 0 else (0 if np.ndim(arrays[0]) == 1 else 1)  # hstack: along the first axis of vectors
        return np.concatenate([np.reshape(v, shape(np.ndim(v), np.shape(v))) for v in arrays], axis=at)

    return value


_STACK = {"operands": ("arrays",), "spec": lambda arrays, *, dtype=None, casting=None: None}
_rows(
    (np.sort, _sort, _sort_vjp, _sort_onnx(0), {"saves": True, "spec": lambda a, axis=-1, kind=None, order=None, *,
                                                                             stable=None: None}),
    (np.argsort, lambda a, axis=-1: np.argsort(a, axis, kind="stable"), CONSTANT, _sort_onnx(1),
     {"spec": lambda a, axis=-1, kind=None, order=None, *, stable=None: None}),
    (np.take, lambda a, indices, axis=None: np.take(a, indices, axis), _take_vjp,
     lambda graph, out, x, i, axis=None: _gather(graph, x, i, axis, "Gather"),
     {"operands": ("a", "indices"), "spec": lambda a, indices, axis=None, out=None, mode=None: None}),
    (np.take_along_axis, lambda arr, indices, axis=-1: np.take_along_axis(arr, indices, axis), _along_vjp,
     lambda graph, out, x, i, axis=-1: _gather(graph, x, i, axis, "GatherElements"), {"operands": ("arr", "indices")}),
    (np.tile, lambda A, reps: np.tile(A, reps), _tile_vjp, _tile_onnx, {"operands": ("A",)}),
    (np.broadcast_to, lambda array, shape: np.broadcast_to(array, shape),
     lambda g, needs, out, array, shape: unbroadcast(g, _shape(array)), _expand_onnx,
     {"operands": ("array",), "spec": lambda array, shape, subok=None: None}),
)
_rows(  # written in other rows
    (np.ravel, lambda a: np.reshape(a, -1), {"spec": lambda a, order="C": None}),
    (np.repeat, _repeat), (np.roll, _roll), (np.diagonal, _diagonal), (np.diag, _diag, {"operands": ("v",)}),
    (np.trace, lambda a, offset=0, axis1=0, axis2=1: np.sum(_diagonal(a, offset, axis1, axis2), axis=-1),
     {"spec": lambda a, offset=0, axis1=0, axis2=1, dtype=None, out=None: None}),
    (np.triu, _triangle(True), {"operands": ("m",)}), (np.tril, _triangle(False), {"operands": ("m",)}),
    (np.flipud, lambda m: np.flip(m, 0), {"operands": ("m",)}),
    (np.fliplr, lambda m: np.flip(m, 1), {"operands": ("m",)}),
    (np.hstack, _stacked(-1, lambda n, s: s if n else (1,)), _STACK),
    (np.vstack, _stacked(0, lambda n, s: s if n >= 2 else (1, -1)), _STACK),
    (np.column_stack, _stacked(1, lambda n, s: s if n >= 2 else (-1, 1)), _STACK),
    (np.dstack, _stacked(2, lambda n, s: s if n >= 3 else (*s, 1) if n == 2 else (1, -1, 1)), _STACK),
    (np.tensordot, _tensordot, {"operands": ("a", "b")}),
    (np.outer, lambda a, b: np.reshape(a, (-1, 1)) * np.reshape(b, (1, -1)), {"operands": ("a", "b")}),
    (np.inner, lambda a, b: _tensordot(a, b, ([-1], [-1])) if np.ndim(a) and np.ndim(b) else a * b,
     {"operands": ("a", "b")}),
    compose=True,
)
TABLE[np.einsum] = Primitive("np.einsum", _einsum, compose=True, operands=("operands",), spec=_EINSUM.signature)


# -- small linear algebra -----------------------------------------------------------------------


def _t(m: Any) -> Any:
    return np.swapaxes(m, -1, -2)


def _solve_vjp(g: np.ndarray, needs: Any, x: Any, a: Any, b: Any) -> list[Any]:
    gb = np.linalg.solve(_t(a), g)  # x = a^-1 b: db = a^-T g, da = -db x^T
    ga = -gb[..., :, None] * x[..., None, :] if np.ndim(b) == 1 else -gb @ _t(x)
    return [unbroadcast(ga, np.shape(a)) if needs[0] else None, unbroadcast(gb, np.shape(b)) if needs[1] else None]


_SLOGDET = type(np.linalg.slogdet(np.eye(1)))
_SIGN = Primitive("np.linalg.slogdet", lambda a: np.linalg.slogdet(a)[0], CONSTANT)
_LOGDET = Primitive("np.linalg.slogdet", lambda a: np.linalg.slogdet(a)[1],
                    lambda g, needs, out, a: g[..., None, None] * _t(np.linalg.inv(a)))
_rows(
    (np.linalg.inv, np.linalg.inv, lambda g, needs, out, a: -_t(out) @ g @ _t(out), None),
    (np.linalg.solve, np.linalg.solve, _solve_vjp, None, {"operands": ("a", "b")}),
    (np.linalg.det, np.linalg.det, lambda g, needs, out, a: (g * out)[..., None, None] * _t(np.linalg.inv(a)), "Det"),
)
TABLE[np.linalg.slogdet] = Primitive("np.linalg.slogdet", lambda a: _SLOGDET(_SIGN(a), _LOGDET(a)), compose=True)
for _f in (np.linalg.norm, np.linalg.inv, np.linalg.solve, np.linalg.det):
    TABLE[_f].name = f"np.linalg.{_f.__name__}"

# ufunc methods, as the function that computes the same (np.maximum.reduce(x) is np.max(x, axis=0))
UFUNC_METHODS.update({(np.add, "reduce"): np.sum, (np.multiply, "reduce"): np.prod, (np.maximum, "reduce"): np.max,
                      (np.minimum, "reduce"): np.min, (np.logical_and, "reduce"): np.all,
                      (np.logical_or, "reduce"): np.any, (np.add, "accumulate"): np.cumsum,
                      (np.multiply, "accumulate"): np.cumprod})
