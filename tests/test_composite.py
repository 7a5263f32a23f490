"""Layers made of layers: Sequential, Residual and Parallel from Python, dicts, TOML and model
files; their names, modes, errors, summary, resuming and check-plugins. (Their gradients are
checked with every layer's in test_gradients.py, their save/load in test_saving.py, MPI in
test_mpi.py.)"""
from __future__ import annotations

import types

import numpy as np
import pytest
from conftest import run_python

import lamina
from lamina.plugins import Dropout, Linear, Parallel, Relu, Residual, Sequential, Tanh
from lamina.testing import check_layer_gradients, check_plugin, format_failures

X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
Y = (X[:, :1] * X[:, 1:2] + np.sin(X[:, 2:3])).astype(np.float32)

NESTED = [
    {"type": "Linear", "units": 8},
    {"type": "Residual", "layers": [{"type": "Linear", "units": 8}, "Relu"]},
    {"type": "Parallel", "branches": [[{"type": "Linear", "units": 3}, "Tanh"], ["Sigmoid"]]},
    {"type": "Sequential", "layers": [{"type": "Linear", "units": 4}, "Relu", {"type": "Linear", "units": 1}]},
]


def test_python_and_dicts_build_the_same_nested_model():
    from_dicts = lamina.Model(NESTED)
    from_python = lamina.Model([
        Linear(8),
        Residual([Linear(8), Relu()]),
        Parallel([[Linear(3), Tanh()], ["Sigmoid"]]),
        Sequential([Linear(4), "Relu", Linear(1)]),
    ])
    assert repr(from_dicts) == repr(from_python)
    lamina.seed(0)  # weights are drawn when a layer is built, on its first input
    a = from_dicts(X)
    lamina.seed(0)
    np.testing.assert_array_equal(a, from_python(X))


def test_parameter_names_follow_the_nesting():
    model = lamina.Model(NESTED)
    model(X)
    assert list(model.parameters()) == [
        "0.weight", "0.bias",
        "1.layers.0.weight", "1.layers.0.bias",
        "2.branches.0.0.weight", "2.branches.0.0.bias",
        "3.layers.0.weight", "3.layers.0.bias", "3.layers.2.weight", "3.layers.2.bias",
    ]


def test_a_nested_model_trains_saves_and_loads(tmp_path):
    lamina.seed(1)
    model = lamina.Model(NESTED)
    history = model.train(X, Y, optim=lamina.optimizer("Adam", lr=0.01), epochs=60, batch_size=8, verbose=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    model.save(tmp_path / "nested.lamina")
    loaded = lamina.load(tmp_path / "nested.lamina")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(X), model(X))


def test_residual_adds_its_input():
    lamina.seed(0)
    inner = Sequential([Linear(4), "Tanh"])
    residual = Residual([inner])
    np.testing.assert_allclose(residual(X), X + inner(X), rtol=1e-6)


def test_residual_shape_mismatch_names_both_shapes():
    model = lamina.Model([Residual([Linear(3)])])
    with pytest.raises(lamina.ShapeError,
                       match=r"Model.layers\[0\] \(Residual\): Residual: "
                             r".*\(32, 4\) into shape \(32, 3\).*Linear\(4\)"):
        model(X)


def test_parallel_merges():
    lamina.seed(0)
    a, b = Linear(3), Linear(3)
    xa, xb = a(X), b(X)
    np.testing.assert_allclose(Parallel([[a], [b]])(X), np.concatenate([xa, xb], axis=1))
    np.testing.assert_allclose(Parallel([[a], [b]], merge="add")(X), xa + xb, rtol=1e-6)
    np.testing.assert_allclose(Parallel([[a], [b]], merge="mul")(X), xa * xb, rtol=1e-6)
    images = np.ones((2, 3, 5), dtype=np.float32)
    assert Parallel([["Tanh"], ["Sigmoid"]], axis=1)(images).shape == (2, 6, 5)
    assert Parallel([Tanh(), "Sigmoid"], axis=-2)(images).shape == (2, 6, 5)  # a layer is a branch of one


@pytest.mark.parametrize("kwargs, message", [
    ({"branches": [["Tanh"]]}, "at least two branches"),
    ({"branches": "Tanh"}, "at least two branches"),
    ({"branches": [["Tanh"], ["Relu"]], "merge": "max"}, "merge must be one of 'concat', 'add', 'mul'"),
    ({"branches": [["Tanh"], ["Relu"]], "axis": 0}, "axis 0 is the batch"),
    ({"branches": [["Tanh"], [{"units": 3}]]}, r"branches\[1\]\[0\].*'type'"),
    ({"branches": [["Tanh"], [3]]}, r"Parallel\(branches\[1\]\[0\]=3 \(int\)\)"),
    ({"branches": [["Tanh"], [{"type": "Embedding", "num_embeddings": 4, "dim": 2}]]}, "integer indices"),
])
def test_parallel_arguments_are_checked(kwargs, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.layer("Parallel", **kwargs)


@pytest.mark.parametrize("name, layers, message", [
    ("Sequential", [], "non-empty list of layers"),
    ("Sequential", "Relu", "non-empty list of layers"),
    ("Residual", ["Relu", "NoSuchLayer"], "NoSuchLayer"),
    ("Residual", [{"type": "Embedding", "num_embeddings": 4, "dim": 2}], "integer indices"),
])
def test_layer_lists_are_checked(name, layers, message):
    with pytest.raises(lamina.LaminaError, match=message):
        lamina.layer(name, layers)


def test_parallel_shape_mismatch_names_the_shapes():
    with pytest.raises(lamina.ShapeError, match=r"\(32, 3\), \(32, 4\).*'add' needs them all the same"):
        Parallel([[Linear(3)], ["Tanh"]], merge="add")(X)
    with pytest.raises(lamina.ShapeError, match=r"no axis 2 besides the batch axis"):
        Parallel([["Tanh"], ["Relu"]], axis=2)(X)


def test_a_shape_error_deep_inside_names_the_path():
    model = lamina.Model([Sequential([Linear(3), Residual([Linear(2)])])])
    with pytest.raises(lamina.ShapeError,
                       match=r"Model.layers\[0\] \(Sequential\): Sequential.layers\[1\] \(Residual\): Residual:"):
        model(X)


def test_a_rejected_first_input_leaves_every_sublayer_unbuilt():
    layer = Sequential([Linear(3), Residual([Linear(2)])])
    with pytest.raises(lamina.ShapeError):
        layer(X)  # the Residual rejects it after the first Linear was built for 4 features
    assert layer.parameters() == {}
    wider = np.ones((2, 6), dtype=np.float32)
    with pytest.raises(lamina.ShapeError):
        layer(wider)
    fixed = Sequential([Linear(3), Residual([Linear(3)])])
    assert fixed(wider).shape == (2, 3)


def test_training_mode_reaches_nested_layers():
    lamina.seed(0)
    dropout = Dropout(0.5)
    model = lamina.Model([Linear(4), Residual([Sequential([dropout])])])
    model.set_training(True)
    assert dropout.training
    with model.inference():
        assert not dropout.training
        np.testing.assert_array_equal(model(X), model(X))
    assert dropout.training
    model.set_training(False)
    assert not dropout.training


def test_sublayers_made_in_build_take_the_parents_mode():
    class Block(lamina.Layer):
        def build(self, x):
            self.drop = Dropout(0.5)

        def forward(self, x):
            return self.drop(x)

    block = Block()
    block.training = True
    out = block(np.ones((50, 20)))
    assert (out == 0).any()  # the Dropout made in build drops in training


def test_the_first_layers_input_gradient_is_skipped_inside_composites():
    model = lamina.Model([Sequential([Linear(4), "Tanh"]), Parallel([[Linear(2)], [Linear(2)]]), Residual([Linear(4)])])
    model.set_training(True)
    first = model.layers[0]
    assert not first.needs_input_grad and not first.layers[0].needs_input_grad
    assert first.layers[1].needs_input_grad
    assert model.layers[1].branches[0][0].needs_input_grad
    model.train(X, X, epochs=2, verbose=False)
    model.set_training(False)
    assert first.layers[0].needs_input_grad


def test_integer_input_passes_through_a_sequential():
    ids = np.random.default_rng(0).integers(0, 9, size=(32, 5))
    model = lamina.Model([Sequential([{"type": "Embedding", "num_embeddings": 9, "dim": 3}, "Flatten"]), Linear(1)])
    assert model.layers[0].integer_input
    history = model.train(ids, Y, optim="Adam", epochs=3, verbose=False)
    assert np.isfinite(history["loss"]).all()


def test_backward_before_forward_names_the_place():
    layer = Residual([Sequential([Linear(2), "Tanh"])])
    with pytest.raises(lamina.LaminaError,
                       match=r"Residual.layers\[0\] \(Sequential\): Sequential.layers\[1\] \(Tanh\).*before forward"):
        layer.backward(np.ones((2, 2)))


def test_an_error_inside_a_nested_layer_gets_a_note_for_each_level():
    class Broken(lamina.Layer):
        def forward(self, x):
            raise RuntimeError("kaboom")

    model = lamina.Model([Linear(4), Residual([Sequential([Tanh(), Broken()])])])
    with pytest.raises(RuntimeError) as info:
        model(X)
    assert str(info.value) == "kaboom"  # its type and message as they were
    assert info.value.__notes__ == [
        "raised in the forward pass of Sequential.layers[1], Broken()",
        f"raised in the forward pass of Residual.layers[0], {model.layers[1].layers[0]!r}",
        f"raised in the forward pass of Model.layers[1], {model.layers[1]!r}",
    ]


def test_a_shape_error_in_a_parallel_branch_names_the_branch():
    inner = Linear(2)
    inner(np.ones((1, 3), dtype=np.float32))  # built for 3 features; the input has 4
    with pytest.raises(lamina.ShapeError,
                       match=r"^Parallel.branches\[1\]\[0\] \(Linear\): Linear\(units=2\) was built"):
        Parallel([[Tanh()], [inner]])(X)


def test_summary_shows_the_tree():
    model = lamina.Model(NESTED)
    model(X)
    text = model.summary()
    lines = text.splitlines()
    assert any(line.split()[:2] == ["1.layers.0", "Linear(units=8)"] for line in lines), text
    assert any(line.split()[:2] == ["2", "Parallel()"] and line.split()[2:4] == ["(None,", "11)"]
               for line in lines), text
    assert any(line.startswith("2.branches.1.0") and "Sigmoid()" in line and "(None, 8)" in line
               for line in lines), text
    total = sum(p.size for p in model.parameters().values())
    assert text.endswith(f"Total params: {total:,}")


def test_a_forward_only_layer_can_hold_composites():
    class Gate(lamina.Layer):
        def __init__(self):
            self.value = Sequential([Linear(4), "Tanh"])
            self.gate = Linear(4)

        def forward(self, x):
            return self.value(x) * lamina.ops.sigmoid(self.gate(x))

    x = np.random.default_rng(1).normal(size=(3, 4))
    layer = Gate()
    layer(x)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"input", "value.layers.0.weight", "value.layers.0.bias", "gate.weight", "gate.bias"}
    assert max(errors.values()) < 1e-7, errors


def test_resume_of_a_nested_model_reaches_the_uninterrupted_weights(tmp_path):
    def make():
        lamina.seed(4)
        return lamina.Model([Linear(8), Residual([Dropout(0.3), Linear(8), "Tanh"]), Linear(1)])

    options = dict(optim="Adam", epochs=6, batch_size=8, verbose=False)
    whole = make()
    whole.train(X, Y, **options)
    checkpoint = tmp_path / "ck.lamina"
    first = make()
    first.train(X, Y, **dict(options, epochs=3), callbacks=[lamina.Checkpoint(checkpoint)])
    resumed = make()
    resumed.train(X, Y, **options, resume_from=checkpoint)
    for a, b in zip(resumed.parameters().values(), whole.parameters().values()):
        assert a.value.tobytes() == b.value.tobytes()


RESIDUAL_TOML = """
seed = 0
epochs = 3
batch_size = 16
output = "{output}"

[dataset]
name = "spirals"
n_samples = 120

[[layers]]
type = "Linear"
units = 16

[[layers]]
type = "Residual"
layers = [{{type = "Linear", units = 16}}, "Relu"]

[[layers]]
type = "Parallel"
merge = "add"
[[layers.branches]]
type = "Linear"
units = 3
[[layers.branches]]
type = "Sequential"
layers = [{{type = "Linear", units = 3}}, "Tanh"]

[loss]
type = "CrossEntropy"
from_logits = true
"""


def test_lamina_train_builds_nested_layers_from_toml(tmp_path):
    config = tmp_path / "nested.toml"
    config.write_text(RESIDUAL_TOML.format(output=(tmp_path / "run").as_posix()))
    result = run_python("-m", "lamina", "train", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = lamina.load(tmp_path / "run" / "model.npz")
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "Residual", "Parallel"]
    assert "1.layers.0.weight" in model.parameters()


def test_check_plugins_runs_on_composites():
    result = run_python("-m", "lamina", "check-plugins", "Sequential", "Residual", "Parallel")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


class Highway(lamina.Layer):
    """docs/pages/writing-plugins.md's example of a layer made of layers, verbatim."""

    def __init__(self, transform="Tanh"):
        # stored as a Layer under the argument's name: saved with the model, its parameters
        # found as "transform.weight", ...
        self.transform = lamina.resolve("layer", transform, "transform", "Highway")

    def build(self, x):
        self.gate = lamina.layer("Linear", x.shape[-1])     # found as "gate.weight", "gate.bias"

    def forward(self, x):
        t = lamina.ops.sigmoid(self.gate(x))
        return t * self.transform(x) + (1 - t) * x


def test_the_guides_highway_example_passes_the_kit_and_saves(tmp_path):
    plugin = types.SimpleNamespace(register_layers=lamina.hookimpl(lambda register: register(Highway)))
    lamina.register_plugin(plugin, package="lamina-test-highway")
    try:
        spec = {"type": "Sequential", "layers": [{"type": "Linear", "units": 3}, "Relu"]}
        results = check_plugin(Highway, sample_shapes=[(4, 3)], transform=spec)
        assert all(r.ok is not False for r in results), format_failures(results)
        model = lamina.Model([Linear(4), {"type": "Highway", "transform": {"type": "Linear", "units": 4}}, Linear(1)])
        model.train(X, Y, optim="Adam", epochs=3, verbose=False)
        assert list(model.parameters())[2:6] == ["1.transform.weight", "1.transform.bias", "1.gate.weight",
                                                 "1.gate.bias"]
        model.save(tmp_path / "highway.npz")
        np.testing.assert_array_equal(lamina.load(tmp_path / "highway.npz")(X), model(X))
    finally:
        lamina.get_registry().remove_package("lamina-test-highway")
