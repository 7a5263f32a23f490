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


def _sequence(rng):
    return rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5))))


def _shape(rng: np.random.Generator) -> tuple[int, int]:
    """A random (batch, features) shape, batch 1 included."""
    return int(rng.integers(1, 6)), int(rng.integers(1, 7))


def _normal(rng):
    return rng.normal(size=_shape(rng))


def _away_from_zero(rng):
    # Relu's derivative jumps at 0; keep inputs where the finite difference is valid.
    x = _normal(rng)
    return np.sign(x) * (0.1 + np.abs(x))


def _images(rng, channels=None):
    n, c = int(rng.integers(1, 3)), channels or int(rng.integers(1, 3))
    return rng.normal(size=(n, c, int(rng.integers(5, 8)), int(rng.integers(5, 8))))


def _distinct_images(rng):
    # MaxPool's derivative jumps where two window values swap order; keep them 0.01 apart.
    x = _images(rng)
    return (rng.permutation(x.size).reshape(x.shape) * 0.01).astype(np.float64)


def _conv(rng):
    padding = [0, 1, (1, 0), "valid", "same"][int(rng.integers(0, 5))]
    stride = 1 if padding == "same" else int(rng.integers(1, 3))
    return lamina.layer(
        "Conv2D",
        filters=int(rng.integers(1, 4)),
        kernel_size=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
        stride=stride,
        padding=padding,
        dilation=int(rng.integers(1, 3)),
        bias_init="normal",
    )


def _sequence_of(features):
    return lambda rng: rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 4)), features))


def _signals(rng, channels=None):
    n, c = int(rng.integers(1, 3)), channels or int(rng.integers(1, 4))
    return rng.normal(size=(n, c, int(rng.integers(8, 13))))


def _distinct_signals(rng):
    # MaxPool's derivative jumps where two window values swap order; keep them 0.01 apart.
    x = _signals(rng)
    return (rng.permutation(x.size).reshape(x.shape) * 0.01).astype(np.float64)


def _conv1d(rng):
    padding = [0, 1, 2, "valid", "same"][int(rng.integers(0, 5))]
    stride = 1 if padding == "same" else int(rng.integers(1, 3))
    return lamina.layer(
        "Conv1D",
        filters=int(rng.integers(1, 4)),
        kernel_size=int(rng.integers(1, 4)),
        stride=stride,
        padding=padding,
        dilation=int(rng.integers(1, 3)),
        bias_init="normal",
    )


def _batch(rng):
    return rng.normal(size=(int(rng.integers(2, 6)), int(rng.integers(1, 5))))


def _merged(*widths):
    """A list of inputs for a merge layer: one per width, the other axes drawn once for all."""
    def make(rng):
        rows, steps = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        return [rng.normal(size=(rows, steps, width)) for width in widths]
    return make


# qualified name -> [(layer factory, input factory), ...]; the meta-test below keeps this complete.
# An input factory returns a list of arrays for a layer that takes a list (a merge layer).
LAYER_CASES = {
    "lamina:Concatenate": [(lambda rng: lamina.layer("Concatenate"), _merged(2, 3, 1)),
                           (lambda rng: lamina.layer("Concatenate", axis=1), _merged(2, 2))],
    "lamina:Add": [(lambda rng: lamina.layer("Add"), _merged(3, 3))],
    "lamina:Multiply": [(lambda rng: lamina.layer("Multiply"), _merged(2, 2, 2))],
    "lamina:Average": [(lambda rng: lamina.layer("Average"), _merged(4, 4, 4))],
    "lamina:Linear": [(lambda rng: Linear(int(rng.integers(1, 6))), _normal), (lambda rng: Linear(3), _sequence)],
    "lamina:Sigmoid": [(lambda rng: Sigmoid(), _normal)],
    "lamina:Relu": [(lambda rng: Relu(), _away_from_zero)],
    "lamina:Tanh": [(lambda rng: Tanh(), _normal)],
    "lamina:Softmax": [(lambda rng: Softmax(), lambda rng: 3 * _normal(rng))],
    "lamina:LeakyRelu": [(lambda rng: lamina.layer("LeakyRelu", alpha=0.1), _away_from_zero)],
    "lamina:Elu": [(lambda rng: lamina.layer("Elu", alpha=1.5), _away_from_zero)],
    "lamina:Gelu": [(lambda rng: lamina.layer("Gelu"), _sequence),
                    (lambda rng: lamina.layer("Gelu", approximate="tanh"), _normal)],
    "lamina:Softplus": [(lambda rng: lamina.layer("Softplus"), lambda rng: 4 * _normal(rng))],
    "lamina:Silu": [(lambda rng: lamina.layer("Silu"), _normal)],
    "lamina:LogSoftmax": [(lambda rng: lamina.layer("LogSoftmax"), lambda rng: 3 * _sequence(rng))],
    "lamina:Conv2D": [(_conv, _images), (_conv, _images), (_conv, _images)],
    "lamina:MaxPool2D": [
        (lambda rng: lamina.layer("MaxPool2D", 2), _distinct_images),
        (lambda rng: lamina.layer("MaxPool2D", 3, stride=1), _distinct_images),
        (lambda rng: lamina.layer("MaxPool2D", (2, 3), stride=(1, 2)), _distinct_images),
    ],
    "lamina:AvgPool2D": [
        (lambda rng: lamina.layer("AvgPool2D", 2), _images),
        (lambda rng: lamina.layer("AvgPool2D", (3, 2), stride=1), _images),
    ],
    "lamina:GlobalAvgPool2D": [(lambda rng: lamina.layer("GlobalAvgPool2D"), _images)],
    "lamina:Flatten": [(lambda rng: lamina.layer("Flatten"), _images)],
    "lamina:Reshape": [(lambda rng: lamina.layer("Reshape", (-1, 2)), lambda rng: rng.normal(size=(3, 2, 4)))],
    "lamina:Dropout": [(lambda rng: lamina.layer("Dropout", 0.3), _normal)],
    "lamina:RandomFlip": [
        (lambda rng: lamina.layer("RandomFlip", p=0.7), _images),
        (lambda rng: lamina.layer("RandomFlip", "both", p=0.7), _images),
        (lambda rng: lamina.layer("RandomFlip", "vertical", p=1.0), _images),
        (lambda rng: lamina.layer("RandomFlip", p=1.0), _signals),
    ],
    "lamina:RandomCrop": [
        (lambda rng: lamina.layer("RandomCrop", 4, padding=int(rng.integers(0, 3))), _images),
        (lambda rng: lamina.layer("RandomCrop", (5, 3), padding=(1, 2)), _images),
        (lambda rng: lamina.layer("RandomCrop", 8, padding=2), _images),  # inference: the center, padding included
    ],
    "lamina:RandomTranslation": [
        (lambda rng: lamina.layer("RandomTranslation", int(rng.integers(1, 4))), _images),
        (lambda rng: lamina.layer("RandomTranslation", (2, 0)), _images),
    ],
    "lamina:GaussianNoise": [(lambda rng: lamina.layer("GaussianNoise", 0.5), _normal),
                             (lambda rng: lamina.layer("GaussianNoise", 0.1), _images)],
    "lamina:RandomErasing": [
        (lambda rng: lamina.layer("RandomErasing", p=1.0), _images),
        (lambda rng: lamina.layer("RandomErasing", scale=(0.1, 0.6), value=0.5), _images),
    ],
    "lamina:BatchNorm": [(lambda rng: lamina.layer("BatchNorm"), _batch),
                         (lambda rng: lamina.layer("BatchNorm"), lambda rng: _images(rng) + 1)],
    "lamina:LayerNorm": [(lambda rng: lamina.layer("LayerNorm"), lambda rng: rng.normal(size=(3, 4))),
                         (lambda rng: lamina.layer("LayerNorm"), _sequence)],
    "lamina:Normalization": [
        (lambda rng: lamina.layer("Normalization", mean=rng.normal(size=3).tolist(),
                                  variance=rng.uniform(0.2, 5.0, size=3).tolist()),
         lambda rng: rng.normal(size=(4, 3))),
        (lambda rng: lamina.layer("Normalization", axis=[1, -1], mean=2.0,
                                  variance=rng.uniform(0.2, 5.0, size=(2, 1)).tolist()),
         lambda rng: rng.normal(size=(3, 2, 4, 5))),
    ],
    "lamina:Embedding": [(lambda rng: lamina.layer("Embedding", 7, 3, dtype="float64"),
                          lambda rng: rng.integers(0, 7, size=(4, 3)))],
    "lamina:Sequential": [
        (lambda rng: lamina.layer("Sequential", [Linear(4), Tanh(), Linear(2), "Softmax"]), _normal),
        (lambda rng: lamina.layer("Sequential",
                                  [{"type": "Embedding", "num_embeddings": 7, "dim": 3, "dtype": "float64"},
                                   Linear(2)]),
         lambda rng: rng.integers(0, 7, size=(4, 3))),
    ],
    "lamina:Residual": [
        (lambda rng: lamina.layer("Residual", [Linear(5), Tanh(), Linear(3)]), lambda rng: rng.normal(size=(4, 3))),
        (lambda rng: lamina.layer("Residual", [{"type": "Residual", "layers": [Linear(4), Sigmoid()]}, "LayerNorm"]),
         _sequence_of(4)),
    ],
    "lamina:Conv1D": [(_conv1d, _signals), (_conv1d, _signals), (_conv1d, _signals)],
    "lamina:MaxPool1D": [
        (lambda rng: lamina.layer("MaxPool1D", 2), _distinct_signals),
        (lambda rng: lamina.layer("MaxPool1D", 3, stride=1), _distinct_signals),
        (lambda rng: lamina.layer("MaxPool1D", 3, stride=2), _distinct_signals),
    ],
    "lamina:AvgPool1D": [
        (lambda rng: lamina.layer("AvgPool1D", 2), _signals),
        (lambda rng: lamina.layer("AvgPool1D", 3, stride=1), _signals),
    ],
    "lamina:GlobalAvgPool1D": [(lambda rng: lamina.layer("GlobalAvgPool1D"), _signals)],
    "lamina:GlobalMaxPool1D": [(lambda rng: lamina.layer("GlobalMaxPool1D"), _distinct_signals)],
    "lamina:RNN": [
        (lambda rng: lamina.layer("RNN", int(rng.integers(1, 5))), _sequence),
        (lambda rng: lamina.layer("RNN", 3, nonlinearity="relu", return_sequences=True, bidirectional=True), _sequence),
    ],
    "lamina:LSTM": [
        (lambda rng: lamina.layer("LSTM", int(rng.integers(1, 5))), _sequence),
        (lambda rng: lamina.layer("LSTM", 2, bidirectional=True), _sequence),
        (lambda rng: lamina.layer("LSTM", 3, return_sequences=True, bidirectional=True), _sequence),
    ],
    "lamina:GRU": [
        (lambda rng: lamina.layer("GRU", int(rng.integers(1, 5))), _sequence),
        (lambda rng: lamina.layer("GRU", 2, bidirectional=True), _sequence),
        (lambda rng: lamina.layer("GRU", 3, return_sequences=True, bidirectional=True), _sequence),
    ],
    "lamina:MultiHeadAttention": [
        (lambda rng: lamina.layer("MultiHeadAttention", 2),
         lambda rng: rng.normal(size=(int(rng.integers(1, 3)), int(rng.integers(1, 5)), 4))),
        (lambda rng: lamina.layer("MultiHeadAttention", 3, causal=True),
         lambda rng: rng.normal(size=(2, int(rng.integers(1, 5)), 6))),
    ],
    "lamina:TransformerBlock": [
        (lambda rng: lamina.layer("TransformerBlock", 2, 5, dropout=0.0),
         lambda rng: rng.normal(size=(2, int(rng.integers(1, 4)), 4))),
        (lambda rng: lamina.layer("TransformerBlock", 1, 3, dropout=0.0, causal=True, norm_first=False,
                                  activation="relu"),
         lambda rng: rng.normal(size=(2, 3, 3))),
    ],
    "lamina:PositionalEmbedding": [(lambda rng: lamina.layer("PositionalEmbedding", 6), _sequence)],
    "lamina:SinusoidalPositions": [(lambda rng: lamina.layer("SinusoidalPositions"), _sequence)],
    "lamina:Parallel": [
        (lambda rng: lamina.layer("Parallel", [[Linear(2), Tanh()], [Linear(3)], ["Sigmoid"]]), _normal),
        (lambda rng: lamina.layer("Parallel", [[Linear(3), Tanh()], [Linear(3), Sigmoid()]], merge="mul"), _normal),
        (lambda rng: lamina.layer("Parallel", [[Linear(3)], [Linear(3), Tanh()], ["LayerNorm"]], merge="add"),
         lambda rng: rng.normal(size=(4, 3))),
        (lambda rng: lamina.layer("Parallel", [["Tanh"], [Linear(4)]], axis=-2), _sequence_of(4)),
    ],
}
LAYER_PARAMS = [(name, i) for name, cases in sorted(LAYER_CASES.items()) for i in range(len(cases))]


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
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("name, case", LAYER_PARAMS)
def test_layer_gradients_match_finite_differences(name, case, training, seed):
    lamina.seed(seed)  # weights drawn from lamina's generator: the same whatever ran before
    rng = np.random.default_rng(seed)
    make_layer, make_input = LAYER_CASES[name][case]
    layer = make_layer(rng)
    x = make_input(rng)
    dtype = np.int64 if layer.integer_input else np.float64
    if not training:  # build (and, for BatchNorm, gather running statistics) before checking
        layer.training = True
        layer([np.asarray(item, dtype=dtype) for item in x] if isinstance(x, list) else np.asarray(x, dtype=dtype))
    errors = check_layer_gradients(layer, x, training=training, seed=seed)
    inputs = {f"input.{i}" for i in range(len(x))} if isinstance(x, list) else {"input"}
    assert set(errors) == (inputs - (inputs if layer.integer_input else set())) | set(layer.parameters())
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


# -- a gradient check on float32 weights refuses ---------------------------------------------------


def test_gradient_check_refuses_a_layer_built_in_float32():
    layer = lamina.layer("Linear", 3)
    layer(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(lamina.ArgumentError, match=r"parameters weight \(float32\), bias \(float32\) are not float64"):
        check_layer_gradients(layer, np.random.default_rng(0).normal(size=(2, 4)))
    fresh = lamina.layer("Linear", 3)
    assert max(check_layer_gradients(fresh, np.random.default_rng(0).normal(size=(2, 4))).values()) < 1e-7
