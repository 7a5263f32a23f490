"""lamina.ops on plain arrays: the built-in activations are their rows (value, backward and ONNX
form), values stay finite at any magnitude and keep the dtype. (Their derivatives:
test_autodiff.py and test_autodiff_torch.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import Elu, Gelu, LeakyRelu, LogSoftmax, Relu, Sigmoid, Silu, Softmax, Softplus, Tanh

X = np.random.default_rng(0).normal(size=(5, 4)) * 3


@pytest.mark.parametrize("op, layer", [
    (lamina.ops.sigmoid, Sigmoid()), (lamina.ops.relu, Relu()), (lamina.ops.tanh, Tanh()),
    (lamina.ops.softmax, Softmax()),
    (lamina.ops.log_softmax, LogSoftmax()), (lamina.ops.softplus, Softplus()), (lamina.ops.silu, Silu()),
    (lambda x: lamina.ops.leaky_relu(x, 0.2), LeakyRelu(0.2)), (lambda x: lamina.ops.elu(x, 1.5), Elu(1.5)),
    (lamina.ops.gelu, Gelu()), (lambda x: lamina.ops.gelu(x, "tanh"), Gelu(approximate="tanh")),
])
def test_built_in_activations_are_their_ops_rows(op, layer):
    """Each activation computes the op's value, and its backward is the gradient autodiff derives
    from the op (one rule, in the table): identical, not just close."""
    twin = type("Twin", (lamina.Layer,), {"forward": lambda self, x: op(x)})()
    g = np.random.default_rng(1).normal(size=X.shape)
    np.testing.assert_array_equal(layer(X), twin(X))
    np.testing.assert_array_equal(layer.backward(g), twin.backward(g))


@pytest.mark.parametrize("op", [lamina.ops.sigmoid, lamina.ops.softmax, lamina.ops.log_softmax, lamina.ops.logsumexp,
                                lamina.ops.softplus, lamina.ops.silu, lamina.ops.gelu, lamina.ops.elu, lamina.ops.erf])
def test_ops_stay_finite_and_keep_float32(op):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    y = op(x)
    assert y.dtype == np.float32
    assert np.isfinite(y).all(), y


def test_logsumexp_values_and_infinities():
    np.testing.assert_allclose(lamina.ops.logsumexp(X, axis=0), np.log(np.exp(X).sum(axis=0)))
    assert lamina.ops.logsumexp(X, axis=None, keepdims=True).shape == (1, 1)
    assert lamina.ops.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf  # no NaN from inf - inf


def test_ops_reject_unknown_arguments():
    with pytest.raises(lamina.ArgumentError, match="approximate must be 'none' or 'tanh'"):
        lamina.ops.gelu(X, approximate="fast")


def test_ops_take_zero_dimensional_arrays():
    for x in (np.array(0.5, dtype=np.float32), np.array(0.5)):
        y = lamina.ops.gelu(x)
        assert y.shape == () and y.dtype == x.dtype
        np.testing.assert_allclose(lamina.ops.erf(x), 0.5204998778, rtol=1e-6)


def test_float32_gelu_value_and_derivative_within_5e_7_of_exact():
    """float32 GELU computes value and slope in one sweep with an erfc approximation: both stay
    within 5e-7 (relative above 1) of the float64 values, from 0 to beyond exp's range."""
    x = np.concatenate([np.random.default_rng(1).normal(size=300_000) * 4,  # several cache-sized pieces
                        [0.0, -0.0, 1e-30, -1e-30, 5.0, -5.0, 12.0, -12.0, 1e4, -1e4, 1e30, -1e30]])
    layer = lamina.layer("Gelu")
    y = layer(x.astype(np.float32))
    slope = layer.backward(np.ones_like(y))
    exact_layer = lamina.layer("Gelu")
    exact_y = exact_layer(x)
    exact_slope = exact_layer.backward(np.ones_like(exact_y))
    assert y.dtype == slope.dtype == np.float32
    scale = np.maximum(1.0, np.abs(exact_y))
    assert np.max(np.abs(y - exact_y) / scale) < 5e-7
    assert np.max(np.abs(slope - exact_slope)) < 5e-7
    assert np.isfinite(y).all() and np.isfinite(slope).all()
