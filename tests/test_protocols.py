"""Parameter, Layer, Loss and Optimizer: the contracts plugins build on, and the built-ins' details."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import MSE, SGD, Linear, Relu, Sigmoid, Softmax, Tanh
from lamina.testing import cases_for

# -- Parameter ---------------------------------------------------------------------------------


def test_parameter_grad_is_zeros_of_the_same_shape_and_dtype():
    p = lamina.Parameter(np.ones((2, 3), dtype=np.float64))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float64 and not p.grad.any()
    p.grad += 1
    p.zero_grad()
    assert not p.grad.any()


def test_parameter_integer_values_become_float32_and_strings_are_rejected():
    assert lamina.Parameter([1, 2]).value.dtype == np.float32
    with pytest.raises(lamina.ArgumentError, match="Parameter: value must be numeric"):
        lamina.Parameter(["a", "b"])


def test_parameters_hash_by_identity_so_optimizers_can_key_state_on_them():
    a, b = lamina.Parameter(np.zeros(2)), lamina.Parameter(np.zeros(2))
    assert len({a, b}) == 2 and a != b


# -- Layer ---------------------------------------------------------------------------------------


class Scale(lamina.Layer):
    """A subclass that never calls super().__init__()."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def forward(self, x):
        return self.factor * x

    def backward(self, grad):
        return self.factor * grad


def test_a_layer_subclass_needs_no_super_init_and_gets_the_defaults():
    layer = Scale(3.0)
    assert layer.training is False
    assert layer.parameters() == {}
    assert layer(np.array([1.0, 2.0])).tolist() == [3.0, 6.0]
    assert repr(layer) == "Scale(factor=3.0)"
    assert layer.get_config() == {"factor": 3.0}


def test_the_base_layer_says_what_a_subclass_must_implement():
    with pytest.raises(NotImplementedError, match="must implement forward"):
        lamina.Layer()(np.zeros(1))
    with pytest.raises(NotImplementedError, match="must implement backward"):
        lamina.Layer().backward(np.zeros(1))


def test_linear_backward_adds_into_parameter_gradients():
    rng = np.random.default_rng(0)
    layer = Linear(3)
    x, grad = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    layer(x)
    layer.backward(grad)
    once = {k: p.grad.copy() for k, p in layer.parameters().items()}
    layer.backward(grad)
    for name, param in layer.parameters().items():
        np.testing.assert_allclose(param.grad, 2 * once[name])


def test_linear_parameters_have_the_documented_names_and_shapes():
    layer = Linear(5)
    assert layer.parameters() == {}  # built on the first input
    out = layer(np.zeros((7, 3), dtype=np.float32))
    params = layer.parameters()
    assert set(params) == {"weight", "bias"}
    assert params["weight"].shape == (3, 5) and params["bias"].shape == (5,)
    assert out.shape == (7, 5)
    x = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x @ params["weight"].value + params["bias"].value)


@pytest.mark.parametrize(
    "given, expected",
    [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float32), (np.bool_, np.float32)],
)
def test_linear_parameters_take_the_floating_dtype_of_the_first_input(given, expected):
    layer = Linear(2)
    out = layer(np.ones((3, 4), dtype=given))
    assert layer.weight.value.dtype == expected and layer.bias.value.dtype == expected
    assert out.dtype == expected


def test_linear_initialisation_is_he_uniform_with_zero_bias():
    lamina.seed(0)
    layer = Linear(400)
    layer(np.zeros((1, 300)))
    weight = layer.weight.value
    limit = np.sqrt(6 / 300)
    assert np.abs(weight).max() <= limit and np.abs(weight).max() > 0.99 * limit
    assert abs(weight.mean()) < 0.01  # centred, unlike the blog post's uniform [0, 1)
    assert weight.std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)
    assert not layer.bias.value.any()


@pytest.mark.parametrize("units", [0, -1, 2.5, "8", True, None])
def test_linear_units_must_be_a_positive_int(units):
    with pytest.raises(lamina.ArgumentError) as info:
        Linear(units)
    assert str(info.value).startswith(f"Linear(units={units!r}): units must be a positive int")
    assert "e.g. Linear(units=8)" in str(info.value)


@pytest.mark.parametrize("layer_cls", [Sigmoid, Relu, Tanh, Softmax])
def test_activations_keep_shape_and_dtype(layer_cls):
    x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    layer = layer_cls()
    y = layer(x)
    assert y.shape == x.shape and y.dtype == np.float32
    g = layer.backward(np.ones_like(y))
    assert g.shape == x.shape and g.dtype == np.float32


def test_sigmoid_is_the_logistic_function_and_stays_finite_for_large_inputs():
    x = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
    # The tanh form is exact to float64 rounding in absolute terms (its relative accuracy in
    # the far tail, ~1e-13, is what the speed of np.tanh costs).
    np.testing.assert_allclose(Sigmoid()(x[1:-1]), 1 / (1 + np.exp(-x[1:-1])), rtol=1e-12, atol=1e-16)
    y = Sigmoid()(x)
    assert np.isfinite(y).all() and y[0] == 0.0 and y[-1] == 1.0


def test_softmax_rows_sum_to_one():
    y = Softmax()(np.random.default_rng(0).normal(size=(6, 4)) * 10)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0)


# -- Loss ----------------------------------------------------------------------------------------


def test_mse_value_matches_the_blog_posts_example():
    assert MSE()(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(8 / 3)


def test_mse_rejects_shapes_that_would_broadcast_with_a_reshape_hint():
    with pytest.raises(lamina.ShapeError) as info:
        MSE()(np.zeros((4, 1)), np.zeros(4))
    message = str(info.value)
    assert "MSE: pred has shape (4, 1) but y has shape (4,)" in message
    assert "y.reshape(4, 1)" in message


def test_mse_gradient_has_the_dtype_of_pred_even_for_integer_targets():
    loss = MSE()
    loss(np.ones((2, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.int64))
    assert loss.backward().dtype == np.float32


def test_mse_rejects_non_numeric_targets():
    with pytest.raises(lamina.ArgumentError, match="MSE: y must be numeric"):
        MSE()(np.zeros(2), np.array(["a", "b"]))


# -- Optimizer -----------------------------------------------------------------------------------


def test_sgd_updates_values_in_place():
    p = lamina.Parameter(np.array([1.0, 2.0], dtype=np.float32))
    value = p.value
    p.grad[:] = [0.5, -1.0]
    SGD(lr=0.1).step([p])
    assert p.value is value
    np.testing.assert_allclose(value, [0.95, 2.1])
    assert value.dtype == np.float32


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None])
def test_sgd_lr_must_be_a_positive_number(lr):
    with pytest.raises(lamina.ArgumentError, match=r"SGD\(lr=.*\): lr must be a positive number"):
        SGD(lr=lr)


class Momentum(lamina.Optimizer):
    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr

    def update(self, param, state):
        state["v"] = 0.9 * state.get("v", 0.0) + param.grad
        param.value -= self.lr * state["v"]


def test_optimizer_state_is_kept_per_parameter_between_steps():
    a, b = lamina.Parameter(np.zeros(1)), lamina.Parameter(np.zeros(1))
    a.grad[:] = 1.0
    b.grad[:] = 2.0
    optim = Momentum()
    optim.step({"a": a, "b": b})
    optim.step([a, b])
    np.testing.assert_allclose(optim.state_for(a)["v"], [1.9])
    np.testing.assert_allclose(optim.state_for(b)["v"], [3.8])
    np.testing.assert_allclose(a.value, [-0.1 - 0.19])


def test_optimizer_step_rejects_things_that_are_not_parameters():
    with pytest.raises(lamina.ArgumentError, match="expected lamina.Parameter objects"):
        SGD().step([np.zeros(2)])


def test_seed_must_be_a_non_negative_int():
    for bad in (-1, 1.5, "0", None):
        with pytest.raises(lamina.ArgumentError, match="lamina.seed"):
            lamina.seed(bad)


# -- forward-only plugins, as the hookspecs and base classes describe them ------------------------------


def _docstring_example(cls: type) -> dict:
    """Run the `>>>` lines of a class's docstring; the names they define."""
    lines = [line.strip()[4:] for line in (cls.__doc__ or "").splitlines() if line.strip()[:4] in (">>> ", "... ")]
    namespace: dict = {"np": np, cls.__name__: cls}
    exec("\n".join(lines), namespace)
    return namespace


class ForwardOnlyDense(lamina.Layer):
    """What register_layers' docstring promises is enough: forward, and weights made in build."""

    def build(self, x):
        self.weight = lamina.Parameter(lamina.rng().normal(size=(x.shape[-1], 2)).astype(x.dtype))

    def forward(self, x):
        return np.tanh(x @ self.weight)


def test_forward_only_layers_and_losses_get_their_backward_derived_and_train():
    loss = _docstring_example(lamina.Loss)["MeanAbs"]()  # the Loss docstring's example, as written
    assert type(loss).backward is lamina.Loss.backward  # no backward written
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    assert lamina.testing.check_loss_gradients(loss, pred, y) < 1e-6
    lamina.seed(0)
    layer = ForwardOnlyDense()
    errors = lamina.testing.check_layer_gradients(layer, rng.normal(size=(4, 3)))
    assert set(errors) == {"input", "weight"} and max(errors.values()) < 1e-6
    model = lamina.Model([ForwardOnlyDense()])
    x = rng.normal(size=(32, 3))
    history = model.train(x, np.tanh(x @ rng.normal(size=(3, 2))), loss=loss, optim=SGD(lr=0.5), epochs=30,
                          verbose=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]


# -- backward before forward -----------------------------------------------------------------------


def test_backward_before_forward_is_a_lamina_error_naming_the_layer_for_every_built_in():
    for info in lamina.get_registry().plugins("layer"):
        if info.package != "lamina":
            continue
        layer = info.cls(**cases_for(info.cls)[0].kwargs)
        with pytest.raises(lamina.LaminaError, match=f"{info.cls.__name__}.*backward was called before forward"):
            layer.backward(np.ones((4, 3)))
