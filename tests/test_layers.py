"""The image and deep-network layers: agreement with PyTorch, behaviour, and errors."""
from __future__ import annotations

import numpy as np
import pytest

import lamina

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
RNG = np.random.default_rng(0)


def t(a, grad=False):
    tensor = torch.from_numpy(np.array(a))
    return tensor.requires_grad_() if grad else tensor


def forward_backward(layer, x, training=True):
    layer.training = training
    y = layer(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    return y, g, layer.backward(g)


@needs_torch
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=4, kernel_size=3),
        dict(filters=3, kernel_size=(2, 3), stride=2, padding=1),
        dict(filters=2, kernel_size=3, padding="same", dilation=2),
        dict(filters=5, kernel_size=(3, 1), stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
        dict(filters=2, kernel_size=4, padding="valid", stride=3),
    ],
)
def test_conv2d_matches_torch(kwargs):
    x = RNG.normal(size=(3, 2, 9, 8))
    layer = lamina.layer("Conv2D", bias_init="normal", **kwargs)
    y, g, dx = forward_backward(layer, x)
    w, b = layer.weight.value, layer.bias.value
    tx, tw, tb = t(x, True), t(w, True), t(b, True)
    padding = kwargs.get("padding", 0)
    ty = F.conv2d(tx, tw, tb, stride=kwargs.get("stride", 1), padding=padding, dilation=kwargs.get("dilation", 1))
    ty.backward(t(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-10)


@needs_torch
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, stride", [(2, None), (3, 2), ((2, 3), (1, 2)), (3, 1)])
def test_pooling_matches_torch(kind, pool, stride):
    x = RNG.normal(size=(2, 3, 9, 10))
    layer = lamina.layer("MaxPool2D" if kind == "max" else "AvgPool2D", pool, stride=stride)
    y, g, dx = forward_backward(layer, x)
    tx = t(x, True)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    ty = fn(tx, pool, stride=stride)
    ty.backward(t(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_max_pool_gives_a_tied_window_gradient_to_one_input():
    x = np.zeros((1, 1, 2, 2))
    layer = lamina.layer("MaxPool2D", 2)
    layer(x)
    assert layer.backward(np.ones((1, 1, 1, 1))).tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_global_average_pool_flatten_and_reshape():
    x = RNG.normal(size=(2, 3, 4, 5))
    pool = lamina.layer("GlobalAvgPool2D")
    np.testing.assert_allclose(pool(x), x.mean(axis=(2, 3)))
    assert lamina.layer("Flatten")(x).shape == (2, 60)
    reshape = lamina.layer("Reshape", (5, -1))
    assert reshape(x).shape == (2, 5, 12)
    assert reshape.backward(np.ones((2, 5, 12))).shape == x.shape


@needs_torch
@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 4, 2)])
def test_batch_norm_matches_torch_in_training_and_inference(shape):
    layer = lamina.layer("BatchNorm", momentum=0.2, eps=1e-3)
    norm = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    reference = norm(shape[1], momentum=0.2, eps=1e-3).double()
    for step in range(3):
        x = RNG.normal(size=shape) * (step + 1) + step
        y, g, dx = forward_backward(layer, x, training=True)
        tx = t(x, True)
        ty = reference.train()(tx)
        ty.backward(t(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, reference.weight.grad.numpy(), rtol=1e-10)
        reference.zero_grad()
        layer.zero_grad()
    np.testing.assert_allclose(layer.running_mean, reference.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, reference.running_var.numpy(), rtol=1e-12)
    x = RNG.normal(size=shape)
    y, g, dx = forward_backward(layer, x, training=False)
    tx = t(x, True)
    ty = reference.eval()(tx)
    ty.backward(t(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@needs_torch
def test_layer_norm_matches_torch():
    x = RNG.normal(size=(3, 4, 6))
    layer = lamina.layer("LayerNorm", eps=1e-4)
    layer(x)
    layer.weight.value[:] = RNG.normal(size=6)
    y, g, dx = forward_backward(layer, x)
    tx, tw = t(x, True), t(layer.weight.value, True)
    ty = F.layer_norm(tx, (6,), tw, t(layer.bias.value), eps=1e-4)
    ty.backward(t(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-10)


@needs_torch
@pytest.mark.parametrize(
    "name, kwargs, reference",
    [
        ("LeakyRelu", {"alpha": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
        ("Elu", {"alpha": 0.7}, lambda x: F.elu(x, 0.7)),
        ("Gelu", {}, lambda x: F.gelu(x)),
        ("Gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh")),
        ("Softplus", {}, lambda x: F.softplus(x)),
        ("Silu", {}, lambda x: F.silu(x)),
        ("LogSoftmax", {}, lambda x: F.log_softmax(x, dim=-1)),
    ],
)
def test_activations_match_torch(name, kwargs, reference):
    x = RNG.normal(size=(4, 5)) * 3
    y, g, dx = forward_backward(lamina.layer(name, **kwargs), x)
    tx = t(x, True)
    ty = reference(tx)
    ty.backward(t(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["Softplus", "LogSoftmax", "Silu", "Elu", "Gelu"])
def test_activations_stay_finite_and_silent_for_huge_inputs(name):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]])
    with np.errstate(all="raise", under="ignore"):
        y, g, dx = forward_backward(lamina.layer(name), x)
    assert np.isfinite(y).all() and np.isfinite(dx).all()


@needs_torch
def test_embedding_matches_torch_with_repeated_ids():
    layer = lamina.layer("Embedding", 6, 3, dtype="float64")
    ids = np.array([[0, 5, 5], [2, 0, 5]])
    y, g, dx = forward_backward(layer, ids)
    assert dx is None and y.shape == (2, 3, 3)
    tw = t(layer.weight.value, True)
    F.embedding(t(ids), tw).backward(t(g))
    np.testing.assert_allclose(y, F.embedding(t(ids), tw).detach().numpy())
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-12)


def test_dropout_is_inverted_seeded_and_the_identity_in_inference():
    x = np.ones((200, 100), dtype=np.float32)
    layer = lamina.layer("Dropout", 0.3)
    assert layer(x) is x  # inference
    layer.training = True
    lamina.seed(5)
    y = layer(x)
    assert y.dtype == np.float32
    assert abs((y == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # the expectation is kept
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)  # same mask
    lamina.seed(5)
    np.testing.assert_array_equal(layer(x), y)


def test_the_first_layer_skips_its_input_gradient_in_training():
    model = lamina.Model([lamina.layer("Conv2D", 2, 3), lamina.layer("Flatten"), lamina.layer("Linear", 2)])
    x = RNG.normal(size=(2, 1, 5, 5))
    model.set_training(True)
    assert [layer.needs_input_grad for layer in model.layers] == [False, True, True]
    model.forward(x)
    assert model.backward(np.ones((2, 2))) is None
    model.set_training(False)
    assert all(layer.needs_input_grad for layer in model.layers)


def test_an_embedding_model_trains_on_integer_ids():
    lamina.seed(0)
    ids = np.random.default_rng(0).integers(0, 10, size=(200, 3))
    labels = (ids[:, 0] >= 5).astype(np.int64) + (ids[:, 2] >= 5)  # three classes from two ids
    model = lamina.Model([
        lamina.layer("Embedding", 10, 4), lamina.layer("Flatten"),
        lamina.layer("Linear", 16), lamina.layer("Relu"), lamina.layer("Linear", 3),
    ])
    history = model.train(ids, labels, optim=lamina.optimizer("Adam", lr=0.01),
                          loss=lamina.loss("CrossEntropy", from_logits=True),
                          epochs=30, batch_size=32, metrics=["accuracy"], verbose=False)
    assert history["accuracy"][-1] > 0.95
    assert model.predict(ids[:5]).shape == (5, 3)


def test_a_cnn_trains_and_batch_norm_uses_running_statistics_in_inference():
    lamina.seed(0)
    x, y, _, _ = lamina.dataset("digits", flatten=False)
    model = lamina.Model([
        lamina.layer("Conv2D", 8, 3, padding="same"), lamina.layer("BatchNorm"), lamina.layer("Relu"),
        lamina.layer("MaxPool2D", 2), lamina.layer("Flatten"), lamina.layer("Dropout", 0.2),
        lamina.layer("Linear", 10),
    ])
    history = model.train(x[:400], y[:400], optim=lamina.optimizer("Adam", lr=0.01),
                          loss=lamina.loss("CrossEntropy", from_logits=True), epochs=10, batch_size=32,
                          metrics=["accuracy"], verbose=False)
    assert history["accuracy"][-1] > 0.85
    bn = model.layers[1]
    assert not np.allclose(bn.running_mean, 0)
    first, second = model.predict(x[:50]), model.predict(x[:50])
    np.testing.assert_array_equal(first, second)  # inference: no dropout, fixed statistics


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, x, error, message",
    [
        (lambda: lamina.layer("Conv2D", 4, 3), np.zeros((2, 8, 8)), lamina.ShapeError,
         "Conv2D(filters=4) expects images laid out as (batch, channels, height, width), got shape (2, 8, 8)"),
        (lambda: lamina.layer("MaxPool2D", 2), np.zeros((2, 16)), lamina.ShapeError,
         "MaxPool2D(pool_size=2) expects images laid out as (batch, channels, height, width), got shape (2, 16)"),
        (lambda: lamina.layer("Conv2D", 4, 5, padding=1), np.zeros((1, 1, 2, 2)), lamina.ShapeError,
         "the height of the (padded) input is 4, smaller than the window of 5"),
        (lambda: lamina.layer("AvgPool2D", 3), np.zeros((1, 1, 2, 6)), lamina.ShapeError,
         "the height of the (padded) input is 2, smaller than the window of 3"),
        (lambda: lamina.layer("Embedding", 5, 2), np.array([0.5, 1.0]), lamina.ArgumentError,
         "Embedding: ids must hold integer indices"),
        (lambda: lamina.layer("Embedding", 5, 2), np.array([0, 5]), lamina.ArgumentError,
         "Embedding(num_embeddings=5): ids must be in [0, 5), got values from 0 to 5"),
        (lambda: lamina.layer("Reshape", (7,)), np.zeros((2, 6)), lamina.ShapeError,
         "each sample of the input (2, 6) has 6 values, which do not fit the shape (7,)"),
        (lambda: lamina.layer("BatchNorm"), np.zeros((1, 3)), lamina.ShapeError,
         "BatchNorm in training needs more than one value per channel"),
    ],
)
def test_bad_inputs_name_the_layer_and_the_shapes(make, x, error, message):
    layer = make()
    layer.training = True
    with pytest.raises(error) as info:
        layer(x)
    assert message in str(info.value)


def test_conv2d_channel_mismatch_after_building():
    layer = lamina.layer("Conv2D", 2, 3)
    layer(np.zeros((1, 3, 5, 5)))
    with pytest.raises(lamina.ShapeError, match=r"built for 3 input channels \(axis 1\) but got shape \(1, 1, 5, 5\)"):
        layer(np.zeros((1, 1, 5, 5)))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: lamina.layer("Dropout", 1.0), "Dropout(rate=1.0): rate must be a number in [0, 1)"),
        (lambda: lamina.layer("Dropout", -0.1), "rate must be a number in [0, 1)"),
        (lambda: lamina.layer("Conv2D", 4, 0), "kernel_size must be an int >= 1 or a pair of them"),
        (lambda: lamina.layer("Conv2D", 4, 3, stride=2, padding="same"), "'same' padding needs stride=1"),
        (lambda: lamina.layer("Conv2D", 4, 3, padding=-1), "padding must be an int >= 0"),
        (lambda: lamina.layer("MaxPool2D", (2, 2, 2)), "pool_size must be an int >= 1 or a pair of them"),
        (lambda: lamina.layer("Gelu", approximate="erf"), "approximate must be 'none' (exact, with erf) or 'tanh'"),
        (lambda: lamina.layer("Reshape", (2, -1, -1)), "at most one -1"),
        (lambda: lamina.layer("Embedding", 0, 4), "num_embeddings must be a positive int"),
        (lambda: lamina.layer("BatchNorm", momentum=1.5), "momentum must be a number in [0, 1]"),
    ],
)
def test_bad_hyper_parameters_are_named(make, message):
    with pytest.raises(lamina.ArgumentError) as info:
        make()
    assert message in str(info.value)


def test_a_model_with_wrong_image_input_names_the_position():
    model = lamina.Model([lamina.layer("Linear", 64), lamina.layer("Conv2D", 2, 3)])
    with pytest.raises(lamina.ShapeError, match=r"Model.layers\[1\] \(Conv2D\): Conv2D\(filters=2\) expects images"):
        model(np.zeros((2, 10)))


# -- activations at magnitude 1e4 ------------------------------------------------------------------


HUGE = np.array([[-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["Sigmoid", "Softplus", "Softmax", "LogSoftmax", "Silu", "Elu", "Gelu", "Tanh"])
def test_activations_are_finite_and_silent_at_magnitude_1e4(name, dtype):
    layer = lamina.layer(name)
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        y = layer(HUGE.astype(dtype))
        g = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(g).all() and y.dtype == dtype
