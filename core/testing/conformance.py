"""The conformance kit: checks that any layer, loss or optimizer class keeps lamina's contracts.

    results = check_plugin(Snake, sample_shapes=[(4, 3)])
    print(format_failures(results))      # "all properties hold", or each failure

Each check is one named property; a failing result says which property failed, by how much,
and for which input shape. A plugin class may carry `conformance_cases`, a list of `Case`s
saying how to build it and what to feed it; `lamina check-plugins` uses them.
"""
from __future__ import annotations

import builtins
import math
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from lamina.case import Case
from lamina.errors import ArgumentError, LaminaError, ShapeError
from lamina.hookspecs import hookimpl
from lamina.model import Model, load_model
from lamina.parameter import Parameter
from lamina.protocols.optimizer import Optimizer
from lamina.registry import KINDS, get_registry
from lamina.seeding import rng, seed
from lamina.testing.base import Failed, NotApplicable, Result, layer_input, loss_data, make_layer, require
from lamina.testing.gradcheck import check_layer_gradients, check_loss_gradients
from lamina.testing.maths import layer_causal, layer_reference, loss_reference
from lamina.testing.messages import build_failure, builds, collapse, not_finite

PROPERTIES = {
    "layer": ("cases", "gradients", "dtype", "shape", "accumulates", "no_mutation", "round_trip", "seeded",
              "shape_error", "rejected_input", "reference", "causal"),
    "loss": ("cases", "gradients", "dtype", "value", "no_mutation", "round_trip", "seeded", "shape_error",
             "reference"),
    "optimizer": ("cases", "in_place", "descends", "zero_grad", "per_parameter", "round_trip", "seeded"),
}
# Checked only on the cases that give what they need (a reference, a causal axis): a plugin
# without any has no result for them, which check-plugins shows as "does not apply".
_ON_REQUEST = {"reference": "reference", "causal": "causal_axis"}


def cases_for(cls: type, sample_shapes: Sequence[tuple[int, ...]] | None = None, **kwargs: Any) -> list[Case]:
    """The cases to check `cls` with: from `sample_shapes` and constructor `kwargs` when
    given, else the class's own `conformance_cases`, else one default case."""
    if sample_shapes:
        return [Case(kwargs=kwargs, shape=tuple(shape)) for shape in sample_shapes]
    own = getattr(cls, "conformance_cases", None)
    if own and not kwargs:
        return list(own)
    return [Case(kwargs=kwargs)]


@frozen
class Check:
    """One property of one plugin class on one case; calling it raises on failure (for pytest)."""

    plugin: str
    property: str
    cls: type
    case: Case
    function: Callable[[type, Case], str | None]

    @builtins.property  # the field `property` shadows the builtin in this class body
    def id(self) -> str:
        return f"{self.plugin}-{self.property}"

    def run(self) -> Result:
        return _run(self.plugin, self.property, self.function, self.cls, self.case)

    def __call__(self) -> Result:
        result = self.run()
        if result.ok is None:
            import pytest

            pytest.skip(f"{result.property} does not apply: {result.detail}")
        if result.ok is False:
            raise AssertionError(str(result))
        return result


def checks_for(
    cls: type, sample_shapes: Sequence[tuple[int, ...]] | None = None, cases: Sequence[Case] | None = None,
    **kwargs: Any
) -> list[Check]:
    """Every property check of a layer, loss or optimizer class, one per case and property."""
    cases = list(cases) if cases else cases_for(cls, sample_shapes, **kwargs)
    for kind, table in (("layer", _layer_checks), ("loss", _loss_checks), ("optimizer", _optimizer_checks)):
        if isinstance(cls, type) and issubclass(cls, KINDS[kind].base):
            checks: list[Check] = []
            for number, case in enumerate(cases):
                label = cls.__name__ if len(cases) == 1 else f"{cls.__name__}[{number}]"
                checks.extend(Check(label, name, cls, case, function) for name, function in table()
                              if name not in _ON_REQUEST or getattr(case, _ON_REQUEST[name]) is not None)
            return checks
    raise ArgumentError(not_covered(cls, "check_plugin"))


def not_covered(cls: object, owner: str) -> str:
    """Why the kit cannot check `cls`: another kind of plugin, or no plugin class at all."""
    others = ", ".join(kind.plural for kind in KINDS.values() if kind.name not in PROPERTIES)
    for kind in KINDS.values():
        if isinstance(cls, type) and issubclass(cls, kind.base):
            return (
                f"{owner}: {cls.__name__} is a {kind.name}; the conformance kit checks Layer, Loss and "
                f"Optimizer classes only ({others} have no conformance checks): test it with your own tests"
            )
    return f"{owner}: {cls!r} is not a plugin class; pass a subclass of lamina.Layer, lamina.Loss or lamina.Optimizer"


def check_plugin(
    cls: type, sample_shapes: Sequence[tuple[int, ...]] | None = None, cases: Sequence[Case] | None = None,
    **kwargs: Any
) -> list[Result]:
    """Run every property check for a layer, loss or optimizer class; returns the results, a
    property failing for the same cause in several cases once (labelled with all of them)."""
    return collapse([check.run() for check in checks_for(cls, sample_shapes, cases, **kwargs)], cls.__name__)


def lamina_conformance(
    cls: type, sample_shapes: Sequence[tuple[int, ...]] | None = None, cases: Sequence[Case] | None = None,
    **kwargs: Any
) -> Callable[..., None]:
    """A pytest test, parametrised with one test per property, for a plugin class:

        test_snake = lamina_conformance(Snake, sample_shapes=[(4, 3)])
    """
    import pytest

    checks = checks_for(cls, sample_shapes, cases, **kwargs)

    @pytest.mark.parametrize("lamina_check", checks, ids=[check.id for check in checks])
    def test_conformance(lamina_check: Check) -> None:
        lamina_check()

    test_conformance.__name__ = f"test_{cls.__name__}_conformance"
    return test_conformance


def format_failures(results: Sequence[Result]) -> str:
    failed = [str(r) for r in results if r.ok is False]
    return "\n".join(failed) if failed else "all properties hold"


def _run(label: str, name: str, check: Callable[[type, Case], str | None], cls: type, case: Case) -> Result:
    try:
        try:
            with np.errstate(all="raise", under="ignore"):  # an overflow is a failure, not a warning
                detail = check(cls, case)
        except FloatingPointError as err:
            if "matmul" not in str(err):
                raise
            # OpenBLAS kernels on some CPUs leave the invalid flag set after a finite product, depending on
            # what memory held before (numpy#13173, OpenBLAS#1924): a real NaN still shows in the values
            # every check compares, so the check runs again without trusting that flag.
            with np.errstate(all="raise", invalid="ignore", under="ignore"):
                detail = check(cls, case)
    except _NotApplicable as reason:
        return Result(label, name, None, str(reason))
    except _Failed as failure:  # a case that does not build has no input yet
        return Result(label, name, False, str(failure) if name == "cases" else f"{failure} (input shape {case.shape})")
    except Exception as err:  # a crash is a failure of that property, reported, not raised
        return _crashed(label, name, cls, case, err)
    return Result(label, name, True, detail or "")


def _crashed(label: str, name: str, cls: type, case: Case, err: Exception) -> Result:
    """A check that raised: said by its cause where the kit finds one (the case does not build,
    which `cases` reports; a NaN or infinity), else by the exception."""
    if name != "cases" and build_failure(cls, case, _kind(cls)) is not None:
        return Result(label, name, None, "not run: the plugin does not build from this case (see 'cases')")
    if isinstance(err, FloatingPointError):
        found = not_finite(cls, case)
        if found:
            return Result(label, name, False, found)  # it names the input
    return Result(label, name, False, f"raised {type(err).__name__}: {err} (input shape {case.shape})")


def _kind(cls: type) -> str:
    return next((kind for kind in PROPERTIES if isinstance(cls, type) and issubclass(cls, KINDS[kind].base)), "layer")


_Failed, _NotApplicable, _require = Failed, NotApplicable, require
_make_layer, _layer_input = make_layer, layer_input


def _each(x: Any) -> list[np.ndarray]:
    """The arrays of an input or of an input gradient: a list's items, or the one array."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _one_array(x: Any, why: str) -> None:
    if isinstance(x, list):
        raise _NotApplicable(f"the layer takes a list of arrays, {why}")


def _layer_checks() -> list[tuple[str, Callable[[type, Case], str | None]]]:
    return [
        ("cases", builds("layer")),
        ("gradients", _layer_gradients),
        ("dtype", _layer_dtype),
        ("shape", _layer_shape),
        ("accumulates", _layer_accumulates),
        ("no_mutation", _layer_no_mutation),
        ("round_trip", _layer_round_trip),
        ("seeded", _layer_seeded),
        ("shape_error", _layer_shape_error),
        ("rejected_input", _layer_rejected_input),
        ("reference", layer_reference),
        ("causal", layer_causal),
    ]


def _layer_gradients(cls: type, case: Case) -> str:
    worst = 0.0
    for training in (True, False):
        layer = _make_layer(cls, case)
        x = _layer_input(cls, case)
        layer.training = True
        layer(x)  # build (and, for BatchNorm, gather running statistics)
        errors = check_layer_gradients(layer, x, training=training)
        name, error = max(errors.items(), key=lambda item: item[1], default=("", 0.0))
        mode = "training" if training else "inference"
        _require(
            error < case.tolerance,
            f"the {name} gradient is off from finite differences by relative error {error:.2e} "
            f"(tolerance {case.tolerance:g}) in {mode} mode",
        )
        worst = max(worst, error)
    return f"worst relative error {worst:.1e}"


def _layer_dtype(cls: type, case: Case) -> None:
    if getattr(cls, "integer_input", False):
        layer = _make_layer(cls, case)
        y = layer(_layer_input(cls, case))
        _require(y.dtype.kind == "f", f"output dtype {y.dtype} is not floating")
        return
    for dtype in (np.float32, np.float64):
        layer = _make_layer(cls, case)
        layer.training = True
        x = _layer_input(cls, case, dtype)
        y = layer(x)
        _require(y.dtype == dtype, f"{np.dtype(dtype).name} input gave {y.dtype} output")
        _require(bool(np.isfinite(y).all()), f"{np.dtype(dtype).name} input gave a non-finite output")
        for name, param in layer.parameters().items():
            _require(param.value.dtype == dtype,
                     f"{np.dtype(dtype).name} input built parameter {name!r} as {param.value.dtype}")
        for g in _each(layer.backward(np.ones_like(y))):
            if g is not None:  # the message reads g.dtype, so only an array is checked
                _require(g.dtype == dtype, f"{np.dtype(dtype).name} input gave a {g.dtype} input gradient")
                _require(bool(np.isfinite(g).all()), f"{np.dtype(dtype).name} input gave a non-finite input gradient")


def _layer_shape(cls: type, case: Case) -> None:
    layer = _make_layer(cls, case)
    layer.training = True
    x = _layer_input(cls, case)
    y = layer(x)
    rows = _each(x)[0].shape[0]
    _require(y.ndim >= 1 and y.shape[0] == rows, f"output shape {y.shape} lost the batch size {rows}")
    grads = layer.backward(np.ones_like(y))
    for g, item in zip(_each(grads), _each(x)):
        _require(g is None or g.shape == item.shape,
                 f"input gradient has shape {g.shape if g is not None else None}, input {item.shape}")
    bigger = _layer_input(cls, Case(case.kwargs, (case.shape[0] + 1, *case.shape[1:]), case.input), number=1)
    y2 = layer(bigger)
    _require(y2.shape == (rows + 1, *y.shape[1:]), f"a batch of {rows + 1} gave shape {y2.shape}")


def _layer_accumulates(cls: type, case: Case) -> None:
    layer = _make_layer(cls, case)
    layer.training = True
    x = _layer_input(cls, case)
    y = layer(x)
    params = layer.parameters()
    if not params:
        raise _NotApplicable("no parameters")
    grad = np.random.default_rng(2).normal(size=y.shape)
    for param in params.values():
        param.zero_grad()
    layer.backward(grad)
    once = {name: p.grad.copy() for name, p in params.items()}
    layer.backward(grad)
    for name, param in params.items():
        scale = max(float(np.abs(once[name]).max()), 1e-12)
        error = float(np.abs(param.grad - 2 * once[name]).max()) / scale
        _require(error < 1e-9,
                 f"a second backward left {name!r}.grad at {error:.2e} off twice the first: "
                 "backward must add into .grad, not overwrite it")


def _layer_no_mutation(cls: type, case: Case) -> None:
    layer = _make_layer(cls, case)
    layer.training = True
    x = _layer_input(cls, case)
    before = [item.copy() for item in _each(x)]
    y = layer(x)
    grad = np.random.default_rng(3).normal(size=y.shape)
    grad_before = grad.copy()
    layer.backward(grad)
    _require(all(np.array_equal(item, copy) for item, copy in zip(_each(x), before)),
             "forward or backward changed its input array in place")
    _require(np.array_equal(grad, grad_before), "backward changed the gradient array it was given")


def _registered(cls: type, kind: str) -> Callable[[], object]:
    """Register `cls` for the round trip when it is not registered yet; returns the undo."""
    registry = get_registry()
    if registry.info_for(cls) is not None:
        return lambda: None
    package = "lamina-conformance-check"
    hook = KINDS[kind].hook
    plugin = types.SimpleNamespace(**{hook: hookimpl(lambda register: register(cls, name=f"_check_{id(cls)}"))})
    registry.add_plugin(plugin, package=package)
    return lambda: registry.remove_package(package)


def _layer_round_trip(cls: type, case: Case) -> None:
    layer = _make_layer(cls, case)
    rebuilt = cls(**layer.get_config())
    _require(repr(rebuilt) == repr(layer), f"{cls.__name__}(**get_config()) gave {rebuilt!r}, not {layer!r}")
    _one_array(_layer_input(cls, case), "which a model of one layer cannot take: only get_config was checked")
    undo = _registered(cls, "layer")
    try:
        model = Model([layer])
        model.set_training(True)
        model.forward(_layer_input(cls, case))
        x = _layer_input(cls, case, number=4)
        before = model.predict(x)
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "model.npz")
            after = load_model(Path(folder) / "model.npz").predict(x)
    finally:
        undo()
    _require(np.array_equal(before, after), "predictions differ after save and load")


def _layer_seeded(cls: type, case: Case) -> None:
    outputs = []
    for _ in range(2):
        layer = _make_layer(cls, case)  # seeds lamina's generator
        layer.training = True
        outputs.append(layer(_layer_input(cls, case)).tobytes())
    _require(outputs[0] == outputs[1], "the same lamina.seed gave different outputs")


def _layer_shape_error(cls: type, case: Case) -> None:
    if case.wrong_shape is None:
        raise _NotApplicable("no wrong_shape in this case")
    layer = _make_layer(cls, case)
    layer(_layer_input(cls, case))
    wrong = _layer_input(cls, Case(case.kwargs, case.wrong_shape, case.input))
    try:
        layer(wrong)
    except ShapeError as err:
        _require(cls.__name__ in str(err), f"the ShapeError does not name the layer: {err}")
        return
    except Exception as err:
        raise _Failed(f"input of shape {case.wrong_shape} raised {type(err).__name__}: "
                      f"{err}, not a lamina.ShapeError") from None
    raise _Failed(f"input of shape {case.wrong_shape} was accepted; it should raise a lamina.ShapeError")


def _layer_rejected_input(cls: type, case: Case) -> str | None:
    """A fresh layer that rejects its first input with a ShapeError stays as it was: the next,
    correct input gives what it gives a fresh layer (the layer was not built for the wrong shape)."""
    x = _layer_input(cls, case)
    _one_array(x, "not one array of one axis fewer or more")
    shapes = [case.wrong_shape] if case.wrong_shape is not None else []
    shapes += [x.shape[:-1], (*x.shape, 2)]  # one axis fewer, one more
    expected = _make_layer(cls, case)(x)
    rejected = []
    for shape in shapes:
        layer = _make_layer(cls, case)
        state = rng().bit_generator.state  # what a fresh layer's first forward draws from
        try:
            layer(_layer_input(cls, Case(case.kwargs, shape, case.input)))
        except ShapeError:
            rejected.append(shape)
        except Exception:  # another error for a malformed input is shape_error's business
            continue
        else:
            continue
        rng().bit_generator.state = state
        try:
            again = layer(x)
        except Exception as err:
            raise _Failed(f"after rejecting an input of shape {shape} with a ShapeError, the correct input "
                          f"raised {type(err).__name__}: {err}; build only after the input is checked") from None
        _require(again.shape == expected.shape and np.array_equal(again, expected),
                 f"after rejecting an input of shape {shape} with a ShapeError, the correct input gives another "
                 "output than on a fresh layer; build only after the input is checked")
    if not rejected:
        raise _NotApplicable("no input shape tried was rejected")
    return f"rejected {', '.join(map(str, rejected))} and stayed as it was"


# -- losses ----------------------------------------------------------------------------------------


_loss_data = loss_data


def _loss_checks() -> list[tuple[str, Callable[[type, Case], str | None]]]:
    return [
        ("cases", builds("loss")),
        ("gradients", _loss_gradients),
        ("dtype", _loss_dtype),
        ("value", _loss_value),
        ("no_mutation", _loss_no_mutation),
        ("round_trip", _loss_round_trip),
        ("seeded", _loss_seeded),
        ("shape_error", _loss_shape_error),
        ("reference", loss_reference),
    ]


def _loss_gradients(cls: type, case: Case) -> str:
    pred, y = _loss_data(case)
    error = check_loss_gradients(cls(**case.kwargs), pred, y)
    _require(error < case.tolerance,
             f"backward is off from finite differences by relative error {error:.2e} (tolerance {case.tolerance:g})")
    return f"relative error {error:.1e}"


def _loss_dtype(cls: type, case: Case) -> None:
    for dtype in (np.float32, np.float64):
        pred, y = _loss_data(case, dtype)
        loss = cls(**case.kwargs)
        loss(pred, y)
        grad = loss.backward()
        _require(grad.shape == pred.shape, f"backward has shape {grad.shape}, pred {pred.shape}")
        _require(grad.dtype == dtype, f"{np.dtype(dtype).name} pred gave a {grad.dtype} gradient")


def _loss_value(cls: type, case: Case) -> None:
    pred, y = _loss_data(case)
    value = cls(**case.kwargs)(pred, y)
    _require(np.ndim(value) == 0 and math.isfinite(float(value)), f"returned {value!r}, not a finite scalar")


def _loss_no_mutation(cls: type, case: Case) -> None:
    pred, y = _loss_data(case)
    pred_before, y_before = pred.copy(), np.copy(y)
    loss = cls(**case.kwargs)
    loss(pred, y)
    loss.backward()
    _require(np.array_equal(pred, pred_before) and np.array_equal(y, y_before), "the loss changed pred or y in place")


def _loss_round_trip(cls: type, case: Case) -> None:
    pred, y = _loss_data(case)
    loss = cls(**case.kwargs)
    rebuilt = cls(**loss.get_config())
    _require(float(rebuilt(pred, y)) == float(loss(pred, y)), "a loss rebuilt from get_config() gives another value")


def _loss_seeded(cls: type, case: Case) -> None:
    pred, y = _loss_data(case)
    values = [float(cls(**case.kwargs)(pred, y)) for _ in range(2)]
    _require(values[0] == values[1], f"two calls gave {values[0]!r} and {values[1]!r}")


def _loss_shape_error(cls: type, case: Case) -> None:
    pred, y = _loss_data(case)
    wrong = pred[:-1]  # one sample fewer than y has targets: wrong for every loss
    try:
        cls(**case.kwargs)(wrong, y)
    except ShapeError:
        return
    except LaminaError as err:
        raise _Failed(f"pred of shape {wrong.shape} against y of shape {np.shape(y)} raised {type(err).__name__}, "
                      "not a ShapeError") from None
    except Exception as err:
        raise _Failed(f"pred of shape {wrong.shape} against y of shape {np.shape(y)} raised {type(err).__name__}: "
                      f"{err}, not a lamina.ShapeError") from None
    raise _Failed(f"pred of shape {wrong.shape} against y of shape {np.shape(y)} was accepted")


# -- optimizers ----------------------------------------------------------------------------------


def _steps(optim: Optimizer, params: list[Parameter], grads: Callable[[int, Parameter], np.ndarray],
           count: int) -> None:
    for step in range(count):
        for param in params:
            param.grad[...] = grads(step, param)
        optim.step(params)


def _optimizer_checks() -> list[tuple[str, Callable[[type, Case], str | None]]]:
    return [
        ("cases", builds("optimizer")),
        ("in_place", _optimizer_in_place),
        ("descends", _optimizer_descends),
        ("zero_grad", _optimizer_zero_grad),
        ("per_parameter", _optimizer_per_parameter),
        ("round_trip", _optimizer_round_trip),
        ("seeded", _optimizer_seeded),
    ]


def _optimizer_in_place(cls: type, case: Case) -> None:
    for dtype in (np.float32, np.float64):
        param = Parameter(np.ones(case.shape, dtype=dtype))
        value = param.value
        _steps(cls(**case.kwargs), [param], lambda s, p: np.full(case.shape, 0.5), 2)
        _require(param.value is value, "step replaced Parameter.value instead of updating it in place")
        _require(value.dtype == dtype, f"a {np.dtype(dtype).name} parameter became {value.dtype}")
        _require(not np.array_equal(value, np.ones(case.shape)), "two steps on a non-zero gradient changed nothing")


def _optimizer_descends(cls: type, case: Case) -> str:
    target = np.random.default_rng(0).normal(size=case.shape)
    param = Parameter(np.zeros(case.shape))
    start = 0.5 * float(np.sum(target**2))
    _steps(cls(**case.kwargs), [param], lambda s, p: p.value - target, 20)
    end = 0.5 * float(np.sum((param.value - target) ** 2))
    _require(end < start,
             f"20 steps on 0.5 |w - t|^2 went from {start:.4g} to {end:.4g}; the step must go against the gradient")
    return f"loss {start:.3g} -> {end:.3g}"


def _optimizer_zero_grad(cls: type, case: Case) -> None:
    optim = cls(**case.kwargs)
    if getattr(optim, "weight_decay", 0):
        raise _NotApplicable("weight decay moves parameters without a gradient")
    param = Parameter(np.random.default_rng(1).normal(size=case.shape))
    before = param.value.copy()
    _steps(optim, [param], lambda s, p: np.zeros(case.shape), 3)
    _require(np.array_equal(param.value, before), "steps on a zero gradient changed the parameter")


def _optimizer_per_parameter(cls: type, case: Case) -> None:
    grads = {0: np.random.default_rng(5).normal(size=case.shape),
             1: np.random.default_rng(6).normal(size=case.shape) * 3}
    together = [Parameter(np.zeros(case.shape)), Parameter(np.zeros(case.shape))]
    index = {id(p): i for i, p in enumerate(together)}
    _steps(cls(**case.kwargs), together, lambda s, p: grads[index[id(p)]] * (s + 1), 3)
    for i in range(2):
        alone = Parameter(np.zeros(case.shape))

        def alone_grads(s: int, p: Parameter, i: int = i) -> np.ndarray:
            return grads[i] * (s + 1)

        _steps(cls(**case.kwargs), [alone], alone_grads, 3)
        _require(np.allclose(alone.value, together[i].value, rtol=1e-12, atol=0),
                 f"parameter {i} stepped with another parameter ends elsewhere than alone: "
                 "state must be kept per parameter")


def _optimizer_round_trip(cls: type, case: Case) -> None:
    optim = cls(**case.kwargs)
    rebuilt = cls(**optim.get_config())
    _require(repr(rebuilt) == repr(optim), f"{cls.__name__}(**get_config()) gave {rebuilt!r}, not {optim!r}")


def _optimizer_seeded(cls: type, case: Case) -> None:
    results = []
    for _ in range(2):
        seed(0)
        param = Parameter(np.ones(case.shape))
        _steps(cls(**case.kwargs), [param], lambda s, p: np.full(case.shape, 0.3), 3)
        results.append(param.value.tobytes())
    _require(results[0] == results[1], "the same seed gave different steps")
