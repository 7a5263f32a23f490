"""The autodiff tracer: a forward-only layer's numpy code, recorded with each row's vjp for
`Tape.backward` to run in reverse (integer, boolean and comparison results are constants)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from lamina import heap
from lamina.errors import LaminaError
from lamina.parameter import Parameter
from lamina.trace import tracing
from lamina.trace.primitives import CONSTANT, GETITEM, TABLE, Operand, Primitive, Refused, Trace, _plain

WAYS_OUT = "use an operation lamina can differentiate (see lamina.autodiff.SUPPORTED), or write backward() by hand"


class Tape(Trace):
    """The record of one traced forward: its leaves (the input, the Parameters) and the traced
    values computed from them, in the order they were computed."""

    __slots__ = ("params", "handwritten", "nodes")

    def __init__(self) -> None:
        self.params: dict[int, tuple[Parameter, Traced]] = {}  # id(Parameter) -> (it, its leaf)
        self.handwritten: dict[int, Traced] = {}  # id(hand-written layer) -> the node of its last call
        self.nodes: list[Traced] = []  # parents always come before their children

    def close(self) -> None:
        """Drop the record. Its values point back at the tape, a reference cycle that only the
        garbage collector would free; closing frees them (and their arrays) at once."""
        heap.hold()
        self.nodes.clear()
        self.params.clear()

    def leaf(self, value: np.ndarray, needed: bool = True) -> Traced:
        """The traced stand-in for an input; `needed=False` when nobody needs its gradient."""
        return Traced(value, self, (), None, (), needed)

    def parameter(self, param: Parameter) -> Traced:
        """The leaf that stands for `param` in this forward (the same one each time it is used)."""
        entry = self.params.get(id(param))
        if entry is None or entry[1].value is not param.value:
            # A frozen parameter's leaf wants no gradient: the rules skip its vjp.
            entry = self.params[id(param)] = (param, self.leaf(param.value, needed=param.trainable))
        return entry[1]

    def refuse(self, what: str, why: str | None = None) -> LaminaError:
        return LaminaError(f"{why or what + ' has no derivative rule in lamina'}; {WAYS_OUT}")

    def operand(self, item: Any) -> tuple[Any, Traced | None, bool]:
        """(value, traced node or None, whether it wants a gradient) of one operand."""
        if type(item) is Traced:
            return item.value, item, item.needed
        if isinstance(item, Parameter):
            leaf = self.parameter(item)
            return item.value, leaf, leaf.needed
        return _plain(item), None, False

    def run(self, row: Primitive | None, name: str, args: Any, kwargs: dict[str, Any]) -> Any:
        # A ufunc on operands alone (np.tanh(x)), or a row given only its operands
        # (lamina.ops.sigmoid(x)): nothing to bind, straight to the row.
        if kwargs or row is None or row.compose or not (row.ufunc or row.positional and len(args) == len(row.operands)):
            return Trace.run(self, row, name, args, kwargs)
        try:
            return self.apply(row, args, _NO_PARAMS)
        except Refused as err:
            raise self.refuse(name, str(err)) from None

    def apply(self, row: Primitive, operands: Sequence[Any], params: dict[str, Any]) -> Any:
        vjp = row.vjp
        if vjp is None:
            raise self.refuse(row.name)
        if len(operands) == 1 and type(operands[0]) is Traced:  # the common case (activations), written out
            parent = operands[0]
            values: tuple[Any, ...] = (parent.value,)
            parents: tuple[Traced | None, ...] = (parent,)
            needs: tuple[bool, ...] = _ONE[parent.needed]
        else:
            values, parents, needs = zip(*(self.operand(item) for item in operands)) if operands else ((), (), ())
        out = saved = row.value(*values, **params)
        if row.check is not None:  # after the value, which refuses what no reader of the table follows
            row.check(*values, **params)
        if row.saves:
            out, saved = out
        if vjp is CONSTANT:
            return out
        return self.record(out, parents, partial(vjp, **params) if params else vjp, (needs, saved, *values))

    def record(self, value: Any, parents: Sequence[Traced | None], rule: Callable[..., Any], args: tuple[Any, ...] = (),
               needed: bool = False) -> Any:
        """`value`, computed from `parents`, as a traced value whose gradient `rule(g, *args)` maps to one gradient
        per parent (None for one that needs none); a constant when not floating or no parent is traced.
        `needed=True` keeps it even when no parent needs a gradient (a hand-written sublayer's parameters do)."""
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
        # Nodes whose gradient so far is an array this loop allocated and nobody else holds: later
        # gradients add into it in place. (A rule may hand the same array to several operands.)
        owned: set[Traced] = set()
        pop, get, own, ndarray = grads.pop, grads.get, owned.add, np.ndarray
        for node in reversed(self.nodes):
            g = pop(node, None)
            if g is None:
                continue
            rule = node.rule
            if rule is _slice_vjp:  # basic indexing: written into the operand's gradient, not a zeros array each
                parent = node.parents[0]
                if parent is not None and parent.needed:
                    total = get(parent)
                    if total is None:
                        total = grads[parent] = np.zeros_like(parent.value)
                        own(parent)
                        total[node.args[0]] = g
                        continue
                    if parent not in owned:
                        total = grads[parent] = np.array(total)
                        own(parent)
                    total[node.args[0]] += g
                continue
            found = rule(g, *node.args)  # type: ignore[misc]
            for parent, pg in zip(node.parents, found if type(found) is tuple or type(found) is list else (found,)):
                if pg is None or parent is None or not parent.needed:
                    continue
                target = parent.value
                if type(pg) is not ndarray or pg.shape != target.shape or (pg.dtype is not target.dtype
                                                                           and pg.dtype != target.dtype):
                    pg = _conform(pg, target)
                total = get(parent)
                if total is None:
                    grads[parent] = pg
                elif parent in owned:
                    total += pg
                else:
                    grads[parent] = total + pg
                    own(parent)
        return grads

    def call_layer(self, layer: Any, x: Traced) -> Any:
        """A layer called inside another's traced forward: forward-only, on this tape (shared
        weights add up); hand-written, one node whose rule is its backward."""
        if not layer._built:
            layer.build(x.value)
            layer._built = True
            layer.training = layer.training  # sublayers made by build take the layer's mode
        if layer._autodiff:
            return layer.forward(x)
        earlier = self.handwritten.get(id(layer))
        if earlier is not None and earlier.rule == layer.backward:  # called again: its last call's state is saved
            earlier.rule = partial(layer._backward_with, layer._save_call())
        with tracing(None):  # its forward works on plain arrays: its Parameters too
            out = layer.forward(x.value)
        # needed: its parameters want gradients even when its input does not (unless all are frozen)
        node = self.record(out, [x], layer.backward, needed=any(p.trainable for p in layer.parameters().values()))
        if type(node) is Traced:
            self.handwritten[id(layer)] = node
        return node


class Traced(Operand):
    """An array inside a traced forward, and the record's node: its parents, the rule that maps
    its gradient to theirs (with the arguments the rule needs), and whether any gradient is wanted
    through it (False for values of an input whose gradient nobody needs: the rules then skip
    that input's gradient, as a hand-written first layer does)."""

    __slots__ = ("value", "trace", "parents", "rule", "args", "needed")
    trace: Tape
    __array_priority__ = 100.0
    __hash__ = object.__hash__  # a node is a key by identity (== is numpy's element-wise ==)
    tape = property(lambda self: self.trace)

    def __init__(self, value: np.ndarray, tape: Tape, parents: tuple[Traced | None, ...],
                 rule: Callable[..., Any] | None, args: tuple[Any, ...], needed: bool) -> None:
        self.value, self.trace, self.parents = value, tape, parents
        self.rule, self.args, self.needed = rule, args, needed

    def __repr__(self) -> str:
        return f"Traced({self.value!r})"

    def __getitem__(self, key: Any) -> Any:
        # Basic indexing (x[:, t], z[:, :n]), the most common operation in a loop, straight to a
        # node; anything else through the table's row.
        if type(key) is tuple:
            for item in key:
                if type(item) is not slice and type(item) is not int and item is not None and item is not Ellipsis:
                    return self.trace.run(GETITEM, "indexing", (self, key), {})
        elif type(key) is not slice and type(key) is not int:
            return self.trace.run(GETITEM, "indexing", (self, key), {})
        out, tape = self.value[key], self.trace
        if type(out) is not np.ndarray or out.dtype.kind not in "fc":  # one element, or integers
            return tape.record(out, (self,), _slice_vjp, (key, self.value))
        node = Traced(out, tape, (self,), _slice_vjp, (key, self.value), self.needed)
        tape.nodes.append(node)
        return node


_NO_PARAMS: dict[str, Any] = {}
_ONE = {False: (False,), True: (True,)}


def _slice_vjp(g: np.ndarray, key: Any, a: np.ndarray) -> np.ndarray:
    """The rule of basic indexing `a[key]` (each element at most once): `g` in a zeros array of a's shape.
    `Tape.backward` instead writes `g` into the operand's gradient itself."""
    full = np.zeros(a.shape, dtype=g.dtype)
    full[key] = g
    return full


def _conform(pg: Any, target: np.ndarray) -> np.ndarray:
    """A rule's gradient as an array of the operand's dtype and shape (a broadcast view where it was broadcast)."""
    if type(pg) is not np.ndarray:
        pg = np.asarray(pg)
    if pg.dtype != target.dtype:
        pg = pg.astype(target.dtype)
    if pg.shape != target.shape:
        pg = np.broadcast_to(pg, target.shape)
    return pg


_PLAIN = (float, int, np.ndarray, np.float32, np.float64)  # operands that are their own value


def _operator(row: Primitive, reflected: bool) -> Callable[[Traced, Any], Any]:
    """Traced.__mul__ (or __rmul__, reflected) and the like: `Tape.apply` for the binary operators, written
    out, on the hot path of every Linear and activation."""

    def operator(self: Traced, other: Any) -> Any:
        tape = self.trace
        to: Traced | None
        if type(other) is Traced:
            vo, to, no = other.value, other, other.needed
        elif type(other) in _PLAIN:
            vo, to, no = other, None, False
        else:
            vo, to, no = tape.operand(other)
        ta: Traced | None
        tb: Traced | None
        if reflected:
            va, ta, na, vb, tb, nb = vo, to, no, self.value, self, self.needed
        else:
            va, ta, na, vb, tb, nb = self.value, self, self.needed, vo, to, no
        out = row.value(va, vb)
        if type(out) is not np.ndarray or out.dtype.kind not in "fc":
            return tape.record(out, (ta, tb), row.vjp, ((na, nb), out, va, vb))  # the rare cases
        node = Traced(out, tape, (ta, tb), row.vjp, ((na, nb), out, va, vb), na or nb)
        tape.nodes.append(node)
        return node

    return operator


# The common operators go straight to the row, without numpy's dispatch in between.
for _name, _ufunc in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                      ("matmul", np.matmul)):
    setattr(Traced, f"__{_name}__", _operator(TABLE[_ufunc], reflected=False))
    setattr(Traced, f"__r{_name}__", _operator(TABLE[_ufunc], reflected=True))
