"""Forward-only layers and losses: lamina derives backward from plain numpy.

Every derivative rule is checked against central finite differences in float64, on shapes that
broadcast, with keepdims, negative axes and repeated indices.
"""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

import lamina
from lamina.autodiff import SUPPORTED
from lamina.testing import check_layer_gradients, check_loss_gradients, check_plugin, format_failures

RNG = np.random.default_rng(0)


class Expression(lamina.Layer):
    """y = f(x, w) for a numpy expression f, with one weight of the given shape."""

    def __init__(self, f, weight_shape=(3,), positive=False):
        self.f, self.weight_shape, self.positive = f, weight_shape, positive

    def get_config(self):
        return {}

    def build(self, x):
        w = RNG.normal(size=self.weight_shape)
        self.w = lamina.Parameter(np.abs(w) + 0.5 if self.positive else w)

    def forward(self, x):
        return self.f(x, self.w)


POSITIVE = lambda g, s: np.abs(g.normal(size=s)) + 0.5  # noqa: E731

CASES = {
    "add-broadcast": (lambda x, w: x + w, (4, 3), (3,)),
    "sub-radd": (lambda x, w: 2.0 - x - w, (4, 3), (1, 3)),
    "mul-div": (lambda x, w: x * w / (w * w + 1.0), (2, 4, 3), (4, 1)),
    "power": (lambda x, w: (x * x + 1.0) ** w, (4, 3), (3,)),
    "matmul": (lambda x, w: x @ w, (4, 3), (3, 2)),
    "matmul-vector": (lambda x, w: x @ w, (2, 4, 3), (3,)),
    "rmatmul": (lambda x, w: w @ x, (3, 5), (2, 3)),
    "unary": (lambda x, w: np.tanh(x) + np.exp(-x) * np.sin(w) + np.cos(x) - np.log1p(x * x) + np.expm1(w), (4, 3),
              (3,)),
    "sqrt-log-abs": (lambda x, w: np.sqrt(np.abs(x) + 1.0) + np.log(w) + np.square(x) * np.reciprocal(w), (4, 3), (3,)),
    "max-min": (lambda x, w: np.maximum(x, w) - np.minimum(x, 0.1 * w), (4, 3), (3,)),
    "sum-mean": (lambda x, w: np.sum(x * w, axis=-1, keepdims=True) + np.mean(x, axis=0), (4, 3), (3,)),
    "reductions": (lambda x, w: np.max(x * w, axis=1) + np.min(x, axis=(0, 2), keepdims=True).sum() + x.sum() * w[0],
                   (2, 3, 4), (3, 1)),
    "var-std": (lambda x, w: np.var(x * w, axis=-1) + np.std(x, axis=0, ddof=1).sum(), (5, 3), (3,)),
    "shapes": (lambda x, w: np.transpose(x.reshape(2, 3, 2), (2, 0, 1)).swapaxes(0, 1) * w.T.T.reshape(1, 1, 3), (4, 3),
               (1, 3)),
    "axes": (lambda x, w: np.squeeze(np.expand_dims(np.moveaxis(x, -1, 0), 1), axis=1) * w[:, None], (4, 3), (3,)),
    "concat-stack-split": (lambda x, w: np.concatenate([x, w * x], axis=-1)[:, 1:4]
                           + np.split(np.stack([x, x * w], axis=0), 2)[1][0],
                           (4, 3), (3,)),
    "where-clip": (lambda x, w: np.where(x > 0, x * w, -w) + np.clip(x, -0.5, 0.5), (4, 3), (3,)),
    "indexing": (lambda x, w: x[np.array([0, 2, 2, 1])] * w + x[1:, ::2].sum() + x[..., -1:] * w, (4, 3), (3,)),
    "einsum-dot": (lambda x, w: np.einsum("ij,jk->ik", x, w) + np.dot(x, w), (4, 3), (3, 2)),
    "pad-flip-cumsum": (lambda x, w: np.pad(x * w, ((1, 0), (0, 2)))[1:, :3] + np.flip(np.cumsum(x, axis=-1), 0),
                        (4, 3), (3,)),
    "inner-product-einsum-sum": (lambda x, w: (x[0] @ w) * np.einsum("ij->i", x) + np.einsum("ij,j->", x, w), (4, 3),
                                 (3,)),
    "ops-activations": (lambda x, w: lamina.ops.sigmoid(x * w) + lamina.ops.relu(x) * lamina.ops.softplus(w)
                        + lamina.ops.silu(x)
                        + lamina.ops.elu(x - w, 0.5) + lamina.ops.leaky_relu(x, 0.1), (4, 3), (3,)),
    "ops-gelu-erf": (lambda x, w: lamina.ops.gelu(x * w) + lamina.ops.gelu(x, approximate="tanh")
                     + lamina.ops.erf(x + w), (4, 3), (3,)),
    "ops-softmax": (lambda x, w: lamina.ops.softmax(x * w) * lamina.ops.log_softmax(x, axis=0)
                    + lamina.ops.logsumexp(x + w, axis=-1, keepdims=True)
                    + lamina.ops.logsumexp(x, axis=None), (4, 3), (3,)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_rule_matches_finite_differences(name):
    f, x_shape, w_shape = CASES[name]
    positive = name in ("power", "sqrt-log-abs")
    layer = Expression(f, w_shape, positive=positive)
    x = RNG.normal(size=x_shape)
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < 1e-7, errors


def test_the_contract_example_trains_by_name_saves_loads_and_passes_the_kit(tmp_path):
    class GatedLinear(lamina.Layer):          # no backward(): lamina derives it
        def __init__(self, units: int):
            self.units = units

        def build(self, x):                     # called once, before the first forward, with the first input
            init = lamina.initializer("glorot_uniform")
            self.weight = lamina.Parameter(init((x.shape[-1], 2 * self.units), x.dtype))
            self.bias = lamina.Parameter(np.zeros(2 * self.units, x.dtype))

        def forward(self, x):
            h = x @ self.weight + self.bias     # Parameters are used directly as operands
            a, g = h[..., :self.units], h[..., self.units:]
            return a * (1 / (1 + np.exp(-g)))   # plain numpy: operators, ufuncs, np.* functions

    plugin = types.SimpleNamespace(register_layers=lamina.hookimpl(lambda register: register(GatedLinear)))
    lamina.register_plugin(plugin, package="lamina-test-gated")
    try:
        results = check_plugin(GatedLinear, sample_shapes=[(4, 5)], units=3)
        assert all(r.ok is not False for r in results), format_failures(results)
        lamina.seed(0)
        x, y, _, _ = lamina.dataset("spirals", n_samples=150)
        model = lamina.Model([{"type": "GatedLinear", "units": 16}, {"type": "Linear", "units": 3}])
        history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.02),
                              loss=lamina.loss("CrossEntropy", from_logits=True),
                              epochs=40, batch_size=16, metrics=["accuracy"], verbose=False)
        assert history["accuracy"][-1] > 0.6
        assert model.parameters()["0.weight"].value.dtype == np.float32
        assert model.parameters()["0.weight"].grad.dtype == np.float32
        model.save(tmp_path / "gated.npz")
        np.testing.assert_array_equal(lamina.load(tmp_path / "gated.npz").predict(x), model.predict(x))
    finally:
        lamina.get_registry().remove_package("lamina-test-gated")


class ForwardLinear(lamina.Layer):
    def __init__(self, units):
        self.units = units

    def build(self, x):
        self.weight = lamina.Parameter(RNG.normal(size=(x.shape[-1], self.units)))
        self.bias = lamina.Parameter(RNG.normal(size=self.units))

    def forward(self, x):
        return x @ self.weight + self.bias


class ForwardLayerNorm(lamina.Layer):
    def build(self, x):
        self.weight = lamina.Parameter(RNG.normal(size=x.shape[-1]))
        self.bias = lamina.Parameter(RNG.normal(size=x.shape[-1]))

    def forward(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = np.var(x, axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * self.weight + self.bias


class ForwardSoftmax(lamina.Layer):
    def forward(self, x):
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "mine, builtin",
    [(lambda: ForwardLinear(4), lambda: lamina.layer("Linear", 4)),
     (lambda: ForwardLayerNorm(), lambda: lamina.layer("LayerNorm")),
     (lambda: ForwardSoftmax(), lambda: lamina.layer("Softmax"))],
    ids=["Linear", "LayerNorm", "Softmax"],
)
def test_forward_only_built_ins_equal_the_hand_written_ones(mine, builtin):
    x = RNG.normal(size=(5, 6))
    grad = RNG.normal(size=(5, 4 if isinstance(mine(), ForwardLinear) else 6))
    a, b = mine(), builtin()
    for layer in (a, b):
        layer.training = True
    b(x)
    a(x)
    for name, param in a.parameters().items():
        b.parameters()[name].value[...] = param.value
    ya, yb = a(x), b(x)
    np.testing.assert_allclose(ya, yb, rtol=1e-10, atol=1e-12)
    ga, gb = a.backward(grad), b.backward(grad)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)
    for name, param in a.parameters().items():
        np.testing.assert_allclose(param.grad, b.parameters()[name].grad, rtol=1e-10, atol=1e-12)


def test_a_forward_only_loss_gets_its_gradient():
    class LogCosh(lamina.Loss):
        def forward(self, pred, y):
            d = np.abs(pred - y)  # log(cosh(d)), computed without overflow
            return np.mean(d + np.log1p(np.exp(-2 * d)) - np.log(2.0))

    pred, y = RNG.normal(size=(6, 2)), RNG.normal(size=(6, 2))
    assert check_loss_gradients(LogCosh(), pred, y) < 1e-7
    model = lamina.Model([lamina.layer("Linear", 1)])
    x = RNG.normal(size=(64, 3))
    history = model.train(x, x @ np.array([[1.0], [-2.0], [0.5]]), loss=LogCosh(),
                          optim=lamina.optimizer("SGD", lr=0.5),
                          epochs=50, verbose=False)
    assert history[-1] < 0.1 * history[0]


def test_sublayers_weight_sharing_and_hand_written_sublayers():
    class Twice(lamina.Layer):
        def __init__(self):
            self.inner = ForwardLinear(3)

        def forward(self, x):
            return self.inner(np.tanh(self.inner(x)))  # the same weights twice: gradients add

    layer = Twice()
    assert max(check_layer_gradients(layer, RNG.normal(size=(4, 3))).values()) < 1e-7
    assert list(layer.parameters()) == ["inner.weight", "inner.bias"]

    class WithHandWritten(lamina.Layer):
        def __init__(self):
            self.dense = lamina.layer("Linear", 3)

        def forward(self, x):
            return np.tanh(self.dense(x)) * x

    assert max(check_layer_gradients(WithHandWritten(), RNG.normal(size=(4, 3))).values()) < 1e-7

    class HandWrittenTwice(WithHandWritten):
        def forward(self, x):
            return self.dense(self.dense(x))

    # one hand-written instance called twice in one traced forward: both calls' gradients add up
    assert max(check_layer_gradients(HandWrittenTwice(), RNG.normal(size=(4, 3))).values()) < 1e-7


@pytest.mark.parametrize(
    "forward, expected",
    [
        (lambda self, x: np.asarray(x) * 2, "converted to a plain numpy array"),
        (lambda self, x: np.unique(x), "np.unique has no derivative rule"),
        (lambda self, x: x.__setitem__(0, 1.0), "writing into a traced array in place"),
        (lambda self, x: x * float(x.sum()), "float() of a traced value"),
    ],
    ids=["asarray", "unsupported", "in-place", "float"],
)
def test_what_would_drop_the_trace_is_an_error_naming_it_and_the_ways_out(forward, expected):
    layer = type("Bad", (lamina.Layer,), {"forward": forward})()
    layer.training = True
    with pytest.raises(lamina.LaminaError, match=re.escape(expected)) as info:
        layer(np.ones((2, 3)))
    assert "write backward() by hand" in str(info.value)


def test_model_inference_records_nothing_and_release_frees_the_graph():
    layer = ForwardLinear(2)
    model = lamina.Model([layer])
    model.predict(np.ones((3, 4)))  # inference: no tape
    assert "_tape" not in vars(layer)
    layer(np.ones((3, 4)))  # a direct call records, in either mode (as PyTorch outside no_grad)
    assert "_tape" in vars(layer)
    layer.release()
    assert "_tape" not in vars(layer)
    model.train(np.ones((3, 4)), np.ones((3, 2)), epochs=1, verbose=False)
    assert "_tape" not in vars(layer)  # training releases the last step's graph


def test_inference_mode_gradients_of_a_forward_only_layer_with_dropout():
    class Noisy(lamina.Layer):
        def __init__(self):
            self.dense = ForwardLinear(3)
            self.drop = lamina.layer("Dropout", 0.5)

        def forward(self, x):
            return self.drop(np.tanh(self.dense(x)))

    layer, x = Noisy(), RNG.normal(size=(4, 3))
    layer.training = True
    layer(x)
    for training in (True, False):  # inference: Dropout is the identity, and the gradient says so
        errors = check_layer_gradients(layer, x, training=training)
        assert max(errors.values()) < 1e-7, (training, errors)


def test_hand_written_sublayers_see_plain_arrays_and_parameters():
    class Hand(lamina.Layer):  # uses its Parameter as an operand, as the docs allow
        def build(self, x):
            self.w = lamina.Parameter(RNG.normal(size=(x.shape[-1], 3)))

        def forward(self, x):
            assert type(x) is np.ndarray
            self._x = x
            return x @ self.w

        def backward(self, grad):
            self.w.grad += self._x.T @ grad
            return grad @ self.w.value.T

    class Outer(lamina.Layer):
        def __init__(self):
            self.hand = Hand()
            self.block = lamina.layer("Sequential", [Hand(), "Tanh"])

        def forward(self, x):
            return self.block(self.hand(x)) * x

    layer, x = Outer(), RNG.normal(size=(4, 3))
    layer(x)
    assert max(check_layer_gradients(layer, x).values()) < 1e-7


def test_one_instance_twice_is_shared_in_a_chain_but_refused_across_parallel_branches():
    tanh = lamina.layer("Tanh")
    model = lamina.Model([tanh, lamina.layer("Linear", 2), tanh])
    assert model.layers[0] is model.layers[2]
    assert lamina.layer("Sequential", [tanh, tanh]).layers[0] is tanh
    inner = lamina.layer("Linear", 2)
    with pytest.raises(lamina.ArgumentError, match="uses the same Linear instance"):
        lamina.layer("Parallel", [[inner], [lamina.layer("Residual", [inner])]])


@pytest.mark.parametrize("forward, message", [
    (lambda self, x: np.sum(x, where=x > 0),
     r"np.sum\(where=...\) on a traced array: lamina's rule takes only axis, keepdims"),
    (lambda self, x: np.max(x, initial=10.0), r"np.max\(initial=...\)"),
    (lambda self, x: np.sum(x, dtype=np.float32), r"np.sum\(dtype=...\)"),
    (lambda self, x: np.einsum("ij,jk->ik", x[:, :1], np.ones((3, 2))), "broadcasts an index of size 1"),
    (lambda self, x: np.clip(x, np.zeros((5, 4, 3)), 1.0), "would widen the traced array"),
    (lambda self, x: x.argsort(), r"no method .argsort\(\)"),
])
def test_what_a_rule_cannot_honour_is_refused(forward, message):
    layer = type("Odd", (lamina.Layer,), {"forward": forward})()
    with pytest.raises(lamina.LaminaError, match=message):
        layer(np.ones((4, 3)))


def test_array_methods_and_orders():
    cases = {
        "transpose-negative-axes": (lambda x, w: np.transpose(x * w, (0, -1, 1)), (2, 3, 4), (4,)),
        "reshape-order-F": (lambda x, w: np.reshape(x * w, (4, 3), order="F") @ np.arange(3.0), (3, 4), (4,)),
        "astype-ravel-flatten-clip": (lambda x, w: (x * w).astype(np.float64).ravel()
                                      + x.flatten() * x.clip(-0.5, 0.5).ravel(), (2, 3), (3,)),
    }
    for name, (f, x_shape, w_shape) in cases.items():
        errors = check_layer_gradients(Expression(f, w_shape), RNG.normal(size=x_shape))
        assert max(errors.values()) < 1e-7, (name, errors)


def test_returned_input_gradients_are_writable_and_not_the_callers_array():
    class Shift(lamina.Layer):
        def forward(self, x):
            return x + 1.0

    class Spread(lamina.Layer):
        def forward(self, x):
            return np.sum(x, axis=1, keepdims=True) * np.ones((1, 3))

    for layer, shape in ((Shift(), (2, 3)), (Spread(), (2, 3))):
        layer(np.ones(shape))
        grad = np.ones(shape)
        dx = layer.backward(grad)
        assert dx.flags.writeable and dx is not grad


def test_a_forward_only_loss_records_nothing_in_evaluate():
    class Square(lamina.Loss):
        def forward(self, pred, y):
            return np.mean((pred - y) ** 2)

    loss = Square()
    model = lamina.Model([lamina.layer("Linear", 1)])
    model.evaluate(np.ones((4, 2)), np.ones((4, 1)), loss=loss)
    assert "_tape" not in vars(loss)


def test_float32_stays_float32():
    fresh = ForwardSoftmax()
    fresh.training = True
    out = fresh(np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32 and fresh.backward(np.ones((2, 3), dtype=np.float32)).dtype == np.float32


def test_the_supported_list_names_what_the_rules_cover():
    for name in ("np.exp", "np.matmul", "np.sum", "np.concatenate", "np.where", "np.einsum"):
        assert name in SUPPORTED
