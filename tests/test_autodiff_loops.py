"""The fast paths of recording and backward (issue 28): basic indexing written into the operand's
gradient, gradients added up in place, and a forward-only GRU loop, checked against finite
differences and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.autodiff import Tape, Traced
from lamina.testing import check_layer_gradients
from lamina.trace import tracing


class Loop(lamina.Layer):
    """A forward-only layer written as a function of the input and one weight."""

    def __init__(self, f, weight_shape):
        self.f, self.weight_shape = f, weight_shape

    def build(self, x):
        self.w = lamina.Parameter(np.random.default_rng(1).normal(size=self.weight_shape))

    def forward(self, x):
        return self.f(x, self.w)


def _gates(x, w):
    z = x @ w  # (2, 6): three overlapping and disjoint slices of one value, and a slice of a slice
    a, b, c = z[:, :2], z[:, 1:3], z[:, 4:][:, ::-1]
    return np.tanh(a + b) * c + z[0, :2] + z[..., -1:] * z[1, 2]


def _aliases(x, w):
    # p + q hands one gradient array to both operands (the same one r gets); r's gradient, added to
    # p's later, must not change q's
    p, q = x * 2.0, w * 3.0
    r = p * 5.0
    s = x + w
    return (p + q) + r + s * s + x * 3.0 - w / 2.0 + (1 - s) * x


@pytest.mark.parametrize("f, weight_shape", [(_gates, (3, 6)), (_aliases, (2, 3))])
def test_fast_paths_match_finite_differences(f, weight_shape):
    errors = check_layer_gradients(Loop(f, weight_shape), np.random.default_rng(0).normal(size=(2, 3)))
    assert max(errors.values()) < 1e-7, errors


def test_indexing_one_element_or_integers_is_a_value_or_a_constant():
    tape = Tape()
    with tracing(tape):
        x = tape.leaf(np.arange(6.0).reshape(2, 3))
        n = tape.leaf(np.arange(6).reshape(2, 3))
        one, ints = x[1, 2], n[:, 1]
        out = one * x[0]
    assert isinstance(one, Traced) and one.value.shape == () and type(ints) is np.ndarray
    grads = tape.backward(out, np.ones(3))
    np.testing.assert_array_equal(grads[x], [[5.0, 5.0, 5.0], [0.0, 0.0, 3.0]])


def test_a_second_backward_of_the_same_forward_gives_the_same_gradients():
    layer = Loop(_gates, (3, 6))
    x = np.random.default_rng(0).normal(size=(2, 3))
    out = layer(x)
    first = layer.backward(np.ones_like(out)).copy(), layer.w.grad.copy()
    second = layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(first[0], second)
    np.testing.assert_array_equal(layer.w.grad, 2 * first[1])


class PlainGRU(lamina.Layer):
    """torch.nn.GRU's formulas written forward-only, a loop over time steps."""

    def __init__(self, units):
        self.units = units

    def build(self, x):
        rng, n = np.random.default_rng(2), self.units
        self.w = lamina.Parameter(rng.normal(size=(x.shape[-1], 3 * n)) * 0.5)
        self.u = lamina.Parameter(rng.normal(size=(n, 3 * n)) * 0.5)
        self.bi = lamina.Parameter(rng.normal(size=3 * n) * 0.1)
        self.bh = lamina.Parameter(rng.normal(size=3 * n) * 0.1)

    def forward(self, x):
        n = self.units
        h = np.zeros((x.shape[0], n), dtype=x.dtype)
        for t in range(x.shape[1]):
            gx, gh = x[:, t] @ self.w + self.bi, h @ self.u + self.bh
            r = lamina.ops.sigmoid(gx[:, :n] + gh[:, :n])
            z = 1 / (1 + np.exp(-(gx[:, n : 2 * n] + gh[:, n : 2 * n])))
            new = np.tanh(gx[:, 2 * n :] + r * gh[:, 2 * n :])
            h = (1 - z) * new + z * h
        return h


def test_a_forward_only_gru_loop_matches_pytorch():
    torch = pytest.importorskip("torch")
    layer = PlainGRU(3)
    x = np.random.default_rng(3).normal(size=(4, 5, 2))
    out = layer(x)
    grad = np.random.default_rng(4).normal(size=out.shape)
    dx = layer.backward(grad)
    ref = torch.nn.GRU(2, 3, batch_first=True).double()
    with torch.no_grad():  # torch's rows are r, z, n; lamina's layer keeps them as columns
        ref.weight_ih_l0.copy_(torch.tensor(layer.w.value.T))
        ref.weight_hh_l0.copy_(torch.tensor(layer.u.value.T))
        ref.bias_ih_l0.copy_(torch.tensor(layer.bi.value))
        ref.bias_hh_l0.copy_(torch.tensor(layer.bh.value))
    tx = torch.tensor(x, requires_grad=True)
    h = ref(tx)[1][0]
    h.backward(torch.tensor(grad))
    np.testing.assert_allclose(out, h.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.w.grad, ref.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.u.grad, ref.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bh.grad, ref.bias_hh_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
