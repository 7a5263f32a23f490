"""Optimizers: closed-form first steps, step-for-step agreement with torch.optim, schedules."""
from __future__ import annotations

import math

import numpy as np
import pytest

import lamina
from lamina.plugins import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Constant,
    CosineDecay,
    ExponentialDecay,
    RMSProp,
    StepDecay,
)

try:
    import torch
except ImportError:  # the comparisons below need the optional torch==2.13.0 (CPU)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

W0 = np.array([0.5, -1.0, 2.0])
G = np.array([0.1, -0.3, 0.2])


def one_step(optim: lamina.Optimizer, w=W0, g=G, steps: int = 1) -> np.ndarray:
    p = lamina.Parameter(np.array(w, dtype=np.float64))
    for _ in range(steps):
        p.grad[...] = g
        optim.step([p])
    return p.value


# qualified name -> (optimizer, expected value after one step from W0 with gradient G)
FIRST_STEPS = {
    "lamina:SGD": (lambda: SGD(lr=0.1), W0 - 0.1 * G),
    "lamina:Adam": (lambda: Adam(lr=0.01), W0 - 0.01 * G / (np.abs(G) + 1e-8)),
    "lamina:AdamW": (lambda: AdamW(lr=0.01), W0 * (1 - 0.01 * 0.01) - 0.01 * G / (np.abs(G) + 1e-8)),
    "lamina:RMSProp": (lambda: RMSProp(lr=0.01), W0 - 0.01 * G / (np.sqrt(0.01) * np.abs(G) + 1e-8)),
    "lamina:Adagrad": (lambda: Adagrad(lr=0.1), W0 - 0.1 * G / (np.abs(G) + 1e-10)),
}


@pytest.mark.parametrize("name", sorted(FIRST_STEPS))
def test_first_step_matches_the_closed_form(name):
    make, expected = FIRST_STEPS[name]
    np.testing.assert_allclose(one_step(make()), expected, rtol=1e-12)


def test_every_registered_optimizer_has_a_step_test():
    registered = {i.qualified_name for i in lamina.get_registry().plugins("optimizer")}
    assert registered == set(FIRST_STEPS)


@pytest.mark.parametrize("name", sorted(FIRST_STEPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_are_in_place_and_keep_the_dtype(name, dtype):
    p = lamina.Parameter(np.ones((2, 3), dtype=dtype))
    value = p.value
    p.grad.fill(0.5)
    optim = FIRST_STEPS[name][0]()
    optim.step([p])
    optim.step([p])
    assert p.value is value and value.dtype == dtype
    assert all(a.dtype == dtype for a in optim.state_for(p).values() if isinstance(a, np.ndarray))
    assert optim.iterations == 2


@pytest.mark.parametrize("name", sorted(FIRST_STEPS))
def test_a_zero_gradient_changes_nothing_without_weight_decay(name):
    optim = FIRST_STEPS[name][0]()
    if getattr(optim, "weight_decay", 0):
        optim.weight_decay = 0.0
    np.testing.assert_array_equal(one_step(optim, g=np.zeros(3), steps=3), W0)


def test_sgd_momentum_and_nesterov_by_hand():
    # Constant gradient g: buffers are g, 1.9 g, ...; Nesterov steps by g + 0.9 b.
    w = one_step(SGD(lr=0.1, momentum=0.9), steps=2)
    np.testing.assert_allclose(w, W0 - 0.1 * G - 0.1 * 1.9 * G)
    w = one_step(SGD(lr=0.1, momentum=0.9, nesterov=True), steps=2)
    np.testing.assert_allclose(w, W0 - 0.1 * 1.9 * G - 0.1 * 2.71 * G)
    w = one_step(SGD(lr=0.1, weight_decay=0.5))
    np.testing.assert_allclose(w, W0 - 0.1 * (G + 0.5 * W0))


# (ours, torch's class name, torch kwargs); each runs several steps on random gradients.
TORCH_CASES = [
    (lambda: SGD(lr=0.1), "SGD", dict(lr=0.1)),
    (lambda: SGD(lr=0.05, momentum=0.9, weight_decay=0.01), "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (lambda: SGD(lr=0.05, momentum=0.8, dampening=0.3), "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    (lambda: SGD(lr=0.05, momentum=0.9, nesterov=True), "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    (lambda: Adam(), "Adam", dict()),
    (lambda: Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), "Adam",
     dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (lambda: AdamW(), "AdamW", dict()),
    (lambda: AdamW(lr=0.01, weight_decay=0.1), "AdamW", dict(lr=0.01, weight_decay=0.1)),
    (lambda: RMSProp(), "RMSprop", dict()),
    (lambda: RMSProp(lr=0.001, alpha=0.9, momentum=0.5, weight_decay=0.01), "RMSprop",
     dict(lr=0.001, alpha=0.9, momentum=0.5, weight_decay=0.01)),
    (lambda: RMSProp(lr=0.001, centered=True), "RMSprop", dict(lr=0.001, centered=True)),
    (lambda: Adagrad(), "Adagrad", dict()),
    (lambda: Adagrad(lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1), "Adagrad",
     dict(lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
]


@needs_torch
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("make, torch_name, kwargs", TORCH_CASES)
def test_steps_match_torch_optim(make, torch_name, kwargs, dtype, rtol):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype(dtype)
    grads = [rng.normal(size=(4, 3)).astype(dtype) for _ in range(8)]
    ours = lamina.Parameter(start.copy())
    optim = make()
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    reference = getattr(torch.optim, torch_name)([theirs], **kwargs)
    for g in grads:
        ours.grad[...] = g
        optim.step([ours])
        theirs.grad = torch.from_numpy(g.copy())
        reference.step()
        np.testing.assert_allclose(ours.value, theirs.detach().numpy(), rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(lr=0), "SGD(lr=0): lr must be a positive number or a lamina.Schedule"),
        (lambda: SGD(lr=StepDecay), "lr is a schedule class, not an instance"),
        (lambda: SGD(momentum=-0.1), "momentum must be a number >= 0"),
        (lambda: SGD(nesterov=True), "Nesterov momentum needs momentum > 0"),
        (lambda: Adam(betas=(0.9,)), "betas must be a pair"),
        (lambda: Adam(betas=(0.9, 1.0)), "betas[1] must be a number in [0, 1)"),
        (lambda: Adam(eps=0), "eps must be a positive number"),
        (lambda: AdamW(weight_decay=-1), "weight_decay must be a number >= 0"),
        (lambda: RMSProp(alpha=1.5), "alpha must be a number in [0, 1)"),
        (lambda: Adagrad(lr_decay=-1), "lr_decay must be a number >= 0"),
    ],
)
def test_bad_hyper_parameters_are_named(make, message):
    with pytest.raises(lamina.ArgumentError) as info:
        make()
    assert message in str(info.value)


# -- schedules -----------------------------------------------------------------------------------


def test_schedule_values():
    assert [Constant(0.1)(s) for s in (0, 100)] == [0.1, 0.1]
    assert [StepDecay(1.0, step_size=2, gamma=0.5)(s) for s in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    decay = ExponentialDecay(1.0, decay_rate=0.5, decay_steps=2)
    assert [decay(s) for s in (0, 1, 2, 4)] == pytest.approx([1.0, 2**-0.5, 0.5, 0.25])
    stairs = ExponentialDecay(1.0, decay_rate=0.5, decay_steps=2, staircase=True)
    assert [stairs(s) for s in (0, 1, 2, 3)] == [1.0, 1.0, 0.5, 0.5]
    cosine = CosineDecay(1.0, decay_steps=4, min_lr=0.2)
    assert [cosine(s) for s in (0, 2, 4, 10)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    warm = CosineDecay(1.0, decay_steps=2, warmup_steps=4)
    assert [warm(s) for s in range(7)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0])


@needs_torch
def test_schedules_match_torch_lr_schedulers_step_by_step():
    def torch_lrs(make, steps=12):
        param = torch.nn.Parameter(torch.zeros(1))
        optim = torch.optim.SGD([param], lr=0.5)
        sched, values = make(optim), []
        for _ in range(steps):
            values.append(optim.param_groups[0]["lr"])
            optim.step()
            sched.step()
        return values

    S = torch.optim.lr_scheduler
    assert [StepDecay(0.5, 3, 0.2)(s) for s in range(12)] == pytest.approx(torch_lrs(lambda o: S.StepLR(o, 3, 0.2)))
    assert ([ExponentialDecay(0.5, 1, 0.9)(s) for s in range(12)]
            == pytest.approx(torch_lrs(lambda o: S.ExponentialLR(o, 0.9))))
    ours = [CosineDecay(0.5, 10, min_lr=0.01)(s) for s in range(11)]
    assert ours == pytest.approx(torch_lrs(lambda o: S.CosineAnnealingLR(o, 10, eta_min=0.01), 11))


def test_an_optimizer_reads_its_schedule_once_per_step():
    optim = SGD(lr=StepDecay(1.0, step_size=1, gamma=0.5))
    p = lamina.Parameter(np.zeros(1))
    p.grad[:] = 1.0
    for _ in range(3):
        optim.step([p])
    np.testing.assert_allclose(p.value, [-(1.0 + 0.5 + 0.25)])
    assert optim.current_lr == 0.25 and optim.iterations == 3


def test_a_schedule_that_returns_a_negative_rate_is_an_error_naming_it():
    class Broken(lamina.Schedule):
        def __call__(self, step):
            return 0.1 - step * 0.1

    optim = SGD(lr=Broken())
    p = lamina.Parameter(np.zeros(1))
    optim.step([p])
    optim.step([p])  # lr 0 is allowed (cosine schedules end there)
    with pytest.raises(lamina.ArgumentError) as info:
        optim.step([p])
    assert "SGD: its schedule Broken() returned lr=" in str(info.value) and "at step 2" in str(info.value)
    assert math.isclose(float(str(info.value).split("lr=")[1].split(" ")[0]), -0.1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StepDecay(0.1, step_size=0), "step_size must be a positive int"),
        (lambda: ExponentialDecay(0.1, 10, decay_rate=-0.5), "decay_rate must be a positive number"),
        (lambda: ExponentialDecay(0.1, 0, 0.5), "decay_steps must be a positive int"),
        (lambda: CosineDecay(0.1, 100, min_lr=-1.0), "min_lr must be a number >= 0"),
        (lambda: CosineDecay(0.1, 100, min_lr=0.5), "min_lr must not exceed initial_lr"),
        (lambda: CosineDecay(0.1, 100, warmup_steps=-1), "warmup_steps must be an int >= 0"),
        (lambda: Constant(-1), "lr must be a positive number"),
    ],
)
def test_bad_schedule_arguments_are_named(make, message):
    with pytest.raises(lamina.ArgumentError) as info:
        make()
    assert message in str(info.value)


def test_schedules_by_name():
    sched = lamina.schedule("cosinedecay", 0.1, decay_steps=10)
    assert isinstance(sched, CosineDecay) and sched(10) == 0.0
    with pytest.raises(lamina.UnknownPluginError, match="Did you mean 'StepDecay'"):
        lamina.schedule("StepDecy", 0.1, 10)
