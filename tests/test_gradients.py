"""Finite-difference gradient checks (float64, central differences) for every layer and loss."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import (
    L1,
    MSE,
    BinaryCrossEntropy,
    CrossEntropy,
    Huber,
    Linear,
    Relu,
    Sigmoid,
    Softmax,
    Tanh,
)
from lamina.testing import (
    check_layer_gradients,
    check_loss_gradients,
    numerical_gradient,
    relative_error,
)

TOLERANCE = 1e-7
SEEDS = range(5)


def _shape(rng: np.random.Generator) -> tuple[int, int]:
    """A random (batch, features) shape, batch 1 included."""
    return int(rng.integers(1, 6)), int(rng.integers(1, 7))


def _normal(rng):
    return rng.normal(size=_shape(rng))


def _away_from_zero(rng):
    # Relu's derivative jumps at 0; keep inputs where the finite difference is valid.
    x = _normal(rng)
    return np.sign(x) * (0.1 + np.abs(x))


def _sequence(rng):
    return rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5))))


# qualified name -> (layer factory, input factory); the meta-test below keeps this complete.
LAYER_CASES = {
    "lamina:Linear": (lambda rng: Linear(int(rng.integers(1, 6))), _normal),
    "lamina:Sigmoid": (lambda rng: Sigmoid(), _normal),
    "lamina:Relu": (lambda rng: Relu(), _away_from_zero),
    "lamina:Tanh": (lambda rng: Tanh(), _normal),
    "lamina:Softmax": (lambda rng: Softmax(), lambda rng: 3 * _normal(rng)),
}

def _regression(rng, kinks=()):
    """(pred, y) of one random shape, with pred - y kept away from the loss's kinks."""
    shape = _shape(rng)
    y = rng.normal(size=shape)
    d = rng.normal(size=shape) * 2
    for kink in kinks:  # move differences within 0.05 of a kink out of its neighbourhood
        near = np.abs(np.abs(d) - kink) < 0.05
        d[near] = np.sign(d[near] + 1e-12) * (kink + 0.1)
    return y + d, y


def _probabilities(rng, shape):
    p = rng.uniform(0.05, 1.0, size=shape)
    return p / p.sum(axis=1, keepdims=True)


def _classification(rng, targets, probabilities):
    n, classes = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    pred = _probabilities(rng, (n, classes)) if probabilities else 3 * rng.normal(size=(n, classes))
    labels = rng.integers(0, classes, size=n)
    if targets == "labels":
        return pred, labels
    if targets == "onehot":
        return pred, np.eye(classes)[labels]
    return pred, _probabilities(rng, (n, classes))  # soft targets


def _binary(rng, probabilities):
    shape = _shape(rng)
    pred = rng.uniform(0.05, 0.95, size=shape) if probabilities else 3 * rng.normal(size=shape)
    return pred, rng.integers(0, 2, size=shape).astype(np.float64)


# qualified name -> [(loss factory, data factory), ...]; every registered loss needs an entry.
LOSS_CASES = {
    "lamina:MSE": [(lambda rng: MSE(), _regression)],
    "lamina:L1": [(lambda rng: L1(), lambda rng: _regression(rng, kinks=(0.0,)))],
    "lamina:Huber": [
        (lambda rng: Huber(), lambda rng: _regression(rng, kinks=(1.0,))),
        (lambda rng: Huber(delta=0.3), lambda rng: _regression(rng, kinks=(0.3,))),
    ],
    "lamina:CrossEntropy": [
        (lambda rng: CrossEntropy(), lambda rng: _classification(rng, "labels", True)),
        (lambda rng: CrossEntropy(), lambda rng: _classification(rng, "onehot", True)),
        (lambda rng: CrossEntropy(), lambda rng: _classification(rng, "soft", True)),
        (lambda rng: CrossEntropy(from_logits=True), lambda rng: _classification(rng, "labels", False)),
        (lambda rng: CrossEntropy(from_logits=True), lambda rng: _classification(rng, "onehot", False)),
        (lambda rng: CrossEntropy(from_logits=True), lambda rng: _classification(rng, "soft", False)),
    ],
    "lamina:BinaryCrossEntropy": [
        (lambda rng: BinaryCrossEntropy(), lambda rng: _binary(rng, True)),
        (lambda rng: BinaryCrossEntropy(from_logits=True), lambda rng: _binary(rng, False)),
    ],
}
LOSS_PARAMS = [(name, i) for name, cases in sorted(LOSS_CASES.items()) for i in range(len(cases))]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_gradients_match_finite_differences(name, seed):
    rng = np.random.default_rng(seed)
    make_layer, make_input = LAYER_CASES[name]
    layer = make_layer(rng)
    errors = check_layer_gradients(layer, make_input(rng), seed=seed)
    assert set(errors) == {"input", *layer.parameters()}
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_gradients_on_inputs_with_extra_leading_axes(seed):
    rng = np.random.default_rng(seed)
    layer = Linear(3)
    errors = check_layer_gradients(layer, _sequence(rng), seed=seed)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name, case", LOSS_PARAMS)
def test_loss_gradients_match_finite_differences(name, case, seed):
    rng = np.random.default_rng(seed)
    make_loss, make_data = LOSS_CASES[name][case]
    pred, y = make_data(rng)
    assert check_loss_gradients(make_loss(rng), pred, y) < TOLERANCE


FUSED_CASES = [
    (CrossEntropy, Softmax, lambda rng: _classification(rng, "labels", False)),
    (CrossEntropy, Softmax, lambda rng: _classification(rng, "onehot", False)),
    (CrossEntropy, Softmax, lambda rng: _classification(rng, "soft", False)),
    (BinaryCrossEntropy, Sigmoid, lambda rng: _binary(rng, False)),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("make_loss, make_layer, make_data", FUSED_CASES)
def test_fused_loss_gradient_is_the_gradient_through_the_layer(make_loss, make_layer, make_data, seed):
    """The one-step gradient (p - y) / n equals d loss(layer(z)) / dz by finite differences."""
    z, y = make_data(np.random.default_rng(seed))
    loss, layer = make_loss(), make_layer()
    assert loss.fuses_with(layer) and not make_loss(from_logits=True).fuses_with(layer)
    z = z.astype(np.float64)
    loss(layer(z), y)
    fused = loss.fused_backward()
    numeric = numerical_gradient(lambda: float(loss(layer(z), y)), z)
    assert relative_error(fused, numeric) < TOLERANCE


def test_every_registered_layer_and_loss_has_a_gradient_check():
    """A plugin registered without a case above fails here, so no gradient goes unchecked."""
    checked = set(LAYER_CASES) | set(LOSS_CASES)
    registered = {
        info.qualified_name
        for info in lamina.get_registry().plugins()
        if info.kind in ("layer", "loss")
    }
    assert registered - checked == set(), "add a gradient-check case for these plugins"
    assert checked - registered == set(), "these cases name plugins that are not registered"


def test_the_gradient_check_catches_a_wrong_backward():
    class HalfWrongTanh(Tanh):
        def backward(self, grad):
            return 0.5 * super().backward(grad)

    x = np.random.default_rng(0).normal(size=(3, 4))
    assert check_layer_gradients(HalfWrongTanh(), x)["input"] > 0.1


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    grad = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(grad, 3 * np.array([1.0, 4.0, 9.0]), rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])  # restored after perturbation


def test_mse_gradient_is_the_derivative_of_the_mean_not_batch_size_times_it():
    pred = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.zeros((4, 1))
    loss = MSE()
    assert loss(pred, y) == pytest.approx(30 / 4)
    np.testing.assert_allclose(loss.backward(), 2 * pred / 4)


def test_softmax_uses_each_rows_own_max():
    # With a global max, the second row would underflow to 0/0.
    x = np.array([[1000.0, 1001.0], [-1000.0, -999.0]])
    y = Softmax()(x)
    expected = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(y, [expected, expected])
