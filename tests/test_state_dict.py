"""Model.state_dict and Model.load_state_dict: names, copies, loading in place, strict and non-strict
reports, dtypes, refused values, unbuilt models, and the torch-layout hook of third-party layers
(the agreement with torch.nn models is in test_torch_layout.py)."""
from __future__ import annotations

import numpy as np
import pytest

import lamina

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None

X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)


def model(dtype=np.float32, seed=0):
    """A built model with parameters and buffers, parameterless layers between them."""
    lamina.seed(seed)
    net = lamina.Model([lamina.layer("Linear", 6), "Relu", lamina.layer("BatchNorm"), lamina.layer("Dropout", 0.5),
                        lamina.layer("Sequential", [lamina.layer("Linear", 3), "Tanh"])])
    net.build(X.astype(dtype))
    return net


def values(net):
    return {name: array.copy() for name, array in net.state_dict().items()}


def test_the_names_are_the_parameters_and_buffers_layer_by_layer():
    net = model()
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var",
                           "4.layers.0.weight", "4.layers.0.bias"]
    assert set(state) == set(net.parameters()) | set(net.buffers())
    for name, param in net.parameters().items():
        np.testing.assert_array_equal(state[name], param.value)
    np.testing.assert_array_equal(state["2.running_var"], net.buffers()["2.running_var"])


def test_state_dict_returns_copies():
    net = model()
    before = values(net)
    state = net.state_dict()
    state["0.weight"] += 1
    state["2.running_mean"] += 1
    assert not np.shares_memory(state["0.weight"], net.parameters()["0.weight"].value)
    np.testing.assert_array_equal(net.parameters()["0.weight"].value, before["0.weight"])
    np.testing.assert_array_equal(net.buffers()["2.running_mean"], before["2.running_mean"])


def test_a_loaded_model_predicts_as_the_one_it_came_from():
    source, target = model(seed=1), model(seed=2)
    assert not np.array_equal(source.predict(X), target.predict(X))
    report = target.load_state_dict(source.state_dict())
    assert report.ok and report == lamina.LoadReport()
    np.testing.assert_array_equal(target.predict(X), source.predict(X))


def test_loading_writes_into_the_existing_arrays_so_the_optimizer_state_stays_valid():
    net = model()
    y = np.zeros((len(X), 3), dtype=np.float32)
    net.train(X, y, optim="Adam", epochs=2, verbose=False)
    params = net.parameters()
    arrays = {name: param.value for name, param in params.items()}
    buffer = net.buffers()["2.running_mean"]
    moments = dict(net.optimizer.state)
    steps = {param: state["step"] for param, state in moments.items()}
    new = model(seed=3).state_dict()
    net.load_state_dict(new)
    for name, param in net.parameters().items():
        assert param is params[name] and param.value is arrays[name]
        np.testing.assert_array_equal(param.value, new[name])
    assert net.buffers()["2.running_mean"] is buffer
    net.train(X, y, optim=net.optimizer, epochs=1, verbose=False)
    # Adam went on from its moments, still keyed by the model's own Parameters
    assert set(net.optimizer.state) == set(params.values())
    assert all(net.optimizer.state[param] is moments[param] for param in params.values())
    assert all(moments[param]["step"] == steps[param] + 1 for param in params.values())


def test_strict_loading_names_every_problem_with_both_shapes_and_loads_nothing():
    net = model()
    before = values(net)
    state = model(seed=5).state_dict()
    del state["0.bias"], state["2.running_var"]
    state["9.weight"] = np.zeros(2)
    state["4.layers.0.weight"] = np.zeros((3, 6))  # (6, 3) in the model
    state["2.weight"] = np.zeros(7)
    with pytest.raises(lamina.ShapeError) as caught:
        net.load_state_dict(state)
    message = str(caught.value)
    for expected in ("missing (2): '0.bias', '2.running_var'", "unexpected (1): '9.weight'",
                     "'4.layers.0.weight' (the model's (6, 3), the state's (3, 6))",
                     "'2.weight' (the model's (6,), the state's (7,))", "nothing was loaded", "strict=False"):
        assert expected in message
    for name, array in net.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_non_strict_loading_loads_what_fits_and_reports_the_rest():
    net = model()
    before = values(net)
    state = model(seed=5).state_dict()
    del state["0.bias"]
    state["extra"] = np.ones(3)
    state["4.layers.0.weight"] = np.zeros((3, 6))
    report = net.load_state_dict(state, strict=False)
    assert report.missing == ["0.bias"] and report.unexpected == ["extra"]
    assert report.mismatched == ["4.layers.0.weight"]
    assert report.mismatched_shapes == {"4.layers.0.weight": ((6, 3), (3, 6))}
    assert not report.ok and "missing=['0.bias']" in repr(report)
    after = net.state_dict()
    for name in ("0.bias", "4.layers.0.weight"):
        np.testing.assert_array_equal(after[name], before[name])
    for name in ("0.weight", "2.weight", "2.running_var", "4.layers.0.bias"):
        np.testing.assert_array_equal(after[name], state[name])


@pytest.mark.parametrize("method", ["state_dict", "load_state_dict"])
def test_an_unbuilt_model_is_an_error_that_says_how_to_build_it(method):
    net = lamina.Model([lamina.layer("Linear", 2)])
    args = ({},) if method == "load_state_dict" else ()
    with pytest.raises(lamina.LaminaError, match=r"not built yet.*model\.build\(x\)"):
        getattr(net, method)(*args)


@pytest.mark.parametrize("call, match", [
    (lambda net: net.state_dict(layout="keras"), "layout must be 'lamina' or 'torch'"),
    (lambda net: net.load_state_dict({}, layout="Torch"), "Did you mean 'torch'"),
    (lambda net: net.load_state_dict({}, strict="yes"), "strict must be True or False"),
    (lambda net: net.load_state_dict([("0.weight", np.zeros((4, 6)))]), "state must be a dict"),
    (lambda net: net.load_state_dict({0: np.zeros(3)}), "names must be str"),
])
def test_bad_arguments_are_argument_errors(call, match):
    with pytest.raises(lamina.ArgumentError, match=match):
        call(model())


@pytest.mark.parametrize("source", ["float64", "float16", "int64", "bfloat16"])
def test_values_are_cast_to_the_model_dtype(source):
    if source == "bfloat16" and ml_dtypes is None:
        pytest.skip("bfloat16 arrays come from ml_dtypes")
    net = model()
    dtype = ml_dtypes.bfloat16 if source == "bfloat16" else np.dtype(source)
    rng = np.random.default_rng(4)
    state = {name: (rng.integers(-3, 4, size=array.shape) + (name.endswith("running_var") * 5)).astype(dtype)
             for name, array in net.state_dict().items()}
    net.load_state_dict(state)
    for name, array in net.state_dict().items():
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, state[name].astype(np.float32))


def test_float32_values_load_into_a_float64_model():
    net64 = model(np.float64)
    state = model(seed=7).state_dict()
    net64.load_state_dict(state)
    assert net64.dtype == np.float64
    np.testing.assert_array_equal(net64.parameters()["0.weight"].value, state["0.weight"].astype(np.float64))


@pytest.mark.parametrize("bad, error, match", [
    (np.array([["a"] * 6] * 4), lamina.ArgumentError, "dtype <U1; weights must be numbers"),
    (np.full((4, 6), np.nan, dtype=np.float32), lamina.NonFiniteError, "24 NaN or infinite values"),
    (np.full((4, 6), 1e300), lamina.NonFiniteError, "beyond the range of its dtype float32"),
    (np.zeros((4, 6), dtype=complex), lamina.ArgumentError, "weights must be numbers"),
])
def test_values_that_are_not_finite_numbers_are_refused_and_nothing_is_loaded(bad, error, match):
    net = model()
    before = values(net)
    state = {**model(seed=8).state_dict(), "0.weight": bad}
    for strict in (True, False):
        with pytest.raises(error, match=match):
            net.load_state_dict(state, strict=strict)
    for name, array in net.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_parameterless_layers_take_no_place_in_the_torch_layout():
    state = model().state_dict(layout="torch")
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var",
                           "2.num_batches_tracked", "4.0.weight", "4.0.bias"]
    assert state["0.weight"].shape == (6, 4) and state["4.0.weight"].shape == (3, 6)  # torch's (out, in)
    assert state["0.weight"].flags.c_contiguous


def test_the_torch_layout_round_trips():
    source, target = model(seed=1), model(seed=2)
    assert target.load_state_dict(source.state_dict(layout="torch"), layout="torch").ok
    np.testing.assert_array_equal(target.predict(X), source.predict(X))


def test_num_batches_tracked_is_optional_inside_a_composite_too():
    net = lamina.Model([lamina.layer("Sequential", [lamina.layer("Linear", 3), lamina.layer("BatchNorm")])])
    net.build(X)
    state = net.state_dict(layout="torch")
    assert "0.1.num_batches_tracked" in state
    del state["0.1.num_batches_tracked"]
    assert net.load_state_dict(state, layout="torch").ok


def test_a_layer_without_a_torch_layout_is_named_with_its_place_and_how_to_add_one():
    net = lamina.Model([lamina.layer("Linear", 3), lamina.layer("Sequential", [Scale()])])
    net.build(X)
    assert "1.layers.0.scale" in net.state_dict()  # lamina's own layout needs no hook
    for call in (lambda: net.state_dict(layout="torch"),
                 lambda: net.load_state_dict(net.state_dict(layout="lamina"), layout="torch")):
        with pytest.raises(lamina.ArgumentError) as caught:
            call()
        message = str(caught.value)
        assert "Scale()" in message and "'1.layers.0.*'" in message and "torch_layout = True" in message
        assert "to_torch(state) and from_torch(state)" in message


def test_a_normalization_layer_has_no_torch_layout():
    net = lamina.Model([lamina.layer("Normalization", mean=0.0, variance=1.0)])
    net.build(X)
    with pytest.raises(lamina.ArgumentError, match="Normalization.*no PyTorch layout"):
        net.state_dict(layout="torch")


class Scale(lamina.Layer):
    """y = x * scale, one scale per feature: a third-party layer with a parameter."""

    def build(self, x):
        self.scale = lamina.Parameter(np.arange(1, x.shape[-1] + 1, dtype=x.dtype))

    def forward(self, x):
        return x * self.scale


class TorchScale(Scale):
    torch_layout = True


class RenamedScale(Scale):
    torch_layout = {"scale": "gain.weight"}


class CustomScale(Scale):
    """Its torch twin keeps log(scale)."""

    def to_torch(self, state):
        return {"log_scale": np.log(state["scale"])}

    def from_torch(self, state):
        return {"scale": np.exp(state["log_scale"])} if "log_scale" in state else {}


class HalfHook(Scale):
    def to_torch(self, state):
        return {"other": state["scale"]}


class WrongHook(Scale):
    def to_torch(self, state):
        return dict(state)

    def from_torch(self, state):
        return {"scales": state["scale"]}


@pytest.mark.parametrize("cls, names", [(TorchScale, ["1.scale"]), (RenamedScale, ["1.gain.weight"]),
                                        (CustomScale, ["1.log_scale"])])
def test_a_third_party_layer_declares_its_torch_layout(cls, names):
    net = lamina.Model([lamina.layer("Linear", 3), cls()])
    net.build(X)
    state = net.state_dict(layout="torch")
    assert [name for name in state if name.startswith("1.")] == names
    state[names[0]] = state[names[0]] + (np.log(2.0) if cls is CustomScale else 1.0)
    assert net.load_state_dict(state, layout="torch").ok
    np.testing.assert_allclose(net.parameters()["1.scale"].value, [2.0, 4.0, 6.0] if cls is CustomScale
                               else [2.0, 3.0, 4.0], rtol=1e-6)


def test_a_layer_with_to_torch_but_no_from_torch_says_so():
    net = lamina.Model([HalfHook()])
    net.build(X)
    with pytest.raises(lamina.LaminaError, match="defines to_torch but not from_torch"):
        net.load_state_dict(net.state_dict(layout="torch"), layout="torch")


def test_hooks_that_do_not_agree_are_an_error_before_anything_is_loaded():
    net = lamina.Model([lamina.layer("Linear", 3), WrongHook()])
    net.build(X)
    before = values(net)
    state = {name: array + 1 for name, array in net.state_dict(layout="torch").items()}
    with pytest.raises(lamina.LaminaError, match="'1.scales'.*which the model does not have.*do not agree"):
        net.load_state_dict(state, layout="torch")
    for name, array in net.state_dict().items():
        np.testing.assert_array_equal(array, before[name])
