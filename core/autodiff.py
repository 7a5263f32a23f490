"""Automatic differentiation of plain numpy code, for layers and losses without a backward.

Inside a traced forward, the input is a `Traced` array: numpy's operators, ufuncs and
functions see it through the `__array_ufunc__` / `__array_function__` protocols, compute the
value on the plain arrays, and record one node with its derivative rule (a vector-Jacobian
product) next to it. `Tape.backward` then runs the rules in reverse. What has no rule, or
would drop the trace (np.asarray, in-place writes), raises a LaminaError instead of a wrong
gradient. Integer, boolean and comparison results are constants.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from lamina import parameter
from lamina.errors import LaminaError
from lamina.parameter import Parameter

WAYS_OUT = "use an operation lamina can differentiate (see lamina.autodiff.SUPPORTED), or write backward() by hand"


# The tape being recorded into, if any: Layer and Loss set it around a traced forward.
current: contextvars.ContextVar[Tape | None] = contextvars.ContextVar("lamina_tape", default=None)
# False inside `no_recording()`: model inference (predict, evaluate, validation) records nothing.
recording: contextvars.ContextVar[bool] = contextvars.ContextVar("lamina_recording", default=True)


@contextlib.contextmanager
def tracing(tape: Tape) -> Iterator[Tape]:
    """Record into `tape` inside the block: Parameters used in numpy operations become its leaves."""
    token = current.set(tape)
    try:
        yield tape
    finally:
        current.reset(token)


@contextlib.contextmanager
def no_recording() -> Iterator[None]:
    """Forward-only layers and losses record nothing inside the block (inference)."""
    token = recording.set(False)
    try:
        yield
    finally:
        recording.reset(token)


def active_tape() -> Tape | None:
    return current.get()


class Tape:
    """The record of one traced forward: its leaves (the input, the Parameters) and the traced
    values computed from them, in the order they were computed."""

    __slots__ = ("params", "handwritten", "nodes")

    def __init__(self) -> None:
        self.params: dict[int, tuple[Parameter, Traced]] = {}  # id(Parameter) -> (it, its leaf)
        self.handwritten: set[int] = set()
        self.nodes: list[Traced] = []  # parents always come before their children

    def close(self) -> None:
        """Drop the record. Its values point back at the tape, a reference cycle that only the
        garbage collector would free; closing frees them (and their arrays) at once."""
        self.nodes.clear()
        self.params.clear()

    def leaf(self, value: np.ndarray, needed: bool = True) -> Traced:
        """The traced stand-in for an input; `needed=False` when nobody needs its gradient."""
        return Traced(value, self, (), None, (), needed)

    def parameter(self, param: Parameter) -> Traced:
        """The leaf that stands for `param` in this forward (the same one each time it is used)."""
        entry = self.params.get(id(param))
        if entry is None or entry[1].value is not param.value:
            entry = self.params[id(param)] = (param, Traced(param.value, self, (), None, (), True))
        return entry[1]

    def record(self, value: Any, parents: Sequence[Traced | None], rule: Callable[..., Any], args: tuple[Any, ...] = (),
               needed: bool = False) -> Any:
        """`value`, computed from `parents`, as a traced value whose gradient `rule(g, *args)`
        maps to one gradient per parent (None for a parent that needs none). A constant when
        it is not floating or no parent is traced; `needed=True` keeps it in the backward pass
        even when no parent needs a gradient (a hand-written sublayer's parameters do)."""
        if type(value) is not np.ndarray:
            value = np.asarray(value)
        if value.dtype.kind not in "fc":
            return value  # integers, booleans and comparisons carry no gradient
        traced = False
        for p in parents:
            if p is not None:
                traced = True
                needed = needed or p.needed
        if not traced:
            return value  # a value of constants only
        node = Traced(value, self, parents if type(parents) is tuple else tuple(parents), rule, args, needed)
        self.nodes.append(node)
        return node

    def backward(self, out: Traced, grad: np.ndarray) -> dict[Traced, np.ndarray]:
        """The gradients of the leaves `out` depends on, given dL/d(out) = grad: the recorded
        rules run in reverse order of recording."""
        if type(grad) is not np.ndarray or grad.dtype != out.value.dtype:
            grad = np.asarray(grad, dtype=out.value.dtype)
        grads: dict[Traced, np.ndarray] = {out: grad}
        for node in reversed(self.nodes):
            g = grads.pop(node, None)
            if g is None:
                continue
            for parent, pg in zip(node.parents, node.rule(g, *node.args)):  # type: ignore[misc]
                if pg is None or parent is None or not parent.needed:
                    continue
                if type(pg) is not np.ndarray:
                    pg = np.asarray(pg)
                target = parent.value
                if pg.dtype != target.dtype:
                    pg = pg.astype(target.dtype)
                if pg.shape != target.shape:
                    pg = np.broadcast_to(pg, target.shape)
                if parent in grads:
                    grads[parent] = grads[parent] + pg
                else:
                    grads[parent] = pg
        return grads


def _value(x: Any) -> Any:
    if isinstance(x, Traced):
        return x.value
    if isinstance(x, Parameter):
        return x.value
    if isinstance(x, (list, tuple)):
        return type(x)(_value(v) for v in x)
    return x


def _traced(x: Any, tape: Tape) -> Traced | None:
    """`x` as a traced operand of this tape (a Parameter becomes its leaf), or None for constants."""
    if isinstance(x, Traced):
        return x
    if isinstance(x, Parameter):
        return tape.parameter(x)
    return None


def _is_basic(key: Any) -> bool:
    """True for basic indexing (ints, slices, None, Ellipsis), which never repeats an element."""
    items = key if isinstance(key, tuple) else (key,)
    return all(item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice)) and not isinstance(item, bool)
               for item in items)


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


class ArrayMethods(np.lib.mixins.NDArrayOperatorsMixin):
    """numpy's array attributes and methods for a stand-in array that keeps its value in
    `.value`: each method calls the numpy function, which the subclass's dispatch protocol
    (`__array_function__`) handles. Shared by autodiff's Traced and the ONNX exporter's Symbolic."""

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

    def swapaxes(self, axis1: int, axis2: int) -> Any:
        return np.swapaxes(cast(Any, self), axis1, axis2)

    def squeeze(self, axis: Any = None) -> Any:
        return np.squeeze(cast(Any, self), axis)

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        return np.sum(cast(Any, self), *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        return np.mean(cast(Any, self), *args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        return np.max(cast(Any, self), *args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        return np.min(cast(Any, self), *args, **kwargs)

    def var(self, *args: Any, **kwargs: Any) -> Any:
        return np.var(cast(Any, self), *args, **kwargs)

    def std(self, *args: Any, **kwargs: Any) -> Any:
        return np.std(cast(Any, self), *args, **kwargs)

    def cumsum(self, *args: Any, **kwargs: Any) -> Any:
        return np.cumsum(cast(Any, self), *args, **kwargs)

    def dot(self, other: Any) -> Any:
        return np.dot(cast(Any, self), other)

    def ravel(self) -> Any:
        return np.reshape(cast(Any, self), -1)

    flatten = ravel

    def clip(self, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None) -> Any:  # noqa: A002
        return np.clip(cast(Any, self), min if a_min is None else a_min, max if a_max is None else a_max)


class Traced(ArrayMethods):
    """An array inside a traced forward: numpy operations on it are recorded for backward.

    It is also the record's node: its parents, the rule that maps its gradient to theirs (with
    the arguments the rule needs), and whether any gradient is wanted through it (False for
    values that depend only on an input whose gradient nobody needs: the rules then skip that
    input's gradient, as a hand-written first layer does).
    """

    __slots__ = ("value", "tape", "parents", "rule", "args", "needed")
    __array_priority__ = 100.0
    __hash__ = object.__hash__  # a node is a key by identity (== is numpy's element-wise ==)

    def __init__(self, value: np.ndarray, tape: Tape, parents: tuple[Traced | None, ...], rule: Callable[..., Any] | None,
                 args: tuple[Any, ...], needed: bool) -> None:
        self.value, self.tape, self.parents, self.rule, self.args, self.needed = value, tape, parents, rule, args, needed

    def __repr__(self) -> str:
        return f"Traced({self.value!r})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise LaminaError(
            "a traced array was converted to a plain numpy array (np.asarray, np.array or a numpy "
            f"function without a derivative rule), which would drop its gradient; {WAYS_OUT}"
        )

    def __float__(self) -> float:
        raise LaminaError(f"float() of a traced value drops its gradient; keep it an array, or {WAYS_OUT}")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise LaminaError(f"writing into a traced array in place drops its gradient; build a new array instead (np.where, np.concatenate), or {WAYS_OUT}")

    def __getitem__(self, key: Any) -> Any:
        key = _value(key)
        out = self.value[key]
        shape, dtype = self.value.shape, self.value.dtype

        basic = _is_basic(key)

        def vjp(g: np.ndarray) -> list[np.ndarray]:
            full = np.zeros(shape, dtype=dtype)
            if basic:  # ints, slices, None, ...: each element at most once, so a plain write
                full[key] = g
            else:
                np.add.at(full, key, g)  # integer arrays may repeat an index: those add up
            return [full]

        return self.tape.record(out, [self], vjp)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or kwargs.get("out") is not None:
            raise LaminaError(f"np.{ufunc.__name__}.{method} (or out=) on a traced array has no derivative rule; {WAYS_OUT}")
        return _apply(self.tape, ufunc, inputs, kwargs)

    # The common operators go straight to the rule, without numpy's dispatch in between.
    def __add__(self, other: Any) -> Any:
        return _binop(self.tape, np.add, self, other)

    def __radd__(self, other: Any) -> Any:
        return _binop(self.tape, np.add, other, self)

    def __sub__(self, other: Any) -> Any:
        return _binop(self.tape, np.subtract, self, other)

    def __rsub__(self, other: Any) -> Any:
        return _binop(self.tape, np.subtract, other, self)

    def __mul__(self, other: Any) -> Any:
        return _binop(self.tape, np.multiply, self, other)

    def __rmul__(self, other: Any) -> Any:
        return _binop(self.tape, np.multiply, other, self)

    def __truediv__(self, other: Any) -> Any:
        return _binop(self.tape, np.true_divide, self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return _binop(self.tape, np.true_divide, other, self)

    def __matmul__(self, other: Any) -> Any:
        return _binop(self.tape, np.matmul, self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return _binop(self.tape, np.matmul, other, self)

    def __neg__(self) -> Any:
        return _apply(self.tape, np.negative, (self,))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        rule = FUNCTION_RULES.get(func)
        if rule is None:
            raise LaminaError(f"np.{func.__name__} has no derivative rule in lamina; {WAYS_OUT}")
        allowed = KEYWORDS.get(func)
        if allowed is not None:
            extra = sorted(key for key, value in kwargs.items() if key not in allowed and value is not None)
            if extra:
                raise LaminaError(
                    f"np.{func.__name__}({', '.join(f'{key}=...' for key in extra)}) on a traced array: lamina's "
                    f"rule takes only {', '.join(sorted(allowed)) or 'no keyword arguments'}; {WAYS_OUT}"
                )
        return rule(self.tape, *args, **kwargs)

    # Array methods beyond the operators, as numpy's; others raise a LaminaError (below).
    def astype(self, dtype: Any, copy: bool = True) -> Any:
        target = np.dtype(dtype)
        value = self.value.astype(target)
        if target.kind not in "fc":
            return value  # an integer or boolean copy is a constant
        source = self.value.dtype
        return self.tape.record(value, [self], lambda g: [g.astype(source)])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise LaminaError(
            f"a traced array has no method .{name}() with a derivative rule in lamina (it has .T, .shape, "
            ".dtype, .ndim, .size, .reshape, .transpose, .swapaxes, .squeeze, .sum, .mean, .max, .min, .var, "
            f".std, .cumsum, .dot, .astype, .ravel, .flatten, .clip); use np.{name}(...) if lamina supports it, or {WAYS_OUT}"
        )


def _apply(tape: Tape, ufunc: np.ufunc, inputs: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    """`ufunc(*inputs)` on the values, recorded with its rule (which computes only the gradients
    of the inputs that need one)."""
    values, traced, needs = zip(*(_operand(item, tape) for item in inputs))
    out = ufunc(*values, **kwargs) if kwargs else ufunc(*values)
    rule = UFUNC_RULES.get(ufunc)
    if rule is None:
        if ufunc in CONSTANT_UFUNCS:
            return out
        raise LaminaError(f"np.{ufunc.__name__} has no derivative rule in lamina; {WAYS_OUT}")
    return tape.record(out, traced, rule, (needs, out, *values))


def _operand(item: Any, tape: Tape) -> tuple[Any, Traced | None, bool]:
    """(value, traced node or None, whether it wants a gradient) of one operand."""
    if type(item) is Traced:
        return item.value, item, item.needed
    if isinstance(item, Parameter):
        return item.value, tape.parameter(item), True
    return item, None, False


def _binop(tape: Tape, ufunc: np.ufunc, a: Any, b: Any) -> Any:
    """`_apply` for the binary operators, on the hot path of every Linear and activation."""
    va, ta, na = _operand(a, tape)
    vb, tb, nb = _operand(b, tape)
    out = _folded_matmul(va, vb) if ufunc is np.matmul else ufunc(va, vb)
    if type(out) is not np.ndarray or out.dtype.kind not in "fc" or (ta is None and tb is None):
        return tape.record(out, (ta, tb), UFUNC_RULES[ufunc], ((na, nb), out, va, vb))  # the rare cases
    node = Traced(out, tape, (ta, tb), UFUNC_RULES[ufunc], ((na, nb), out, va, vb), na or nb)
    tape.nodes.append(node)
    return node


# -- ufunc rules: (g, needs: which inputs want a gradient, out, *input values) -> one per input -------


def _binary(da: Callable[..., np.ndarray], db: Callable[..., np.ndarray]) -> Callable[..., list[np.ndarray | None]]:
    def rule(g: np.ndarray, needs: tuple[bool, ...], out: np.ndarray, a: Any, b: Any) -> list[np.ndarray | None]:
        return [
            unbroadcast(da(g, out, a, b), np.shape(a)) if needs[0] else None,
            unbroadcast(db(g, out, a, b), np.shape(b)) if needs[1] else None,
        ]

    return rule


def _shape(a: Any) -> tuple[int, ...]:
    return a.shape if type(a) is np.ndarray else np.shape(a)


def _add(g: np.ndarray, needs: tuple[bool, ...], out: np.ndarray, a: Any, b: Any) -> tuple[np.ndarray | None, ...]:
    # The most common rule of all (every bias), written out.
    return (unbroadcast(g, _shape(a)) if needs[0] else None, unbroadcast(g, _shape(b)) if needs[1] else None)


def _unary(d: Callable[..., np.ndarray]) -> Callable[..., list[np.ndarray]]:
    return lambda g, needs, out, a: [d(g, out, a)]


def _folded_matmul(a: Any, b: Any) -> Any:
    """a @ b, with a's leading axes folded into one when b is a matrix: one large product
    instead of numpy's loop of small ones (1.5x faster for (32, 64, 128) @ (128, 384))."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim > 2 and b.ndim == 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return np.matmul(a, b)


def _matmul(g: np.ndarray, needs: tuple[bool, ...], out: Any, a: Any, b: Any) -> list[np.ndarray | None]:
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 and b.ndim == 2:  # the common case, in one product per gradient
        return [g @ b.T if needs[0] else None, a.T @ g if needs[1] else None]
    if a.ndim > 2 and b.ndim == 2:  # a stack of rows times a matrix (x @ weight): fold the stack
        g2 = g.reshape(-1, g.shape[-1])
        return [(g2 @ b.T).reshape(a.shape) if needs[0] else None,
                a.reshape(-1, a.shape[-1]).T @ g2 if needs[1] else None]
    if a.ndim == 1 and b.ndim == 1:  # an inner product: g is a scalar
        return [g * b, g * a]
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    ga = ga[..., 0, :] if a.ndim == 1 else ga
    gb = gb[..., 0] if b.ndim == 1 else gb
    return [unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)]


def _extremum(bigger: bool) -> Callable[..., list[np.ndarray | None]]:
    """The rule of np.maximum (bigger) or np.minimum: the gradient goes to the operand that
    wins, and half to each on an exact tie (as PyTorch's)."""

    def rule(g: np.ndarray, needs: tuple[bool, ...], out: np.ndarray, a: Any, b: Any) -> list[np.ndarray | None]:
        ties = np.equal(a, b)
        tied = bool(ties.any())
        grads: list[np.ndarray | None] = []
        for need, mine, other in ((needs[0], a, b), (needs[1], b, a)):
            if not need:
                grads.append(None)
                continue
            wins = np.greater(mine, other) if bigger else np.less(mine, other)
            grads.append(unbroadcast(g * (wins + 0.5 * ties) if tied else g * wins, _shape(mine)))
        return grads

    return rule


def _power_b(g: np.ndarray, out: np.ndarray, a: Any, b: Any) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * out * np.where(np.asarray(a) > 0, np.log(np.where(np.asarray(a) > 0, a, 1)), 0)


UFUNC_RULES: dict[np.ufunc, Callable[..., Sequence[np.ndarray | None]]] = {
    np.add: _add,
    np.subtract: _binary(lambda g, o, a, b: g, lambda g, o, a, b: -g),
    np.multiply: _binary(lambda g, o, a, b: g * b, lambda g, o, a, b: g * a),
    np.true_divide: _binary(lambda g, o, a, b: g / b, lambda g, o, a, b: -g * o / b),
    np.power: _binary(lambda g, o, a, b: g * b * np.power(a, b - 1), _power_b),
    np.maximum: _extremum(True),
    np.minimum: _extremum(False),
    np.matmul: _matmul,
    np.negative: _unary(lambda g, o, a: -g),
    np.positive: _unary(lambda g, o, a: g),
    np.exp: _unary(lambda g, o, a: g * o),
    np.log: _unary(lambda g, o, a: g / a),
    np.log1p: _unary(lambda g, o, a: g / (1 + a)),
    np.expm1: _unary(lambda g, o, a: g * (o + 1)),
    np.sqrt: _unary(lambda g, o, a: g / (2 * o)),
    np.square: _unary(lambda g, o, a: 2 * a * g),
    np.reciprocal: _unary(lambda g, o, a: -g * o * o),
    np.absolute: _unary(lambda g, o, a: g * np.sign(a)),
    np.tanh: _unary(lambda g, o, a: g * (1 - o * o)),
    np.sin: _unary(lambda g, o, a: g * np.cos(a)),
    np.cos: _unary(lambda g, o, a: -g * np.sin(a)),
}
CONSTANT_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal, np.sign, np.floor,
    np.ceil, np.rint, np.trunc, np.isfinite, np.isnan, np.isinf, np.logical_and, np.logical_or, np.logical_not,
}


# -- function rules: (tape, *args, **kwargs) -> result ---------------------------------------------------


def _reduced_like(g: np.ndarray, shape: tuple[int, ...], axis: Any, keepdims: bool) -> np.ndarray:
    """`g` of a reduction over `axis` put back in the input's shape (broadcast over that axis)."""
    if axis is None:
        axes: tuple[int, ...] = tuple(range(len(shape)))
    else:
        axes = tuple(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,)))
    if not keepdims:
        for a in sorted(axes):
            g = np.expand_dims(g, a)
    return np.broadcast_to(g, shape)


def _sum(tape: Tape, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **_: Any) -> Any:
    x = _traced(a, tape)
    value = np.sum(_value(a), axis=axis, keepdims=keepdims)
    shape = np.shape(_value(a))
    return tape.record(value, [x], lambda g: [_reduced_like(g, shape, axis, keepdims)])


def _mean(tape: Tape, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **_: Any) -> Any:
    x = _traced(a, tape)
    v = _value(a)
    value = np.mean(v, axis=axis, keepdims=keepdims)
    count = v.size // max(np.size(value), 1)
    return tape.record(value, [x], lambda g: [_reduced_like(g, v.shape, axis, keepdims) / count])


def _extreme(np_func: Callable[..., Any]) -> Callable[..., Any]:
    def rule(tape: Tape, a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **_: Any) -> Any:
        x = _traced(a, tape)
        v = _value(a)
        value = np_func(v, axis=axis, keepdims=keepdims)

        def vjp(g: np.ndarray) -> list[np.ndarray]:
            hit = v == _reduced_like(np.asarray(value), v.shape, axis, keepdims)
            share = hit / _reduced_like(np.sum(hit, axis=axis, keepdims=keepdims), v.shape, axis, keepdims)
            return [share * _reduced_like(g, v.shape, axis, keepdims)]

        return tape.record(value, [x], vjp)

    return rule


def _var(tape: Tape, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False, **_: Any) -> Any:
    centred = a - np.mean(a, axis=axis, keepdims=True)
    count = np.size(_value(a)) // max(np.size(np.mean(_value(a), axis=axis)), 1)
    return np.sum(centred * centred, axis=axis, keepdims=keepdims) / (count - ddof)


def _std(tape: Tape, a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False, **_: Any) -> Any:
    return np.sqrt(_var(tape, a, axis=axis, ddof=ddof, keepdims=keepdims))


def _reshape(tape: Tape, a: Any, *args: Any, **kwargs: Any) -> Any:
    x = _traced(a, tape)
    shape = np.shape(_value(a))
    order = kwargs.get("order") or "C"  # the gradient goes back in the order the values came
    return tape.record(np.reshape(_value(a), *args, **kwargs), [x], lambda g: [np.reshape(g, shape, order=order)])  # type: ignore[arg-type]


def _transpose(tape: Tape, a: Any, axes: Any = None) -> Any:
    x = _traced(a, tape)
    value = np.transpose(_value(a), axes)
    inverse = None if axes is None else np.argsort([axis % np.ndim(value) for axis in axes])
    return tape.record(value, [x], lambda g: [np.transpose(g, inverse)])


def _swapaxes(tape: Tape, a: Any, axis1: int, axis2: int) -> Any:
    x = _traced(a, tape)
    return tape.record(np.swapaxes(_value(a), axis1, axis2), [x], lambda g: [np.swapaxes(g, axis1, axis2)])


def _moveaxis(tape: Tape, a: Any, source: Any, destination: Any) -> Any:
    x = _traced(a, tape)
    return tape.record(np.moveaxis(_value(a), source, destination), [x], lambda g: [np.moveaxis(g, destination, source)])


def _expand_dims(tape: Tape, a: Any, axis: Any) -> Any:
    x = _traced(a, tape)
    return tape.record(np.expand_dims(_value(a), axis), [x], lambda g: [np.squeeze(g, axis)])


def _squeeze(tape: Tape, a: Any, axis: Any = None) -> Any:
    x = _traced(a, tape)
    shape = np.shape(_value(a))
    return tape.record(np.squeeze(_value(a), axis), [x], lambda g: [np.reshape(g, shape)])


def _concatenate(tape: Tape, arrays: Sequence[Any], axis: int = 0, **kwargs: Any) -> Any:
    values = [_value(a) for a in arrays]
    value = np.concatenate(values, axis=axis)
    bounds = np.cumsum([np.shape(v)[axis] for v in values])[:-1]
    return tape.record(value, [_traced(a, tape) for a in arrays], lambda g: np.split(g, bounds, axis=axis))


def _stack(tape: Tape, arrays: Sequence[Any], axis: int = 0, **kwargs: Any) -> Any:
    value = np.stack([_value(a) for a in arrays], axis=axis)
    count = len(arrays)
    return tape.record(value, [_traced(a, tape) for a in arrays],
                       lambda g: [np.take(g, i, axis=axis) for i in range(count)])


def _split(tape: Tape, a: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    value = _value(a)
    pieces = np.split(np.arange(value.shape[axis]), indices_or_sections)
    return [_take_range(tape, a, int(p[0]) if len(p) else 0, len(p), axis) for p in pieces]


def _take_range(tape: Tape, a: Any, start: int, length: int, axis: int) -> Any:
    index = [slice(None)] * np.ndim(_value(a))
    index[axis] = slice(start, start + length)
    return _traced(a, tape)[tuple(index)]  # type: ignore[index]


def _where(tape: Tape, condition: Any, a: Any, b: Any) -> Any:
    cond = np.asarray(_value(condition), dtype=bool)
    va, vb = _value(a), _value(b)
    value = np.where(cond, va, vb)
    return tape.record(value, [None, _traced(a, tape), _traced(b, tape)],
                       lambda g: [None, unbroadcast(g * cond, np.shape(va)), unbroadcast(g * ~cond, np.shape(vb))])


def _clip(tape: Tape, a: Any, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None, **kwargs: Any) -> Any:  # noqa: A002
    a_min = min if a_min is None else a_min  # numpy 2.1 also names them min= and max=
    a_max = max if a_max is None else a_max
    if isinstance(a_min, (Traced, Parameter)) or isinstance(a_max, (Traced, Parameter)):
        raise LaminaError(f"np.clip with traced bounds has no derivative rule in lamina; use np.maximum(np.minimum(x, high), low), or {WAYS_OUT}")
    v = _value(a)
    wider = np.broadcast_shapes(v.shape, np.shape(a_min), np.shape(a_max))
    if wider != v.shape:
        raise LaminaError(f"np.clip: bounds of shapes {np.shape(a_min)}, {np.shape(a_max)} would widen the traced array of shape {v.shape} to {wider}; broadcast the array first, or {WAYS_OUT}")
    value = np.clip(v, a_min, a_max)
    inside = np.ones(v.shape, dtype=bool)
    if a_min is not None:
        inside &= v >= a_min
    if a_max is not None:
        inside &= v <= a_max
    return tape.record(value, [_traced(a, tape)], lambda g: [g * inside])


def _matmul_function(tape: Tape, a: Any, b: Any, **kwargs: Any) -> Any:
    va, vb = _value(a), _value(b)
    traced = [_traced(a, tape), _traced(b, tape)]
    needs = tuple(t is not None and t.needed for t in traced)
    return tape.record(np.matmul(va, vb), traced, _matmul, (needs, None, va, vb))


def _dot(tape: Tape, a: Any, b: Any, out: Any = None) -> Any:
    if np.ndim(_value(a)) > 2 or np.ndim(_value(b)) > 2:
        raise LaminaError(f"np.dot of arrays above 2-D has no derivative rule in lamina; use np.matmul or np.einsum, or {WAYS_OUT}")
    return _matmul_function(tape, a, b)


def _einsum(tape: Tape, subscripts: str, *operands: Any, **kwargs: Any) -> Any:
    if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
        raise LaminaError(f"np.einsum needs explicit subscripts with '->' and no '...' to be differentiated; {WAYS_OUT}")
    inputs, output = subscripts.replace(" ", "").split("->")
    terms = inputs.split(",")
    if any(len(set(term)) != len(term) for term in terms):
        raise LaminaError(f"np.einsum({subscripts!r}) repeats an index within one operand (a diagonal or trace), which has no derivative rule in lamina; {WAYS_OUT}")
    values = [_value(o) for o in operands]
    sizes: dict[str, set[int]] = {}
    for term, v in zip(terms, values):
        for letter, size in zip(term, np.shape(v)):
            sizes.setdefault(letter, set()).add(size)
    if any(len(found) > 1 for found in sizes.values()):
        raise LaminaError(f"np.einsum({subscripts!r}) broadcasts an index of size 1 against a larger one, which has no derivative rule in lamina; give both operands the full size (e.g. with np.repeat on a constant), or {WAYS_OUT}")
    value = np.einsum(subscripts, *values)

    def vjp(g: np.ndarray) -> list[np.ndarray]:
        grads = []
        for i, term in enumerate(terms):
            others = [t for j, t in enumerate(terms) if j != i]
            # An index only this operand has was summed away: its gradient is the same along it.
            known = set(output).union(*others)
            kept = "".join(c for c in term if c in known)
            spec = ",".join([output, *others]) + "->" + kept
            partial = np.einsum(spec, g, *[v for j, v in enumerate(values) if j != i])
            partial = np.expand_dims(partial, tuple(k for k, c in enumerate(term) if c not in known))
            grads.append(np.broadcast_to(partial, np.shape(values[i])))
        return grads

    return tape.record(value, [_traced(o, tape) for o in operands], vjp)


def _pad(tape: Tape, a: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    if mode != "constant":
        raise LaminaError(f"np.pad(mode={mode!r}) has no derivative rule in lamina (only 'constant'); {WAYS_OUT}")
    v = _value(a)
    value = np.pad(v, pad_width, mode="constant", **kwargs)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (v.ndim, 2))
    index = tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, v.shape))
    return tape.record(value, [_traced(a, tape)], lambda g: [g[index]])


def _flip(tape: Tape, a: Any, axis: Any = None) -> Any:
    return tape.record(np.flip(_value(a), axis), [_traced(a, tape)], lambda g: [np.flip(g, axis)])


def _cumsum(tape: Tape, a: Any, axis: Any = None, **kwargs: Any) -> Any:
    v = _value(a)
    if axis is None:
        return _cumsum(tape, np.reshape(a, -1), axis=0)
    value = np.cumsum(v, axis=axis)
    return tape.record(value, [_traced(a, tape)], lambda g: [np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)])


def _inspect(np_func: Callable[..., Any]) -> Callable[..., Any]:
    """np.shape, np.ndim, np.size, np.zeros_like, ...: they read a traced array's shape or
    dtype, not its values, so the result is a constant."""
    return lambda tape, *args, **kwargs: np_func(*_value(args), **{k: _value(v) for k, v in kwargs.items()})


FUNCTION_RULES: dict[Any, Callable[..., Any]] = {
    np.sum: _sum, np.mean: _mean, np.max: _extreme(np.max), np.min: _extreme(np.min),
    np.amax: _extreme(np.max), np.amin: _extreme(np.min), np.var: _var, np.std: _std,
    np.reshape: _reshape, np.transpose: _transpose, np.swapaxes: _swapaxes, np.moveaxis: _moveaxis,
    np.expand_dims: _expand_dims, np.squeeze: _squeeze, np.concatenate: _concatenate, np.stack: _stack,
    np.split: _split, np.where: _where, np.clip: _clip, np.matmul: _matmul_function, np.dot: _dot,
    np.einsum: _einsum, np.pad: _pad, np.flip: _flip, np.cumsum: _cumsum,
    **{f: _inspect(f) for f in (np.shape, np.ndim, np.size, np.zeros_like, np.ones_like, np.empty_like, np.full_like)},
}

# The keyword arguments each rule honours; any other (out=, where=, initial=, dtype=, ...) is
# refused with a LaminaError rather than silently ignored.
KEYWORDS: dict[Any, set[str]] = {
    **{f: {"axis", "keepdims"} for f in (np.sum, np.mean, np.max, np.min, np.amax, np.amin)},
    np.var: {"axis", "keepdims", "ddof"}, np.std: {"axis", "keepdims", "ddof"},
    np.reshape: {"newshape", "shape", "order"}, np.transpose: {"axes"}, np.squeeze: {"axis"},
    np.expand_dims: {"axis"}, np.concatenate: {"axis"}, np.stack: {"axis"}, np.split: {"axis", "indices_or_sections"},
    np.pad: {"pad_width", "mode", "constant_values"}, np.flip: {"axis"}, np.cumsum: {"axis"},
    np.clip: {"a_min", "a_max", "min", "max"}, np.matmul: set(), np.dot: set(), np.einsum: set(),
}

SUPPORTED = sorted(
    {f"np.{u.__name__}" for u in UFUNC_RULES} | {f"np.{f.__name__}" for f in FUNCTION_RULES}
    | {"+ - * / ** @ (operators)", "indexing (basic and integer arrays)",
       ".T .reshape .transpose .swapaxes .squeeze .sum .mean .max .min .var .std .cumsum .dot .astype .ravel .flatten .clip"}
)  # lamina.ops adds its functions here when it is imported


parameter.tracing_hook = active_tape  # Parameters ask it whether a forward is being traced
