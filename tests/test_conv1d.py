"""Conv1D and the 1-D pools: finite differences, the conformance kit, agreement with PyTorch,
errors, and a small model trained by name, saved and loaded."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins.layers import conv1d
from lamina.plugins.layers.conv1d import AvgPool1D, Conv1D, GlobalAvgPool1D, GlobalMaxPool1D, MaxPool1D
from lamina.testing import check_layer_gradients, check_plugin, format_failures

TOLERANCE = 1e-7
CLASSES = [Conv1D, MaxPool1D, AvgPool1D, GlobalAvgPool1D, GlobalMaxPool1D]

CONV_SETTINGS = [
    dict(filters=3, kernel_size=3),
    dict(filters=2, kernel_size=1),
    dict(filters=2, kernel_size=4, padding="same"),
    dict(filters=3, kernel_size=3, padding="same", dilation=2),
    dict(filters=2, kernel_size=3, stride=2, padding=1),
    dict(filters=4, kernel_size=2, stride=3, padding=2, dilation=3),
    dict(filters=1, kernel_size=(5,), stride=(2,), padding="valid", dilation=(2,)),
]
POOL_SETTINGS = [(2, None), (3, 2), (3, 1), (4, 3), (1, None)]


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Max pooling's derivative jumps where two window values swap order; keep them 0.01 apart.
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01


# -- finite differences --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("kwargs", CONV_SETTINGS, ids=str)
def test_conv1d_gradients_match_finite_differences(kwargs, training, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(9, 13))))
    layer = Conv1D(bias_init="normal", **kwargs)
    errors = check_layer_gradients(layer, x, training=training, seed=seed)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "make",
    [
        *[lambda p=p, s=s: MaxPool1D(p, stride=s) for p, s in POOL_SETTINGS],
        *[lambda p=p, s=s: AvgPool1D(p, stride=s) for p, s in POOL_SETTINGS],
        GlobalAvgPool1D,
        GlobalMaxPool1D,
    ],
)
def test_pool_gradients_match_finite_differences(make, training):
    rng = np.random.default_rng(0)
    x = distinct(rng, (2, 3, int(rng.integers(8, 12))))
    errors = check_layer_gradients(make(), x, training=training)
    assert set(errors) == {"input"} and errors["input"] < TOLERANCE, errors


# -- the conformance kit -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_layer_passes_the_conformance_kit(cls):
    results = check_plugin(cls)
    assert all(r.ok is not False for r in results), format_failures(results)
    assert any(r.property == "shape_error" and r.ok for r in results)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_conformance_cases_stay_valid_as_the_length_grows(cls):
    """The property tests redraw the batch and grow the last axis by up to 3."""
    for case in cls.conformance_cases:
        for extra in range(4):
            for batch in (1, 5):
                shape = (batch, *case.shape[1:-1], case.shape[-1] + extra)
                layer = cls(**case.kwargs)
                assert layer(np.ones(shape)).shape[0] == batch


# -- agreement with PyTorch ----------------------------------------------------------------------


def _forward_backward(layer, x):
    layer.training = True
    y = layer(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    return y, g, layer.backward(g)


def _assert_close(actual, expected):
    """Equal to PyTorch's to 1e-10 in float64."""
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install -e '.[torch]'")


def _t(torch, a, grad=False):
    tensor = torch.from_numpy(np.array(a, dtype=np.float64))
    return tensor.requires_grad_() if grad else tensor


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # PyTorch's, not ours
@pytest.mark.parametrize("kwargs", CONV_SETTINGS, ids=str)
def test_conv1d_matches_torch_conv1d(kwargs):
    torch = _torch()
    x = np.random.default_rng(2).normal(size=(3, 2, 11))
    layer = Conv1D(bias_init="normal", **kwargs)
    y, g, dx = _forward_backward(layer, x)
    reference = torch.nn.Conv1d(
        2, kwargs["filters"], kwargs["kernel_size"], stride=kwargs.get("stride", 1),
        padding=kwargs.get("padding", 0), dilation=kwargs.get("dilation", 1),
    ).double()
    assert layer.weight.shape == tuple(reference.weight.shape) and layer.bias.shape == tuple(reference.bias.shape)
    with torch.no_grad():
        reference.weight.copy_(_t(torch, layer.weight.value))
        reference.bias.copy_(_t(torch, layer.bias.value))
    tx = _t(torch, x, grad=True)
    ty = reference(tx)
    ty.backward(_t(torch, g))
    _assert_close(y, ty.detach().numpy())
    _assert_close(dx, tx.grad.numpy())
    _assert_close(layer.weight.grad, reference.weight.grad.numpy())
    _assert_close(layer.bias.grad, reference.bias.grad.numpy())


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, stride", POOL_SETTINGS)
def test_pools_match_torch(kind, pool, stride):
    torch = _torch()
    x = np.random.default_rng(3).normal(size=(2, 3, 13))
    layer = MaxPool1D(pool, stride=stride) if kind == "max" else AvgPool1D(pool, stride=stride)
    y, g, dx = _forward_backward(layer, x)
    tx = _t(torch, x, grad=True)
    ty = (torch.nn.functional.max_pool1d if kind == "max" else torch.nn.functional.avg_pool1d)(tx, pool, stride=stride)
    ty.backward(_t(torch, g))
    _assert_close(y, ty.detach().numpy())
    _assert_close(dx, tx.grad.numpy())


@pytest.mark.parametrize("cls, name",
                         [(GlobalAvgPool1D, "adaptive_avg_pool1d"), (GlobalMaxPool1D, "adaptive_max_pool1d")])
def test_global_pools_match_torch_adaptive_pools(cls, name):
    torch = _torch()
    x = np.random.default_rng(4).normal(size=(3, 4, 9))
    y, g, dx = _forward_backward(cls(), x)
    tx = _t(torch, x, grad=True)
    ty = getattr(torch.nn.functional, name)(tx, 1)[:, :, 0]
    ty.backward(_t(torch, g))
    _assert_close(y, ty.detach().numpy())
    _assert_close(dx, tx.grad.numpy())


@pytest.mark.parametrize(
    "layer, reference",
    [
        (lambda: MaxPool1D(3, stride=1), lambda F, x: F.max_pool1d(x, 3, stride=1)),
        (lambda: MaxPool1D(2), lambda F, x: F.max_pool1d(x, 2)),
        (GlobalMaxPool1D, lambda F, x: F.adaptive_max_pool1d(x, 1)[:, :, 0]),
    ],
    ids=["overlapping", "disjoint", "global"],
)
def test_max_pools_send_the_gradient_of_ties_where_torch_does(layer, reference):
    torch = _torch()
    x = np.random.default_rng(5).integers(0, 3, size=(2, 3, 10)).astype(np.float64)  # many ties
    y, g, dx = _forward_backward(layer(), x)
    tx = _t(torch, x, grad=True)
    ty = reference(torch.nn.functional, tx)
    ty.backward(_t(torch, g))
    _assert_close(y, ty.detach().numpy())
    _assert_close(dx, tx.grad.numpy())


# -- behaviour -----------------------------------------------------------------------------------


def test_max_pool_gives_a_tied_window_gradient_to_the_first_max():
    layer = MaxPool1D(3)
    layer(np.array([[[1.0, 2.0, 2.0, 0.0, 0.0, 0.0]]]))
    assert layer.backward(np.array([[[1.0, 5.0]]])).tolist() == [[[0.0, 1.0, 0.0, 5.0, 0.0, 0.0]]]
    layer = GlobalMaxPool1D()
    layer(np.array([[[3.0, 1.0, 3.0]]]))
    assert layer.backward(np.array([[2.0]])).tolist() == [[[2.0, 0.0, 0.0]]]


@pytest.mark.parametrize("pool, stride", [(2, None), (3, 1)])
def test_max_pool_gives_the_same_gradient_whatever_the_memory_layouts(pool, stride):
    rng = np.random.default_rng(9)
    x = distinct(rng, (3, 4, 10))
    channel_major = x.transpose(1, 0, 2).copy().transpose(1, 0, 2)  # as a Conv1D output is laid out
    plain, other = MaxPool1D(pool, stride=stride), MaxPool1D(pool, stride=stride)
    y = plain(x)
    np.testing.assert_array_equal(other(channel_major), y)
    g = rng.normal(size=y.shape)  # C order, as Flatten's backward gives it
    np.testing.assert_array_equal(other.backward(g), plain.backward(g))


def test_same_padding_keeps_the_length_and_puts_the_odd_position_at_the_end():
    x = np.arange(6.0).reshape(1, 1, 6)
    layer = Conv1D(1, 2, padding="same", weight_init="ones")
    # Kernel 2 pads 0 at the start and 1 at the end: y[i] = x[i] + x[i + 1].
    np.testing.assert_array_equal(layer(x), [[[1.0, 3.0, 5.0, 7.0, 9.0, 5.0]]])


def test_weights_take_the_input_dtype_and_integer_input_builds_in_float32():
    assert Conv1D(2, 3)(np.ones((1, 2, 5))).dtype == np.float64
    layer = Conv1D(2, 3)
    y = layer(np.ones((1, 2, 5), dtype=np.int64))
    assert y.dtype == layer.weight.value.dtype == lamina.DEFAULT_DTYPE
    assert layer.weight.shape == (2, 2, 3) and layer.bias.shape == (2,)


def test_the_input_gradient_is_skipped_when_nobody_needs_it():
    x = np.random.default_rng(6).normal(size=(2, 3, 8))
    layers = [Conv1D(2, 3, stride=2, bias_init="normal") for _ in range(2)]
    for layer in layers:
        lamina.seed(0)  # the same weights
        layer.training = True
    layers[1].needs_input_grad = False
    g = np.ones((2, 2, 3))
    grads = []
    for layer in layers:
        lamina.seed(0)
        layer(x)
        grads.append(layer.backward(g))
    assert grads[0].shape == x.shape and grads[1] is None
    np.testing.assert_array_equal(layers[0].weight.grad, layers[1].weight.grad)
    np.testing.assert_array_equal(layers[0].bias.grad, layers[1].bias.grad)


def test_one_tuples_are_taken_as_pytorch_takes_them_and_the_config_rebuilds_the_layer():
    layer = Conv1D(2, (3,), stride=(2,), padding=(1,), dilation=(1,))
    assert repr(Conv1D(**layer.get_config())) == repr(layer)
    lamina.seed(0)
    y = layer(np.ones((1, 1, 7)))
    lamina.seed(0)
    np.testing.assert_array_equal(y, Conv1D(2, 3, stride=2, padding=1)(np.ones((1, 1, 7))))


def test_backward_before_forward_says_so():
    with pytest.raises(lamina.LaminaError, match="backward was called before forward"):
        Conv1D(2, 3).backward(np.ones((1, 2, 3)))
    with pytest.raises(lamina.LaminaError, match="backward was called before forward"):
        MaxPool1D(2).backward(np.ones((1, 2, 3)))


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, shape, match",
    [
        (lambda: Conv1D(2, 3), (4, 10), r"Conv1D\(filters=2, kernel_size=3\) expects sequences laid out as "
                                        r"\(batch, channels, length\), got shape \(4, 10\) \(2 dimensions\); "
                                        r"add a channel axis"),
        (lambda: Conv1D(2, 3), (4, 1, 3, 10),
         r"Conv1D\(filters=2, kernel_size=3\) expects .* got shape \(4, 1, 3, 10\)"),
        (lambda: Conv1D(2, 5), (4, 1, 4),
         r"Conv1D\(filters=2, kernel_size=5\): the input of shape \(4, 1, 4\) has length 4, "
                                          r"shorter than the window of 5; expected a length of at least 5"),
        (lambda: Conv1D(2, 3, padding=1, dilation=4), (1, 1, 6),
         r"has length 6 \(8 with padding\), shorter than the window "
                                                                 r"of 9; expected a length of at least 7"),
        (lambda: Conv1D(2, 3), (4, 0, 8),
         r"Conv1D\(filters=2, kernel_size=3\) got shape \(4, 0, 8\), with no channels"),
        (lambda: MaxPool1D(4), (2, 3, 3), r"MaxPool1D\(pool_size=4\): the input of shape \(2, 3, 3\) has length 3, "
                                          r"shorter than the window of 4.*smaller pool_size"),
        (lambda: AvgPool1D(2), (2, 6), r"AvgPool1D\(pool_size=2\) expects sequences .* got shape \(2, 6\)"),
        (lambda: GlobalAvgPool1D(), (2, 3, 4, 4), r"GlobalAvgPool1D expects sequences .* got shape \(2, 3, 4, 4\)"),
        (lambda: GlobalMaxPool1D(), (2, 3, 0), r"GlobalMaxPool1D got shape \(2, 3, 0\), of length 0"),
    ],
)
def test_bad_inputs_raise_a_shape_error_that_says_what_and_how(make, shape, match):
    layer = make()
    with pytest.raises(lamina.ShapeError, match=match):
        layer(np.ones(shape))
    assert layer.parameters() == {}  # a rejected first input builds nothing


def test_a_built_conv1d_rejects_another_channel_count():
    layer = Conv1D(2, 3)
    layer(np.ones((2, 3, 10)))
    with pytest.raises(lamina.ShapeError, match=r"Conv1D\(filters=2, kernel_size=3\) was built for 3 input channels "
                                                r"\(axis 1\), expected shape \(batch, 3, length\), "
                                                r"but got shape \(2, 4, 10\), "
                                                r"with 4; give it 3 channels"):
        layer(np.ones((2, 4, 10)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Conv1D(0, 3), r"Conv1D\(filters=0\): filters must be a positive int"),
        (lambda: Conv1D(2.5, 3), r"Conv1D\(filters=2.5\): filters must be a positive int"),
        (lambda: Conv1D(2, 0), r"Conv1D\(kernel_size=0\): kernel_size must be an int >= 1"),
        (lambda: Conv1D(2, (3, 3)), r"Conv1D\(kernel_size=\(3, 3\)\): kernel_size must be an int >= 1 \(or a 1-tuple"),
        (lambda: Conv1D(2, True), r"Conv1D\(kernel_size=True\): kernel_size must be an int"),
        (lambda: Conv1D(2, 3, stride=0), r"Conv1D\(stride=0\): stride must be an int >= 1"),
        (lambda: Conv1D(2, 3, dilation=1.5), r"Conv1D\(dilation=1.5\): dilation must be an int >= 1"),
        (lambda: Conv1D(2, 3, padding=-1), r"Conv1D\(padding=-1\): padding must be an int >= 0"),
        (lambda: Conv1D(2, 3, padding="full"), r"Conv1D\(padding='full'\): padding must be 'valid' or 'same'"),
        (lambda: Conv1D(2, 3, padding="sme"), r"Did you mean 'same'\?"),
        (lambda: Conv1D(2, 3, stride=2, padding="same"),
         r"Conv1D\(padding='same', stride=2\): 'same' padding needs stride=1"),
        (lambda: MaxPool1D(0), r"MaxPool1D\(pool_size=0\): pool_size must be an int >= 1"),
        (lambda: AvgPool1D(2, stride=0), r"AvgPool1D\(stride=0\): stride must be an int >= 1"),
        (lambda: MaxPool1D("2"), r"MaxPool1D\(pool_size='2'\): pool_size must be an int"),
    ],
)
def test_bad_arguments_raise_an_argument_error(make, match):
    with pytest.raises(lamina.ArgumentError, match=match):
        make()


def test_an_unknown_initializer_is_named_with_the_closest_one():
    with pytest.raises(lamina.UnknownPluginError,
                       match=r"unknown initializer 'he_unifrm'. Did you mean 'he_uniform'\?"):
        Conv1D(2, 3, weight_init="he_unifrm")


# -- in a model ----------------------------------------------------------------------------------


@pytest.fixture
def registered():
    """The module's layers, registered by name for the test unless lamina already registers them."""
    registry = lamina.get_registry()
    if registry.info_for(Conv1D) is not None:
        yield
        return
    lamina.register_plugin(conv1d, package="lamina-test-conv1d")
    try:
        yield
    finally:
        registry.remove_package("lamina-test-conv1d")


def test_a_small_sequence_model_trains_by_name_and_round_trips(registered, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 2, 16)).astype(np.float32)
    y = (x[:, 0, :8].sum(axis=1) > x[:, 1, 8:].sum(axis=1)).astype(np.int64)  # which channel's half is larger
    lamina.seed(0)
    model = lamina.Model([
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "same"},
        "Relu",
        {"type": "MaxPool1D", "pool_size": 2},
        "Flatten",
        {"type": "Linear", "units": 2},
    ])
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.02),
                          loss=lamina.loss("CrossEntropy", from_logits=True),
                          batch_size=16, epochs=15, verbose=False)
    assert history[-1] < 0.5 * history[0]
    assert model.layers[0].weight.shape == (4, 2, 3)
    model.save(tmp_path / "model.npz")
    loaded = lamina.load(tmp_path / "model.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("make", [
    lambda: [Conv1D(3, 2, stride=2, dilation=2, padding=1), AvgPool1D(2), GlobalMaxPool1D()],
    lambda: [Conv1D(2, 3), MaxPool1D(3, stride=1), GlobalAvgPool1D()],
])
def test_every_layer_round_trips_through_a_file(registered, make, tmp_path):
    x = np.random.default_rng(8).normal(size=(4, 3, 12)).astype(np.float32)
    lamina.seed(0)
    model = lamina.Model(make())
    before = model.predict(x)
    model.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(lamina.load(tmp_path / "model.npz").predict(x), before)
