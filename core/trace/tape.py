"""The autodiff tracer: a forward-only layer's numpy code, recorded with each row's vjp for
`Tape.backward` to run in reverse (integer, boolean and comparison results are constants)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from lamina.errors import LaminaError
from lamina.parameter import Parameter
from lamina.trace import tracing
from lamina.trace.primitives import CONSTANT, TABLE, Operand, Primitive, Trace, _plain

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

    def apply(self, row: Primitive, operands: list[Any], params: dict[str, Any]) -> Any:
        values, parents, needs = zip(*(self.operand(item) for item in operands)) if operands else ((), (), ())
        if row.vjp is None:
            raise self.refuse(row.name)
        out = saved = row.value(*values, **params)
        if row.check is not None:  # after the value, which refuses what no reader of the table follows
            row.check(*values, **params)
        if row.saves:
            out, saved = out
        if row.vjp is CONSTANT:
            return out
        return self.record(out, parents, partial(row.vjp, **params) if params else row.vjp, (needs, saved, *values))

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
        for node in reversed(self.nodes):
            g = grads.pop(node, None)
            if g is None:
                continue
            found = node.rule(g, *node.args)  # type: ignore[misc]
            for parent, pg in zip(node.parents, found if isinstance(found, (list, tuple)) else (found,)):
                if pg is None or parent is None or not parent.needed:
                    continue
                if type(pg) is not np.ndarray:
                    pg = np.asarray(pg)
                target = parent.value
                if pg.dtype != target.dtype:
                    pg = pg.astype(target.dtype)
                if pg.shape != target.shape:
                    pg = np.broadcast_to(pg, target.shape)
                grads[parent] = grads[parent] + pg if parent in grads else pg
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
    __array_priority__ = 100.0
    __hash__ = object.__hash__  # a node is a key by identity (== is numpy's element-wise ==)
    tape = property(lambda self: self.trace)

    def __init__(self, value: np.ndarray, tape: Tape, parents: tuple[Traced | None, ...],
                 rule: Callable[..., Any] | None, args: tuple[Any, ...], needed: bool) -> None:
        self.value, self.trace, self.parents = value, tape, parents
        self.rule, self.args, self.needed = rule, args, needed

    def __repr__(self) -> str:
        return f"Traced({self.value!r})"


# The common operators go straight to the row, without numpy's dispatch in between.
for _name, _ufunc in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                      ("matmul", np.matmul)):
    setattr(Traced, f"__{_name}__", lambda self, other, row=TABLE[_ufunc]: _binop(self.trace, row, self, other))
    setattr(Traced, f"__r{_name}__", lambda self, other, row=TABLE[_ufunc]: _binop(self.trace, row, other, self))


def _binop(tape: Tape, row: Primitive, a: Any, b: Any) -> Any:
    """`Tape.apply` for the binary operators, on the hot path of every Linear and activation."""
    va, ta, na = tape.operand(a)
    vb, tb, nb = tape.operand(b)
    out = row.value(va, vb)
    if type(out) is not np.ndarray or out.dtype.kind not in "fc" or (ta is None and tb is None):
        return tape.record(out, (ta, tb), row.vjp, ((na, nb), out, va, vb))  # the rare cases
    node = Traced(out, tape, (ta, tb), row.vjp, ((na, nb), out, va, vb), na or nb)
    tape.nodes.append(node)
    return node
