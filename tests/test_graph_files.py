"""Graph models and chains that use one layer twice, in model files (saved, loaded, bit-exact), in
weights files and state dicts by name, and in `summary()`."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lamina

F64 = "float64"
DATA = Path(__file__).parent / "data"


def two_outputs():
    """Two inputs, a shared encoder (used on both), a merge, two heads."""
    a, b = lamina.Input((6,), name="a", dtype=F64), lamina.Input((1, 4, 4), name="b", dtype=F64)
    enc = lamina.layer("Linear", 8)
    h = lamina.layer("Concatenate")([lamina.layer("Tanh")(enc(a)), lamina.layer("Flatten")(b)])
    again = enc(lamina.layer("Linear", 6)(a))
    box = lamina.layer("Add")([again, lamina.layer("Linear", 8)(h)])
    return lamina.Model(inputs={"a": a, "b": b}, outputs={"cls": lamina.layer("Linear", 3)(h), "box": box})


def data(rows=6, seed=0):
    rng = np.random.default_rng(seed)
    x = {"a": rng.normal(size=(rows, 6)), "b": rng.normal(size=(rows, 1, 4, 4))}
    y = {"cls": rng.integers(0, 3, size=rows), "box": rng.normal(size=(rows, 8))}
    return x, y


LOSSES = {"cls": lamina.loss("CrossEntropy", from_logits=True), "box": "MSE"}


def config_of(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def test_a_graph_model_round_trips_bit_exactly_with_its_losses(tmp_path):
    lamina.seed(3)
    model, (x, y) = two_outputs(), data()
    model.train(x, y, loss=LOSSES, loss_weights={"cls": 1.0, "box": 0.5}, epochs=2, verbose=False)
    model.save(tmp_path / "m.npz", include_optimizer=True)
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.graph.describe() == model.graph.describe()
    assert (loaded.input_names, loaded.output_names, loaded.output_format) == (("a", "b"), ("cls", "box"), "dict")
    before, after = model.predict(x), loaded.predict(x)
    assert set(after) == {"cls", "box"}
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    assert len(loaded.layers) == len(model.layers) == 8  # the shared encoder once
    assert loaded.loss.loss_weights == {"cls": 1.0, "box": 0.5}
    assert [type(loss).__name__ for loss in loaded.loss.losses.values()] == ["CrossEntropy", "MSE"]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)  # the saved losses are the default
    config = config_of(tmp_path / "m.npz")
    assert config["format_version"] == 2 and config["input_shape"] is None
    assert config["graph"] == model.graph.describe()


def test_a_loaded_graph_model_trains_on_exactly_as_the_saved_one(tmp_path):
    lamina.seed(4)
    model, (x, y) = two_outputs(), data()
    options = dict(loss=LOSSES, optim=lamina.optimizer("Adam", lr=0.01), epochs=2, verbose=False, batch_size=3)
    model.train(x, y, **options)
    model.save(tmp_path / "m.npz", include_optimizer=True)
    loaded = lamina.load(tmp_path / "m.npz")
    options.pop("optim")
    ours, theirs = model.train(x, y, optim=model.optimizer, **options), loaded.train(x, y, optim=loaded.optimizer,
                                                                                   **options)
    assert ours["loss"] == theirs["loss"]


def test_a_single_input_graph_and_list_outputs_round_trip(tmp_path):
    lamina.seed(5)
    x_in = lamina.Input((3,))
    h = lamina.layer("Linear", 4)(x_in)
    model = lamina.Model(inputs=x_in, outputs=[lamina.layer("Relu")(h), lamina.layer("Multiply")([h, h])])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.output_format == "list" and loaded.input_shape == (3,)
    for ours, theirs in zip(model.predict(x), loaded.predict(x)):
        np.testing.assert_array_equal(theirs, ours)


def test_a_chain_that_uses_one_layer_twice_saves_and_loads_sharing_it(tmp_path):
    lamina.seed(6)
    shared = lamina.layer("Linear", 3)
    model = lamina.Model([shared, "Relu", shared, lamina.layer("Linear", 2)])
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    model.train(x, np.ones((5, 2)), epochs=2, verbose=False)
    model.save(tmp_path / "m.npz")
    config = config_of(tmp_path / "m.npz")
    assert (len(config["layers"]), config["order"], config["format_version"]) == (3, [0, 1, 0, 2], 2)
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.layers[0] is loaded.layers[2] and loaded.shared == model.shared
    assert list(loaded.parameters()) == list(model.parameters())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_plain_chain_is_written_as_before_and_old_files_load():
    model = lamina.load(DATA / "before_the_house.npz")
    assert model.graph is None and len(model.layers) >= 1


def test_a_plain_chain_file_has_no_order_and_format_version_1(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 2), "Relu"])
    model.predict(np.ones((1, 3)))
    config = config_of(model.save(tmp_path / "m.npz"))
    assert config["format_version"] == 1 and "order" not in config and "graph" not in config


def test_a_layer_shared_inside_another_layer_is_refused_at_save_naming_both_places(tmp_path):
    inner = lamina.layer("Linear", 3)
    model = lamina.Model([lamina.layer("Sequential", [inner, "Relu"]), inner])
    model.predict(np.ones((1, 3)))
    with pytest.raises(lamina.ArgumentError, match=r"sits at 0.layers.0 and at 1 .*separate layers"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_node_with_keyword_arguments_keeps_them_in_the_description():
    x_in = lamina.Input((3,))
    out = lamina.layer("Relu")(x_in)
    model = lamina.Model(inputs=x_in, outputs=out)
    assert "kwargs" not in model.graph.describe()["nodes"][0]  # only when a call has some


def test_a_graph_models_state_dict_and_weights_files_go_by_the_layers_first_use(tmp_path):
    lamina.seed(7)
    model, (x, _) = two_outputs(), data()
    state = model.state_dict()
    assert list(state)[:2] == ["0.weight", "0.bias"] and "4.weight" in state  # the encoder once, at its first use
    assert len(state) == 2 * 4  # four Linears, one of them shared
    lamina.seed(8)
    other = two_outputs()
    assert other.load_state_dict(state).ok
    for name in ("cls", "box"):
        np.testing.assert_array_equal(other.predict(x)[name], model.predict(x)[name])
    for layout in ("lamina", "torch"):
        model.save_weights(tmp_path / f"{layout}.safetensors", layout=layout)
        lamina.seed(9)
        fresh = two_outputs()
        report = fresh.load_weights(tmp_path / f"{layout}.safetensors", layout=layout)
        assert report.ok
        np.testing.assert_array_equal(fresh.predict(x)["box"], model.predict(x)["box"])


def test_the_summary_of_a_graph_lists_nodes_with_their_inputs_and_counts_a_shared_layer_once():
    lamina.seed(10)
    model = two_outputs()
    text = model.summary()
    lines = text.splitlines()
    assert lines[0].split() == ["#", "Layer", "Output", "shape", "Params", "Inputs"]
    rows = {line.split()[0]: line for line in lines[2:-3]}
    assert rows["a"].split()[1:] == ["Input", "(None,", "6)", "0"]
    assert rows["0"].endswith("56  a")  # Linear(8) on a: 6 * 8 + 8 parameters
    assert rows["3"].rstrip().endswith("1, 2") and "Concatenate" in rows["3"]
    assert "(shared with node 0)" in rows["5"] and rows["5"].rstrip().endswith("4")
    assert lines[-2] == "Outputs: 'cls' = node 8, 'box' = node 7"
    counted = sum(p.size for p in model.parameters().values())
    assert lines[-1] == f"Total params: {counted:,}"
    assert counted == 56 + 42 + 8 * (8 + 16) + 8 + 3 * 24 + 3
