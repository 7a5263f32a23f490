"""The kit's messages about causes rather than symptoms: a plugin its cases cannot build, a
non-finite output or gradient, and one failure reported once for every case it happens in."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from lamina.case import Case
from lamina.protocols.layer import Layer
from lamina.protocols.loss import Loss
from lamina.seeding import rng
from lamina.testing.base import Failed, Result, first_not_finite, layer_input, loss_data, make_layer

EXAMPLES = {
    "layer": 'conformance_cases = [Case(kwargs={"units": 4}, shape=(2, 5, 3))]',
    "loss": 'conformance_cases = [Case(kwargs={"gamma": 2.0}, shape=(4, 3))]',
    "optimizer": 'conformance_cases = [Case(kwargs={"lr": 0.01}, shape=(5,))]',
}


def build_failure(cls: type, case: Case, kind: str) -> str | None:
    """Why `cls(**case.kwargs)` fails, with what to do about it; None when it builds.
    lamina's random generator is left as it was."""
    state = rng().bit_generator.state
    try:
        cls(**case.kwargs)
    except TypeError as err:
        if not case.kwargs and not getattr(cls, "conformance_cases", None):
            return (f"{cls.__name__}() needs constructor arguments ({err}) and the class has no conformance_cases "
                    f"to say which: add them to the class, e.g. {EXAMPLES[kind]} (lamina.Case: the constructor's "
                    "keyword arguments and an input shape)")
        return f"{cls.__name__}(**{case.kwargs!r}) raised TypeError: {err}; fix the case's kwargs"
    except Exception as err:
        return f"{cls.__name__}(**{case.kwargs!r}) raised {type(err).__name__}: {err}"
    finally:
        rng().bit_generator.state = state
    return None


def builds(kind: str) -> Callable[[type, Case], None]:
    """The `cases` property: the plugin builds from the case."""

    def check(cls: type, case: Case) -> None:
        failure = build_failure(cls, case, kind)
        if failure is not None:
            raise Failed(failure)

    return check


def not_finite(cls: type, case: Case) -> str | None:
    """What is not finite when `cls` runs on the case's input (the output, the input gradient or a
    parameter's gradient; in float64, then float32), with that input; None when all is finite."""
    with np.errstate(all="ignore"):
        for dtype in (np.float64, np.float32):
            if isinstance(cls, type) and issubclass(cls, Layer):
                found = _layer_not_finite(cls, case, dtype)
            elif isinstance(cls, type) and issubclass(cls, Loss):
                found = _loss_not_finite(cls, case, dtype)
            else:
                return None
            if found:
                return found
    return None


def _layer_not_finite(cls: type, case: Case, dtype: type) -> str | None:
    layer = make_layer(cls, case)
    layer.training = True
    x = layer_input(cls, case, dtype)
    shapes = [a.shape for a in x] if isinstance(x, list) else x.shape  # a merge layer takes a list
    made = f"for the {np.dtype(dtype).name} input of shape {shapes} made by {_maker(case)}"
    y = np.asarray(layer(x))
    bad = first_not_finite(y)
    if bad:
        return f"the output is not finite: {bad}, {made}"
    g = layer.backward(np.ones_like(y))
    grads = [] if g is None else g if isinstance(g, list) else [g]  # one per input of a merge layer
    bad = next((found for found in (first_not_finite(np.asarray(item)) for item in grads) if found), None)
    if bad:
        return f"the input gradient is not finite: {bad}, {made} (output gradient all ones)"
    for name, param in layer.parameters().items():
        bad = first_not_finite(param.grad)
        if bad:
            return f"the gradient of parameter {name!r} is not finite: {bad}, {made} (output gradient all ones)"
    return None


def _loss_not_finite(cls: type, case: Case, dtype: type) -> str | None:
    pred, y = loss_data(case, dtype)
    made = f"for the {np.dtype(dtype).name} pred of shape {pred.shape} made by {_maker(case)}"
    loss = cls(**case.kwargs)
    value = np.asarray(loss(pred, y))
    bad = first_not_finite(value)
    if bad:
        return f"the loss value is not finite: {bad}, {made}"
    bad = first_not_finite(np.asarray(loss.backward()))
    if bad:
        return f"the gradient with respect to pred is not finite: {bad}, {made}"
    return None


def _maker(case: Case) -> str:
    return f"{getattr(case.input, '__name__', repr(case.input))}(seed 0)"


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|nan|inf")


def cause(detail: str) -> str:
    """A failure's detail without what differs from case to case: the input shape and the numbers."""
    return _NUMBER.sub("#", re.sub(r" \(input shape \([^)]*\)\)$", "", detail))


def collapse(results: Sequence[Result], name: str) -> list[Result]:
    """The results with each property's failures of one cause in several cases made one, labelled
    with every case (`Name[0, 2]`), in the place of the first."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        if result.ok is False:
            groups.setdefault((result.property, cause(result.detail)), []).append(result)
    out: list[Result] = []
    for result in results:
        group = groups.get((result.property, cause(result.detail))) if result.ok is False else None
        if group is None or len(group) == 1:
            out.append(result)
        elif group[0] is result:
            numbers = ", ".join(r.plugin[len(name) + 1:-1] for r in group)
            out.append(Result(f"{name}[{numbers}]", result.property, False, result.detail))
    return out
