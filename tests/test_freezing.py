"""Freezing: `Layer.trainable` and `Parameter.trainable`. A frozen parameter is neither updated
nor given optimizer state, its gradient is not computed, and the flags survive files, checkpoints
and configs."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import lamina
from lamina.app import config as runconfig
from lamina.app import run as runapp
from lamina.testing import cases_for

OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSProp", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1}),
]


class Affine(lamina.Layer):
    """y = x @ w + b with no backward of its own: lamina derives it (the tape)."""

    def __init__(self, units: int) -> None:
        self.units = units

    def build(self, x: np.ndarray) -> None:
        self.w = lamina.Parameter(lamina.rng().normal(size=(x.shape[-1], self.units)).astype(x.dtype))
        self.b = lamina.Parameter(np.zeros(self.units, dtype=x.dtype))

    def forward(self, x):
        return x @ self.w + self.b


class Counting(np.ndarray):
    """An array that counts the matrix products it takes part in."""

    products = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul:
            Counting.products += 1
        inputs = tuple(item.view(np.ndarray) if isinstance(item, Counting) else item for item in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)


def _frozen_values(model: lamina.Model) -> dict[str, np.ndarray]:
    return {name: p.value.copy() for name, p in model.parameters().items() if not p.trainable}


def _image_model() -> lamina.Model:
    return lamina.Model([
        lamina.layer("Conv2D", 3, 3, padding="same"), lamina.layer("BatchNorm"), "Relu", "Flatten",
        lamina.layer("Linear", 6), "Tanh", Affine(4), lamina.layer("Linear", 3),
    ])


# -- the flags ---------------------------------------------------------------------------------------------


def test_parameters_and_layers_are_trainable_by_default_and_refuse_a_flag_that_is_not_a_bool():
    param = lamina.Parameter(np.ones(3))
    assert param.trainable and lamina.layer("Linear", 2).trainable
    assert not lamina.Parameter(np.ones(3), trainable=False).trainable
    param.trainable = False
    assert "trainable=False" in repr(param)
    with pytest.raises(lamina.ArgumentError, match=r"Parameter\(trainable='no'\): trainable must be True or False"):
        param.trainable = "no"
    with pytest.raises(lamina.ArgumentError, match=r"Linear\(trainable=0\): trainable must be True or False"):
        lamina.layer("Linear", 2).trainable = 0


def test_freezing_a_composite_freezes_its_sublayers_recursively_and_unfreezing_undoes_it():
    block = lamina.layer("TransformerBlock", num_heads=2, ff_units=8, dropout=0.0)
    inner = lamina.layer("Sequential", [lamina.layer("Linear", 4), "Relu", block])
    outer = lamina.layer("Parallel", [[lamina.layer("Residual", [inner, lamina.layer("LayerNorm")])],
                                      [lamina.layer("Linear", 4)]])
    model = lamina.Model([outer])
    model.build(lamina.rng().normal(size=(2, 3, 4)).astype(np.float32))
    outer.trainable = False
    assert all(not layer.trainable for layer in outer.walk())
    assert block.attention.in_proj_weight.trainable is False and block.linear2.bias.trainable is False
    assert not any(p.trainable for p in model.parameters().values())
    inner.trainable = True
    assert all(p.trainable for p in inner.parameters().values())
    assert not outer.trainable and not outer.branches[1][0].weight.trainable


def test_a_flag_set_before_the_layer_is_built_takes_effect_once_it_builds():
    linear, block = lamina.layer("Linear", 4), lamina.layer("TransformerBlock", num_heads=1, ff_units=6, dropout=0.0)
    sequential = lamina.layer("Sequential", [lamina.layer("Linear", 4), lamina.layer("BatchNorm")])
    for layer in (linear, block, sequential):
        layer.trainable = False
    model = lamina.Model([linear, block, sequential, lamina.layer("Linear", 2)])
    assert model.parameters() == {}
    model.build(lamina.rng().normal(size=(3, 5, 4)).astype(np.float32))
    frozen = {name for name, p in model.parameters().items() if not p.trainable}
    assert frozen == {name for name in model.parameters() if not name.startswith("3.")}
    assert {"1.linear1.weight", "2.layers.1.weight"} <= frozen and model.layers[3].weight.trainable


# -- training leaves them alone ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_frozen_layers_are_bit_identical_after_training_with_every_optimizer(name, kwargs):
    generator = np.random.default_rng(0)
    x, y = generator.normal(size=(40, 2, 4, 4)).astype(np.float32), generator.integers(0, 3, 40)
    lamina.seed(1)
    model = _image_model()
    model.build(x)
    for i in (0, 1, 6):  # a convolution, a BatchNorm and a layer whose backward the tape derives
        model.layers[i].trainable = False
    before, buffers = _frozen_values(model), {k: v.copy() for k, v in model.buffers().items()}
    trained = {name: p.value.copy() for name, p in model.parameters().items() if p.trainable}
    optim = lamina.optimizer(name, **kwargs)
    model.train(x, y, optim=optim, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=2, batch_size=8,
                verbose=False)
    assert set(before) == {"0.weight", "0.bias", "1.weight", "1.bias", "6.w", "6.b"}
    for key, value in before.items():
        assert np.array_equal(model.parameters()[key].value, value), key
        assert model.parameters()[key] not in optim.state  # no optimizer state either
    for key, value in buffers.items():  # a frozen BatchNorm does not update its statistics
        assert np.array_equal(model.buffers()[key], value), key
    for key, value in trained.items():  # while the others train: the gradient flows through
        assert not np.array_equal(model.parameters()[key].value, value), key


def test_an_optimizer_leaves_a_frozen_parameter_and_its_gradient_alone_even_with_weight_decay():
    for name, kwargs in OPTIMIZERS:
        frozen, free = lamina.Parameter(np.ones((2, 3))), lamina.Parameter(np.ones((2, 3)))
        frozen.trainable = False
        for param in (frozen, free):
            param.grad[...] = 0.5
        optim = lamina.optimizer(name, **kwargs)
        optim.step([frozen, free])
        assert np.array_equal(frozen.value, np.ones((2, 3))) and frozen not in optim.state, name
        assert not np.array_equal(free.value, np.ones((2, 3))) and free in optim.state, name


def test_frozen_first_layers_train_the_layers_after_them_and_unfreezing_trains_them():
    x, y, _, _ = lamina.dataset("spirals", n_samples=120)
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 16), "Relu", lamina.layer("Linear", 16), "Relu",
                          lamina.layer("Linear", 3)])
    model.build(x)
    model.layers[0].trainable = False
    model.layers[2].trainable = False
    before = _frozen_values(model)
    model.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True), optim="Adam", epochs=2, verbose=False)
    assert all(np.array_equal(model.parameters()[k].value, v) for k, v in before.items())
    model.layers[2].trainable = True  # a second phase: fine-tune one more layer
    model.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True), optim="Adam", epochs=1, verbose=False)
    assert np.array_equal(model.layers[0].weight.value, before["0.weight"])
    assert not np.array_equal(model.layers[2].weight.value, before["2.weight"])


class Unfreeze(lamina.Callback):
    def on_epoch_end(self, epoch, logs):
        self.model.layers[0].trainable = True


def test_a_layer_unfrozen_by_a_callback_trains_from_the_next_step():
    x, y, _, _ = lamina.dataset("xor")
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 4), "Tanh", lamina.layer("Linear", 1)])
    model.build(x)
    model.layers[0].trainable = False
    before = model.layers[0].weight.value.copy()
    model.train(x, y, epochs=1, verbose=False, callbacks=[Unfreeze()])
    assert np.array_equal(model.layers[0].weight.value, before)
    model.train(x, y, epochs=1, verbose=False)
    assert not np.array_equal(model.layers[0].weight.value, before)


# -- no gradient is computed for them -------------------------------------------------------------------------


def _registered_layer_cases():
    """Every registered layer's conformance cases, where the layer has parameters once built."""
    for info in lamina.get_registry().plugins("layer"):
        for i, case in enumerate(cases_for(info.cls)):
            layer = info.cls(**case.kwargs)
            if layer.adapted:  # one that learns statistics from data has no parameters either
                layer(case.input(np.random.default_rng(0), case.shape))
                if layer.parameters():
                    yield pytest.param(info.cls, case, id=f"{info.name}-{i}")


@pytest.mark.parametrize("cls, case", list(_registered_layer_cases()))
def test_every_built_in_layer_leaves_a_frozen_gradient_at_zero_and_passes_the_input_gradient(cls, case):
    x = case.input(np.random.default_rng(0), case.shape)
    layers = []
    for _ in range(2):  # twins: the same weights, one frozen
        lamina.seed(0)
        layer = cls(**case.kwargs)
        layer.training = False  # inference mode: a frozen BatchNorm's own mode, for both twins
        layer(x)
        layers.append(layer)
    free, frozen = layers
    frozen.trainable = False
    grad_out = np.random.default_rng(1).normal(size=np.shape(frozen(x)))
    free(x)
    expected, got = free.backward(grad_out), frozen.backward(grad_out)
    for name, param in frozen.parameters().items():
        assert not param.grad.any(), name
    assert any(p.grad.any() for p in free.parameters().values())
    if expected is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_frozen_linear_skips_its_weight_product(frozen):
    layer = lamina.layer("Linear", 3)
    layer.training = True
    layer(np.ones((4, 5)))
    layer.trainable = not frozen
    layer._x = layer._x.view(Counting)  # what backward multiplies the gradient by, for dW = x^T g
    Counting.products = 0
    dx = layer.backward(np.ones((4, 3)))
    assert Counting.products == (0 if frozen else 1)
    assert layer.weight.grad.any() != frozen and dx.shape == (4, 5)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_frozen_attention_and_convolution_skip_their_weight_products(frozen):
    attention, conv = lamina.layer("MultiHeadAttention", 2), lamina.layer("Conv2D", 2, 3)
    attention(np.ones((2, 3, 4)))
    conv(np.ones((2, 1, 5, 5)))
    for layer in (attention, conv):
        layer.trainable = not frozen
    # each is read only for a weight gradient
    attention._context, attention._rows = attention._context.view(Counting), attention._rows.view(Counting)
    conv._cols = {worker: cols.view(Counting) for worker, cols in conv._cols.items()}  # one buffer per thread
    Counting.products = 0
    attention.backward(np.ones((2, 3, 4)))
    conv.backward(np.ones((2, 2, 3, 3)))
    assert Counting.products == (0 if frozen else 3)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_frozen_recurrent_layer_skips_its_weight_products(frozen, monkeypatch):
    layer = lamina.layer("GRU", 3, bidirectional=True)
    layer(np.ones((2, 4, 5)))
    layer.trainable = not frozen
    calls = []
    tensordot = np.tensordot
    monkeypatch.setattr(np, "tensordot", lambda *a, **k: calls.append(1) or tensordot(*a, **k))
    dx = layer.backward(np.ones((2, 6)))
    assert (len(calls) == 0) == frozen and dx.shape == (2, 4, 5)
    assert all(p.grad.any() != frozen for p in layer.parameters().values())


@pytest.mark.parametrize("frozen", [False, True])
def test_the_tape_skips_the_vjp_of_a_frozen_parameter(frozen):
    layer = Affine(3)
    layer.trainable = not frozen
    layer(np.ones((4, 5)))
    computed = []  # per recorded row: which operands' gradients its rule computed

    def spy(rule):
        def run(g, *args):
            found = rule(g, *args)
            computed.append([item is not None for item in (found if isinstance(found, (list, tuple)) else [found])])
            return found
        return run

    for node in layer._tape.nodes:
        node.rule = spy(node.rule)
    dx = layer.backward(np.ones((4, 3)))
    # x @ w, then + b: without w and b wanting gradients, only x's is computed (no x^T g product)
    assert computed == ([[True, True], [True, True]] if not frozen else [[True, False], [True, False]])
    assert np.asarray(dx).shape == (4, 5)
    assert layer.w.grad.any() != frozen and layer.b.grad.any() != frozen


class _Recording(lamina.DataParallel):
    """One process whose allreduce records what it is given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def allreduce(self, buffer):
        self.sizes.append(buffer.size)


def test_data_parallel_sums_only_the_trainable_gradients():
    strategy = _Recording()
    frozen, free = lamina.Parameter(np.ones(5)), lamina.Parameter(np.ones(3))
    frozen.trainable = False
    frozen.grad[...] = 2.0
    free.grad[...] = 2.0
    strategy._share = 0.5
    strategy.reduce_step([frozen, free], [1.0])
    assert strategy.sizes == [3 + 1] and np.array_equal(frozen.grad, np.full(5, 2.0))


# -- BatchNorm --------------------------------------------------------------------------------------------------


def test_a_frozen_batchnorm_runs_in_inference_mode_while_the_model_trains():
    norm = lamina.layer("BatchNorm")
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 3))
    norm(x)
    norm.running_mean[...] = [1.0, 2.0, 3.0]
    inference = norm(x)
    norm.trainable = False
    norm.training = True
    assert np.array_equal(norm(x), inference)
    assert np.array_equal(norm.running_mean, [1.0, 2.0, 3.0])  # not updated
    grad = np.ones_like(x)
    expected = grad * norm.weight.value / np.sqrt(norm.running_var + norm.eps)
    np.testing.assert_allclose(norm.backward(grad), expected, rtol=1e-12)


# -- summary, files, checkpoints, configs ---------------------------------------------------------------------


def test_summary_counts_trainable_and_frozen_parameters_and_marks_frozen_layers():
    model = lamina.Model([lamina.layer("Linear", 4), "Relu", lamina.layer("Sequential", [lamina.layer("Linear", 2)])])
    model.build(np.ones((1, 3)))
    assert model.summary().splitlines()[-1] == "Total params: 26"
    model.layers[2].trainable = False
    text = model.summary()
    assert text.splitlines()[-1] == "Total params: 26 (trainable: 16, frozen: 10)"
    assert "Sequential() (frozen)" in text and "  Linear(units=2) (frozen)" in text
    assert "Linear(units=4) (frozen)" not in text


def _rewrite_config(path, change) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def test_model_files_keep_the_flags_of_layers_and_parameters(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 4), lamina.layer("Sequential", [lamina.layer("BatchNorm"),
                                                                                lamina.layer("Linear", 2)])])
    model.build(np.ones((2, 3)))
    model.layers[1].trainable = False
    model.layers[1].layers[1].trainable = True  # a composite frozen but for one sublayer
    model.layers[0].bias.trainable = False  # a parameter frozen on its own
    model.save(tmp_path / "m.npz")
    config = lamina.files.load.read_config(tmp_path / "m.npz")
    assert config["frozen_layers"] == ["1", "1.layers.0"]
    assert config["weights"]["0.bias"]["trainable"] is False and "trainable" not in config["weights"]["0.weight"]
    loaded = lamina.load(tmp_path / "m.npz")
    assert {k: p.trainable for k, p in loaded.parameters().items()} == {
        k: p.trainable for k, p in model.parameters().items()}
    assert [layer.trainable for layer in loaded.layers[1].walk()] == [False, False, True]
    assert loaded.layers[0].trainable


def test_a_file_without_flags_loads_trainable_and_bad_flags_are_a_file_format_error(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.build(np.ones((1, 3)))
    model.save(tmp_path / "old.npz")
    config = lamina.files.load.read_config(tmp_path / "old.npz")
    assert "frozen_layers" not in config and all("trainable" not in e for e in config["weights"].values())
    assert all(p.trainable for p in lamina.load(tmp_path / "old.npz").parameters().values())
    for name, change, message in [
        ("flag.npz", lambda c: c["weights"]["0.weight"].update(trainable="no"), "a weight's 'trainable' is not true"),
        ("paths.npz", lambda c: c.update(frozen_layers="0"), "'frozen_layers' is not a list of layer paths"),
        ("stranger.npz", lambda c: c.update(frozen_layers=["7.layers.0"]), "its frozen layer '7.layers.0' is not"),
    ]:
        path = tmp_path / name
        path.write_bytes((tmp_path / "old.npz").read_bytes())
        _rewrite_config(path, change)
        with pytest.raises(lamina.FileFormatError, match=message):
            lamina.load(path)


def test_a_resumed_checkpoint_keeps_frozen_layers_frozen_and_bit_identical(tmp_path):
    x, y, _, _ = lamina.dataset("spirals", n_samples=96)
    kwargs = dict(loss=lamina.loss("CrossEntropy", from_logits=True), batch_size=16, verbose=False)

    def make(freeze: bool) -> lamina.Model:
        lamina.seed(4)
        model = lamina.Model([lamina.layer("Linear", 8), lamina.layer("BatchNorm"), "Relu", lamina.layer("Linear", 3)])
        model.build(x)
        if freeze:
            model.layers[0].trainable = model.layers[1].trainable = False
        return model

    straight = make(True)
    frozen = _frozen_values(straight)
    straight.train(x, y, optim=lamina.optimizer("AdamW", lr=0.01), epochs=4, **kwargs)
    path = tmp_path / "ck.npz"
    make(True).train(x, y, optim=lamina.optimizer("AdamW", lr=0.01), epochs=2,
                     callbacks=[lamina.callback("Checkpoint", path)], **kwargs)
    resumed = make(False)  # the checkpoint's flags win: the run goes on as it was
    resumed.train(x, y, epochs=4, resume_from=path, **kwargs)
    assert not resumed.layers[0].trainable and not resumed.layers[1].trainable
    for name, value in frozen.items():
        assert np.array_equal(resumed.parameters()[name].value, value), name
        assert resumed.parameters()[name] not in resumed.optimizer.state
    for name, param in straight.parameters().items():
        assert np.array_equal(resumed.parameters()[name].value, param.value), name


CONFIG = """
seed = 0
epochs = 2
batch_size = 16
[dataset]
name = "spirals"
n_samples = 90
[[layers]]
type = "Linear"
units = 8
trainable = false
[[layers]]
type = "Relu"
[[layers]]
type = "Linear"
units = 3
trainable = true
[loss]
type = "CrossEntropy"
from_logits = true
"""


def test_a_config_layer_with_trainable_false_is_frozen_and_does_not_train(tmp_path):
    runs = []
    for epochs in (1, 3):  # the same seed, so the same initial weights: a frozen layer's stay
        config = runconfig.parse(CONFIG.replace("epochs = 2", f"epochs = {epochs}"), "inline")
        runs.append(runapp.train(config, output=tmp_path / f"run{epochs}", verbose=False, say=lambda text: None))
    one, three = (run.model for run in runs)
    assert not three.layers[0].trainable and three.layers[2].trainable
    assert np.array_equal(one.layers[0].weight.value, three.layers[0].weight.value)
    assert not np.array_equal(one.layers[2].weight.value, three.layers[2].weight.value)
    saved = lamina.load(tmp_path / "run3" / "model.npz")
    assert not saved.layers[0].weight.trainable and saved.layers[2].weight.trainable


@pytest.mark.parametrize("value", ['"no"', "0", "[false]"])
def test_a_config_trainable_that_is_not_a_bool_is_a_config_error_naming_the_key(value):
    text = CONFIG.replace("trainable = false", f"trainable = {value}")
    with pytest.raises(lamina.ConfigError, match=r"inline: layers\[0\]\.trainable: expected true or false"):
        runconfig.parse(text, "inline")
