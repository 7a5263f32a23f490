"""GraphBlock: third-party layers whose inside is a graph of layers; the kit and check-plugins on a
registered one, gradients, shared layers inside and a block shared outside, files, ONNX."""
from __future__ import annotations

import json
import textwrap
import types

import numpy as np
import pytest
from conftest import make_distribution, run_python
from test_registry import unique

import lamina
from lamina.testing import check_layer_gradients, check_plugin, format_failures, numerical_gradient, relative_error

# A third-party plugin module: a gated residual block, and one that uses one layer twice.
PLUGIN = '''
import lamina


class GatedBlock(lamina.GraphBlock):
    """y = x + Linear(x) * sigmoid(Linear'(x)): a gated residual unit, written as a graph."""

    conformance_cases = [lamina.Case({"units": 3}, (4, 3), wrong_shape=(4, 5)),
                         lamina.Case({"units": 2}, (2, 3, 2))]

    def __init__(self, units: int = 8):
        self.units = units

    def graph(self, x):
        h = lamina.layer("Linear", self.units)(x)
        gate = lamina.layer("Sigmoid")(lamina.layer("Linear", self.units)(x))
        return lamina.layer("Add")([x, lamina.layer("Multiply")([h, gate])])


class TwiceBlock(lamina.GraphBlock):
    """One Linear (an attribute) used twice: y = concat(tanh(dense(x)), dense(tanh(dense(x))))."""

    conformance_cases = [lamina.Case({"units": 3}, (4, 3))]

    def __init__(self, units: int = 3):
        self.units = units
        self.dense = lamina.layer("Linear", units)

    def graph(self, x):
        once = lamina.layer("Tanh")(self.dense(x))
        return lamina.layer("Concatenate")([once, self.dense(once)])


@lamina.hookimpl
def register_layers(register):
    register(GatedBlock)
    register(TwiceBlock)
'''


@pytest.fixture(scope="module")
def plugin():
    """The plugin module, registered as a package is (by its hook), for the tests in this process."""
    module = types.ModuleType(unique("lamina_graph_blocks"))
    exec(compile(PLUGIN, module.__name__, "exec"), vars(module))
    lamina.register_plugin(module, package="lamina-test-graph-blocks")
    yield module
    lamina.get_registry().remove_package("lamina-test-graph-blocks")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_a_gated_block_computes_its_graph_and_names_its_layers_by_position(plugin):
    lamina.seed(0)
    block = plugin.GatedBlock(4)
    x = np.random.default_rng(0).normal(size=(5, 4))
    y = block(x)
    assert list(block.parameters()) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [type(layer).__name__ for layer in block.layers] == ["Linear", "Linear", "Sigmoid", "Multiply", "Add"]
    first, second = block.layers[0], block.layers[1]
    h = x @ first.weight.value + first.bias.value
    gate = sigmoid(x @ second.weight.value + second.bias.value)
    np.testing.assert_allclose(y, x + h * gate, rtol=1e-12)


def test_layers_that_are_attributes_keep_their_names_and_a_shared_one_adds_both_gradients(plugin):
    lamina.seed(1)
    block = plugin.TwiceBlock(3)
    x = np.random.default_rng(1).normal(size=(4, 3))
    assert block.parameters() == {}  # the Linear builds its weights on the first input
    y = block(x)
    assert list(block.parameters()) == ["dense.weight", "dense.bias"]  # Tanh and Concatenate have none
    once = np.tanh(x @ block.dense.weight.value + block.dense.bias.value)
    np.testing.assert_allclose(y, np.concatenate([once, once @ block.dense.weight.value + block.dense.bias.value], 1),
                               rtol=1e-12)
    errors = check_layer_gradients(plugin.TwiceBlock(3), x)
    assert set(errors) == {"input", "dense.weight", "dense.bias"} and max(errors.values()) < 1e-7


@pytest.mark.parametrize("name", ["GatedBlock", "TwiceBlock"])
def test_the_kit_passes_a_registered_graph_block(plugin, name):
    results = check_plugin(getattr(plugin, name))
    assert all(result.ok is not False for result in results), format_failures(results)
    passed = {result.property for result in results if result.ok}
    assert {"gradients", "round_trip", "accumulates", "dtype", "shape", "seeded"} <= passed


def test_check_plugins_passes_a_graph_block_installed_through_an_entry_point(tmp_path):
    site = make_distribution(tmp_path / "site", "lamina-graph-blocks", "0.1",
                             {unique("lamina_graph_blocks"): textwrap.dedent(PLUGIN)})
    result = run_python("-m", "lamina", "check-plugins", "GatedBlock", "TwiceBlock", "--json", pythonpath=site)
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(result.stdout)
    assert sorted(record["name"] for record in records) == ["GatedBlock", "TwiceBlock"]
    assert all(record["passed"] for record in records)


def test_a_wrong_shape_is_refused_naming_the_block_and_leaves_it_unbuilt(plugin):
    block = plugin.GatedBlock(3)
    with pytest.raises(lamina.ShapeError, match=r"GatedBlock: calling Add\(\) on symbolic input .*same shape"):
        block(np.ones((2, 4)))  # the residual Add needs units == features
    assert "layers" not in vars(block) and block.parameters() == {}
    assert block(np.ones((2, 3))).shape == (2, 3)
    with pytest.raises(lamina.ShapeError, match="GatedBlock: .*Linear"):
        block(np.ones((2, 5)))


def test_a_block_used_twice_in_a_graph_model_matches_finite_differences(plugin):
    lamina.seed(2)
    block = plugin.TwiceBlock(3)
    a, b = lamina.Input((3,), dtype="float64"), lamina.Input((3,), dtype="float64")
    out = lamina.layer("Concatenate")([block(a), block(lamina.layer("Tanh")(b))])
    model = lamina.Model(inputs=[a, b], outputs=lamina.layer("Linear", 2)(out))
    rng = np.random.default_rng(3)
    x, r = [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))], rng.normal(size=(2, 2))
    model.zero_grad()
    model.set_training(True)
    model.forward(x)
    model.backward(r)
    analytic = {name: p.grad.copy() for name, p in model.parameters().items()}
    assert list(analytic) == ["0.dense.weight", "0.dense.bias", "3.weight", "3.bias"]
    numeric = {name: numerical_gradient(lambda: float(np.sum(model.forward(x) * r)), p.value)
               for name, p in model.parameters().items()}
    assert max(relative_error(analytic[k], numeric[k]) for k in analytic) < 1e-7


def test_a_block_first_in_a_model_skips_its_input_gradient_and_trains(plugin):
    lamina.seed(3)
    model = lamina.Model([plugin.GatedBlock(2), lamina.layer("Linear", 1)])
    x = np.random.default_rng(4).normal(size=(32, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:]).astype(np.float32)
    history = model.train(x, y, loss="MSE", optim="Adam", epochs=30, batch_size=8, verbose=False)
    assert history["loss"][-1] < history["loss"][0]
    block = model.layers[0]
    model.set_training(True)
    assert not block.needs_input_grad and not block.layers[0].needs_input_grad
    assert block.layers[-1].needs_input_grad  # the residual Add reads the input and the product
    model.forward(x)
    assert model.backward(np.ones((32, 1), np.float32)) is None


def test_a_block_round_trips_through_a_file_by_its_configuration(plugin, tmp_path):
    lamina.seed(4)
    model = lamina.Model([plugin.TwiceBlock(3), plugin.GatedBlock(6), lamina.layer("Linear", 2)])
    x = np.random.default_rng(5).normal(size=(4, 3))
    before = model.predict(x)
    model.save(tmp_path / "blocks.npz")
    loaded = lamina.load(tmp_path / "blocks.npz")
    assert list(loaded.parameters()) == list(model.parameters())
    assert repr(loaded.layers[1]) == "GatedBlock(units=6)"
    np.testing.assert_array_equal(loaded.predict(x), before)


def test_a_block_exports_to_onnx_inline_in_a_chain_and_in_a_graph(plugin, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from conftest import onnx_difference
    from test_onnx_graph import difference

    lamina.seed(5)
    chain = lamina.Model([plugin.GatedBlock(3), plugin.TwiceBlock(3)])
    chain(np.ones((2, 3), np.float32))
    assert onnx_difference(chain, tmp_path) <= 1e-5
    names = [init.name for init in onnx.load(str(tmp_path / "model.onnx")).graph.initializer]
    assert names == list(chain.parameters())  # inline, named by path; the shared dense stored once
    a, b = lamina.Input((3,), name="a"), lamina.Input((3,), name="b")
    block = plugin.TwiceBlock(3)
    graph = lamina.Model(inputs={"a": a, "b": b},
                         outputs={"y": lamina.layer("Add")([block(a), block(plugin.GatedBlock(3)(b))])})
    assert difference(graph, tmp_path) <= 1e-5


def test_blocks_that_cannot_be_built_say_why(plugin):
    class NoGraph(lamina.GraphBlock):
        pass

    class ReturnsInput(lamina.GraphBlock):
        def graph(self, x):
            return x

    class ReturnsArray(lamina.GraphBlock):
        def graph(self, x):
            return np.zeros(3)

    class OwnLayers(lamina.GraphBlock):
        def __init__(self):
            self.layers = [lamina.layer("Linear", 2)]

        def graph(self, x):
            return self.layers[0](x)

    with pytest.raises(NotImplementedError, match=r"NoGraph must implement graph\(self, x\)"):
        NoGraph()(np.ones((2, 3)))
    with pytest.raises(lamina.LaminaError, match=r"ReturnsInput.graph\(x\) must return .*got x itself"):
        ReturnsInput()(np.ones((2, 3)))
    with pytest.raises(lamina.LaminaError, match=r"ReturnsArray.graph\(x\) must return .*got array.*ndarray"):
        ReturnsArray()(np.ones((2, 3)))
    with pytest.raises(lamina.ArgumentError, match=r"keeps the layers made inside graph\(\) in self.layers"):
        OwnLayers()(np.ones((2, 3)))
    with pytest.raises(lamina.LaminaError, match="has not seen an input yet"):
        _ = plugin.GatedBlock(2).network
    block = plugin.GatedBlock(2)
    block(np.ones((2, 2)))
    block.release()
    with pytest.raises(lamina.LaminaError, match="backward was called before forward"):
        block.backward(np.ones((2, 2)))


def test_a_layer_shared_between_a_block_and_the_outer_graph_gets_every_gradient_in_training():
    # the block reads only the model's input, but its inner layer is used again outside: both need input gradients
    class Inner(lamina.GraphBlock):
        def __init__(self, inner=None):
            self.inner = inner

        def graph(self, x):
            return self.inner(x)

    lamina.seed(0)
    shared = lamina.layer("Linear", 3)
    x = lamina.Input((3,), dtype="float64")
    model = lamina.Model(inputs=x, outputs=shared(Inner(shared)(x)))
    rows = np.random.default_rng(0).normal(size=(5, 3))

    def gradients(training):
        model.set_training(training)
        model.zero_grad()
        out = model.forward(rows)
        model.backward(np.ones_like(out))
        return {name: param.grad.copy() for name, param in model.parameters().items()}

    training, inference = gradients(True), gradients(False)
    for name in training:
        np.testing.assert_allclose(training[name], inference[name], rtol=1e-12)
