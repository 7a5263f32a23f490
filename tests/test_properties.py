"""Property-based tests, driven by the registry: every registered layer, loss and optimizer is
covered without new test code, on hypothesis-drawn batch sizes (1 included), widths, dtypes
and values, through the conformance kit's property checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lamina
from lamina.testing import Case, cases_for, checks_for

REGISTRY = lamina.get_registry()
PROPERTIES = {
    "layer": ("gradients", "dtype", "shape", "no_mutation", "seeded"),
    "loss": ("gradients", "dtype", "value", "no_mutation", "seeded"),
    "optimizer": ("in_place", "zero_grad", "per_parameter", "seeded"),
}


def names(kind: str) -> list[str]:
    return [info.qualified_name for info in REGISTRY.plugins(kind)]


@st.composite
def drawn_case(draw, cls, kind):
    """One of the class's own cases, with the batch size, the last axis and the values redrawn."""
    case = draw(st.sampled_from(cases_for(cls)))
    shape = list(case.shape)
    if kind != "optimizer":
        shape[0] = draw(st.integers(max(case.min_batch, 1), 6))
    if len(shape) > 1 or kind == "optimizer":
        shape[-1] += draw(st.integers(0, 3))  # widths only grow: kernels and pools still fit
    seed = draw(st.integers(0, 2**32 - 1))
    maker = case.input

    def input_from_seed(_generator, size):  # the hypothesis-drawn seed picks the values
        return maker(np.random.default_rng(seed), size)

    return Case(case.kwargs, tuple(shape), input_from_seed, case.target, None, case.tolerance, case.min_batch)


def run_properties(cls, kind, case):
    for check in checks_for(cls, cases=[case]):
        if check.property in PROPERTIES[kind]:
            result = check.run()
            assert result.ok is not False, str(result)


@pytest.mark.parametrize("name", names("layer"))
@given(data=st.data())
def test_layer_properties(name, data):
    cls = REGISTRY.get("layer", name).cls
    run_properties(cls, "layer", data.draw(drawn_case(cls, "layer")))


@pytest.mark.parametrize("name", names("loss"))
@given(data=st.data())
def test_loss_properties(name, data):
    cls = REGISTRY.get("loss", name).cls
    run_properties(cls, "loss", data.draw(drawn_case(cls, "loss")))


@pytest.mark.parametrize("name", names("optimizer"))
@given(data=st.data())
def test_optimizer_properties(name, data):
    cls = REGISTRY.get("optimizer", name).cls
    run_properties(cls, "optimizer", data.draw(drawn_case(cls, "optimizer")))


@given(
    values=st.lists(st.floats(-100, 100), min_size=1, max_size=8),
    lr=st.floats(1e-4, 1.0),
    decay=st.floats(1e-4, 0.5),
)
def test_on_a_zero_gradient_only_weight_decay_moves_the_weights(values, lr, decay):
    w = np.array(values)
    for optim in (lamina.optimizer("SGD", lr=lr, weight_decay=decay),
                  lamina.optimizer("AdamW", lr=lr, weight_decay=decay)):
        param = lamina.Parameter(w.copy())
        optim.step([param])  # .grad is zero
        np.testing.assert_allclose(param.value, w * (1 - lr * decay), rtol=1e-12, atol=1e-300)
