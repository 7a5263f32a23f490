"""Recurrent layers (RNN, LSTM, GRU): gradients, agreement with PyTorch, dtypes, errors, training, saving."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins.layers import recurrent
from lamina.testing import check_layer_gradients, check_plugin, format_failures

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

RNN, LSTM, GRU = recurrent.RNN, recurrent.LSTM, recurrent.GRU
# (class, extra constructor arguments): every cell, RNN with both nonlinearities.
CELLS = [(RNN, {}), (RNN, {"nonlinearity": "relu"}), (LSTM, {}), (GRU, {})]
CELL_IDS = ["RNN-tanh", "RNN-relu", "LSTM", "GRU"]
SHAPES = pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequence"])
DIRECTIONS = pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])


def make(cls, kwargs, units=3, **more):
    lamina.seed(0)
    return cls(units, **kwargs, **more)


@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
@SHAPES
@DIRECTIONS
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradients_match_finite_differences(cls, kwargs, return_sequences, bidirectional, training):
    layer = make(cls, kwargs, return_sequences=return_sequences, bidirectional=bidirectional)
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    errors = check_layer_gradients(layer, x, training=training)
    expected = {"input", "weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    if bidirectional:
        expected |= {"weight_ih_reverse", "weight_hh_reverse", "bias_ih_reverse", "bias_hh_reverse"}
    assert set(errors) == expected
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_the_conformance_kit_finds_no_failure(cls):
    results = check_plugin(cls)
    assert all(result.ok is not False for result in results), format_failures(results)


# -- agreement with PyTorch ------------------------------------------------------------------------


def _torch_twin(layer, features):
    """torch.nn.RNN/LSTM/GRU(batch_first=True) holding `layer`'s weights, in float64."""
    kind = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}[type(layer)]
    extra = {"nonlinearity": layer.nonlinearity} if isinstance(layer, RNN) else {}
    twin = kind(features, layer.units, batch_first=True, bidirectional=layer.bidirectional, **extra).double()
    with torch.no_grad():
        for name, param in layer.parameters().items():
            _torch_param(twin, name).copy_(torch.from_numpy(param.value))
    return twin


def _torch_param(twin, name):
    """PyTorch's name for a lamina parameter: weight_ih -> weight_ih_l0, weight_ih_reverse -> weight_ih_l0_reverse."""
    base = name.removesuffix("_reverse")
    return getattr(twin, f"{base}_l0{'_reverse' if name != base else ''}")


def assert_close(ours, theirs, tolerance=1e-10):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    scale = max(float(np.abs(theirs).max()), 1e-300)
    assert float(np.abs(ours - theirs).max()) <= tolerance * scale


@needs_torch
@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
@SHAPES
@DIRECTIONS
def test_outputs_and_gradients_equal_pytorchs(cls, kwargs, return_sequences, bidirectional):
    layer = make(cls, kwargs, units=5, return_sequences=return_sequences, bidirectional=bidirectional)
    layer.training = True
    x = np.random.default_rng(2).normal(size=(3, 7, 4))
    y = layer(x)
    grad = np.random.default_rng(3).normal(size=y.shape)
    dx = layer.backward(grad)

    twin = _torch_twin(layer, features=4)
    tx = torch.from_numpy(x).requires_grad_()
    sequence, h_n = twin(tx)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM returns (h_n, c_n)
    ty = sequence if return_sequences else torch.cat(list(h_n), dim=1)  # h_n is (directions, batch, units)
    ty.backward(torch.from_numpy(grad))

    assert_close(y, ty.detach().numpy())
    assert_close(dx, tx.grad.numpy())
    for name, param in layer.parameters().items():
        assert_close(param.grad, _torch_param(twin, name).grad.numpy())


@needs_torch
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_parameters_have_pytorchs_names_shapes_and_initial_range(cls):
    layer = make(cls, {}, units=4, bidirectional=True)
    layer(np.zeros((2, 3, 5)))
    twin = _torch_twin(layer, features=5)
    params = layer.parameters()
    assert list(params) == [name.replace("_l0", "") for name, _ in twin.named_parameters()]
    for name, param in params.items():
        assert param.shape == tuple(_torch_param(twin, name).shape)
        assert np.abs(param.value).max() <= 1 / np.sqrt(4)


# -- behaviour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
def test_the_last_step_output_is_pytorchs_h_n(cls, kwargs):
    """Forward direction: the last step; backward direction: its state after reading back to time 0."""
    x = np.random.default_rng(4).normal(size=(3, 5, 2))
    last = make(cls, kwargs, units=4, bidirectional=True)(x)
    sequence = make(cls, kwargs, units=4, bidirectional=True, return_sequences=True)(x)
    assert last.shape == (3, 8) and sequence.shape == (3, 5, 8)
    np.testing.assert_array_equal(last[:, :4], sequence[:, -1, :4])
    np.testing.assert_array_equal(last[:, 4:], sequence[:, 0, 4:])


def test_the_backward_direction_reads_the_sequence_backwards():
    x = np.random.default_rng(5).normal(size=(2, 6, 3))
    layer = make(GRU, {}, units=4, bidirectional=True, return_sequences=True)
    forward_only = make(GRU, {}, units=4, return_sequences=True)
    both = layer(x)
    forward_only(x)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):  # the reverse weights in a forward GRU
        getattr(forward_only, name).value[...] = getattr(layer, name + "_reverse").value
    np.testing.assert_allclose(both[:, :, 4:], forward_only(x[:, ::-1])[:, ::-1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_float32_input_gives_float32_outputs_parameters_and_gradients(cls):
    layer = make(cls, {}, units=4, bidirectional=True, return_sequences=True)
    layer.training = True
    y = layer(np.random.default_rng(6).normal(size=(3, 5, 2)).astype(np.float32))
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    for param in layer.parameters().values():
        assert param.value.dtype == param.grad.dtype == np.float32


def test_integer_input_builds_in_the_default_dtype():
    layer = make(LSTM, {}, units=2)
    y = layer(np.arange(12).reshape(2, 3, 2))
    assert y.dtype == lamina.DEFAULT_DTYPE and layer.weight_ih.value.dtype == lamina.DEFAULT_DTYPE


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_the_first_layer_skips_the_input_gradient_but_not_the_weights(cls):
    x = np.random.default_rng(7).normal(size=(2, 4, 3))
    grads = []
    for needed in (True, False):
        layer = make(cls, {}, bidirectional=True)
        layer.training, layer.needs_input_grad = True, needed
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
        assert (dx is None) == (not needed)
        grads.append({name: p.grad.copy() for name, p in layer.parameters().items()})
    for name in grads[0]:
        np.testing.assert_array_equal(grads[0][name], grads[1][name])


def test_weights_are_drawn_at_build_from_lamina_seeded_generator():
    x = np.zeros((1, 2, 3))
    layers = [GRU(3), GRU(3), GRU(3)]
    for seed, layer in zip((0, 0, 1), layers):
        lamina.seed(seed)  # weights are drawn at the first call, when the input width is known
        layer(x)
    np.testing.assert_array_equal(layers[0].weight_hh.value, layers[1].weight_hh.value)
    assert not np.array_equal(layers[0].weight_hh.value, layers[2].weight_hh.value)


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (2, 4, 3, 1), (2, 0, 3)])
def test_input_that_is_not_a_sequence_is_refused_and_leaves_the_layer_unbuilt(shape):
    layer = LSTM(3)
    with pytest.raises(lamina.ShapeError, match=r"LSTM\(units=3\) needs input of shape \(batch, time, features\)"):
        layer(np.zeros(shape))
    assert layer.parameters() == {}
    assert layer(np.zeros((2, 4, 3))).shape == (2, 3)


def test_a_new_feature_count_is_refused_with_the_fix():
    layer = GRU(4, return_sequences=True)
    layer(np.zeros((2, 5, 3)))
    with pytest.raises(lamina.ShapeError,
                       match=r"GRU\(units=4, return_sequences=True\) was built for 3 features .*\(2, 5, 6\).* new GRU"):
        layer(np.zeros((2, 5, 6)))
    with pytest.raises(lamina.ShapeError, match="needs input of shape"):
        layer(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "make_layer, message",
    [
        (lambda: RNN(0), r"RNN\(units=0\): units must be a positive int"),
        (lambda: LSTM(2.5), r"LSTM\(units=2.5\): units must be a positive int"),
        (lambda: RNN(3, nonlinearity="sigmoid"), r"nonlinearity must be 'tanh' or 'relu'"),
        (lambda: RNN(3, nonlinearity="Relu"), r"Did you mean 'relu'\?"),
        (lambda: GRU(3, return_sequences="yes"),
         r"GRU\(return_sequences='yes'\): return_sequences must be True or False"),
        (lambda: LSTM(3, bidirectional=1), r"LSTM\(bidirectional=1\): bidirectional must be True or False"),
    ],
)
def test_bad_arguments_are_refused_by_name(make_layer, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        make_layer()


def test_backward_before_forward_says_so():
    layer = RNN(3)
    with pytest.raises(lamina.LaminaError, match="backward was called before forward"):
        layer.backward(np.zeros((2, 3)))


# -- in a model --------------------------------------------------------------------------------------


@pytest.fixture
def registered():
    """The layers registered by name: by lamina's entry point when it lists them, else here."""
    registry = lamina.get_registry()
    if registry.info_for(GRU) is not None:
        yield
        return
    lamina.register_plugin(recurrent, package="lamina-test-recurrent")
    try:
        yield
    finally:
        registry.remove_package("lamina-test-recurrent")


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "RNN", "units": 8, "nonlinearity": "relu"},
        {"type": "LSTM", "units": 8, "bidirectional": True},
        {"type": "GRU", "units": 8, "return_sequences": True},
    ],
    ids=["RNN", "LSTM", "GRU"],
)
def test_a_sequence_regressor_trains_by_name_and_saves_and_loads(registered, spec, tmp_path):
    """The target, the running mean of the first feature, needs memory of earlier steps."""
    lamina.seed(0)
    x = np.random.default_rng(8).normal(size=(64, 6, 2)).astype(np.float32)
    y = x[:, :, 0].mean(axis=1, keepdims=True)
    layers = [spec] + ([{"type": "Flatten"}] if spec.get("return_sequences") else []) + [{"type": "Linear", "units": 1}]
    model = lamina.Model(layers)
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.02), loss="MSE", epochs=40, batch_size=16,
                          verbose=False)
    assert history["loss"][-1] < 0.25 * history["loss"][0]
    assert all(p.value.dtype == np.float32 for p in model.parameters().values())
    model.save(tmp_path / "model.npz")
    loaded = lamina.load(tmp_path / "model.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("options", [{}, {"return_sequences": True, "bidirectional": True}])
def test_while_building_a_recurrent_layer_returns_its_output_shape_without_the_loop(kind, options):
    from lamina.protocols.layer import building

    layer = lamina.layer(kind, 3, **options)
    x = np.ones((2, 4, 5), dtype=np.float64)
    real = layer(x)
    with building():
        shaped = layer(x)
    assert shaped.shape == real.shape and shaped.dtype == real.dtype
    assert not shaped.any()
