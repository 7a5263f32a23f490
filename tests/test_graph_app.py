"""Graph models in use: layer calls with keyword arguments (Embedding's reverse mode, tied
embeddings), the digit_pairs dataset, and `lamina train` configs with [[inputs]], [[nodes]], outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import lamina
from lamina.app import config as runconfig
from lamina.testing import check_layer_gradients, numerical_gradient, relative_error

F64 = "float64"


def tied_model(vocabulary=7, dim=4, seq_len=5):
    """A tiny character model whose output layer is its input Embedding, reversed."""
    ids = lamina.Input((seq_len,), name="ids", dtype="int64")
    emb = lamina.layer("Embedding", vocabulary, dim, dtype=F64)
    h = lamina.layer("Tanh")(lamina.layer("Linear", dim)(emb(ids)))
    return lamina.Model(inputs=ids, outputs=emb(h, reverse=True))


def ids(rows=3, seq_len=5, vocabulary=7, seed=0):
    return np.random.default_rng(seed).integers(0, vocabulary, size=(rows, seq_len))


# -- keyword arguments of a layer call ---------------------------------------------------------------


def test_reverse_mode_computes_h_times_the_weight_transposed():
    lamina.seed(0)
    emb = lamina.layer("Embedding", 6, 3, dtype=F64)
    h = np.random.default_rng(1).normal(size=(2, 4, 3))
    np.testing.assert_allclose(emb(h, reverse=True), h @ emb.weight.value.T, rtol=1e-12)
    np.testing.assert_array_equal(emb(np.array([[5, 0]])), emb.weight.value[[[5, 0]]])  # forward unchanged
    with pytest.raises(lamina.ShapeError, match=r"Embedding\(reverse=True\) needs an input with a last axis of size "
                                                r"3, got shape \(2, 4\)"):
        emb(np.ones((2, 4)), reverse=True)
    with pytest.raises(lamina.ArgumentError, match=r"Embedding\(reverse=.yes.\): reverse must be"):
        emb(h, reverse="yes")


class Reversed(lamina.Layer):
    """A hand-written wrapper calling an Embedding in reverse: the gradient checker calls layer(x)."""

    def __init__(self, emb):
        self.emb = emb

    def forward(self, x):
        return self.emb(x, reverse=True)

    def backward(self, grad):
        return self.emb.backward(grad)

    def to_onnx(self, graph, x):
        return self.emb.to_onnx(graph, x, reverse=True)


def test_reverse_mode_gradients_match_finite_differences():
    lamina.seed(2)
    layer = Reversed(lamina.layer("Embedding", 5, 3, dtype=F64))
    errors = check_layer_gradients(layer, np.random.default_rng(3).normal(size=(2, 4, 3)))
    assert set(errors) == {"input", "emb.weight"}
    assert max(errors.values()) < 1e-7


def test_reverse_mode_exports_to_onnx_as_a_matmul_with_the_transposed_weight(tmp_path):
    from conftest import onnxruntime

    if onnxruntime is None:
        pytest.skip("ONNX export: pip install -e '.[onnx]' onnxruntime")
    lamina.seed(10)
    model = lamina.Model([lamina.layer("Linear", 3), Reversed(lamina.layer("Embedding", 6, 3))])
    x = np.random.default_rng(11).normal(size=(4, 2, 5)).astype(np.float32)
    expected = model.predict(x)
    path = model.export_onnx(tmp_path / "reversed.onnx")
    out = onnxruntime.InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_tied_embeddings_add_the_gradients_of_both_uses_as_finite_differences_say():
    lamina.seed(4)
    model = tied_model()
    x, r = ids(), np.random.default_rng(5).normal(size=(3, 5, 7))
    model.set_training(True)
    model.zero_grad()
    model.forward(x)
    model.backward(r)
    analytic = {name: p.grad.copy() for name, p in model.parameters().items()}
    assert list(analytic) == ["0.weight", "1.weight", "1.bias"]  # one matrix, in and out
    numeric = {name: numerical_gradient(lambda: float(np.sum(model.forward(x) * r)), p.value)
               for name, p in model.parameters().items()}
    assert max(relative_error(analytic[k], numeric[k]) for k in analytic) < 1e-7


def test_one_sgd_step_of_a_tied_model_equals_pytorchs():
    torch = pytest.importorskip("torch")
    lamina.seed(6)
    model = tied_model()
    x, y = ids(4, seed=7), ids(4, seed=8)
    emb, lin = model.layers[0], model.layers[1]
    t_emb = torch.nn.Embedding(7, 4).double()
    t_emb.weight.data = torch.tensor(emb.weight.value.copy())
    t_lin = torch.nn.Linear(4, 4).double()
    t_lin.weight.data, t_lin.bias.data = torch.tensor(lin.weight.value.T.copy()), torch.tensor(lin.bias.value.copy())
    lr = 0.5
    model.train(x, y, optim=lamina.optimizer("SGD", lr=lr), loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=1, verbose=False)
    logits = torch.nn.functional.linear(torch.tanh(t_lin(t_emb(torch.tensor(x)))), t_emb.weight)
    torch.nn.functional.cross_entropy(logits.reshape(-1, 7), torch.tensor(y).reshape(-1)).backward()
    with torch.no_grad():
        for param in (t_emb.weight, t_lin.weight, t_lin.bias):
            param -= lr * param.grad
    np.testing.assert_allclose(emb.weight.value, t_emb.weight.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lin.weight.value, t_lin.weight.detach().numpy().T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lin.bias.value, t_lin.bias.detach().numpy(), rtol=1e-10, atol=1e-14)


def test_a_nodes_keyword_arguments_are_in_its_description_and_come_back():
    lamina.seed(9)
    model, x = tied_model(), ids()
    description = model.graph.describe()
    assert json.loads(json.dumps(description)) == description
    assert description["nodes"][-1] == {"layer": 0, "inputs": [["node", 2]], "list": False,
                                        "kwargs": {"reverse": True}}
    assert "kwargs" not in description["nodes"][0]  # a call without keywords says nothing
    rebuilt = type(model.graph).from_description(description, model.layers)
    assert rebuilt.describe() == description
    np.testing.assert_array_equal(rebuilt.forward(x, np.dtype(F64)), model.predict(x))


def test_keyword_arguments_that_cannot_be_saved_or_are_not_taken_are_refused():
    h = lamina.Input((3,))
    emb = lamina.layer("Embedding", 5, 3)
    with pytest.raises(lamina.ArgumentError, match=r"Embedding was called with the keyword arguments \['reversed'\], "
                                                   r"but its forward takes \(x.*reverse"):
        emb(h, reversed=True)
    with pytest.raises(lamina.ArgumentError, match=r"Embedding was called with the keyword arguments \['bogus'\]"):
        emb(np.zeros((1, 2), dtype=np.int64), bogus=1)
    with pytest.raises(lamina.ArgumentError, match="must be JSON values"):
        emb(h, reverse=np.bool_(True))
    description = tied_model().graph.describe()
    description["nodes"][-1]["kwargs"] = ["reverse"]
    with pytest.raises(lamina.ArgumentError, match=r"nodes\[3\].kwargs is .*not a dict of keyword arguments"):
        type(tied_model().graph).from_description(description, tied_model().layers)


def test_a_keyword_call_inside_a_derived_forward_says_it_is_not_supported():
    class Tied(lamina.Layer):  # forward-only: its forward is recorded while training
        def __init__(self):
            self.emb = lamina.layer("Embedding", 5, 3, dtype=F64)

        def forward(self, x):
            return self.emb(np.tanh(self.emb(x)), reverse=True)

    model = lamina.Model([Tied()])
    x = ids(2, 4, 5)
    assert model.predict(x).shape == (2, 4, 5)  # inference records nothing: it works
    with pytest.raises(lamina.LaminaError, match=r"keyword arguments \['reverse'\] inside another layer's derived"):
        model.train(x, x, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=1, verbose=False)


# -- the digit_pairs dataset ------------------------------------------------------------------------------


def test_digit_pairs_are_balanced_labelled_by_digit_and_keep_test_images_out_of_training():
    x, y, x_test, y_test = lamina.dataset("digit_pairs")
    digits = lamina.dataset("digits")
    label = {row.tobytes(): digit for part in ((digits[0], digits[1]), (digits[2], digits[3]))
             for row, digit in zip(*part)}
    for pairs, same in ((x, y), (x_test, y_test)):
        assert set(pairs) == {"left", "right"} and pairs["left"].shape == pairs["right"].shape
        assert same.shape == (len(pairs["left"]), 1) and same.dtype == np.float32
        assert abs(same.mean() - 0.5) < 0.01  # balanced
        left = np.array([label[row.tobytes()] for row in pairs["left"]])
        right = np.array([label[row.tobytes()] for row in pairs["right"]])
        np.testing.assert_array_equal(same[:, 0] == 1, left == right)
        assert not np.all(pairs["left"] == pairs["right"], axis=1).any()  # never an image with itself
    training = {row.tobytes() for row in digits[0]}
    assert not any(row.tobytes() in training for side in x_test.values() for row in side)
    assert len(x["left"]) == len(digits[0]) and len(x_test["left"]) == len(digits[2])


def test_digit_pairs_are_seeded_and_give_digit_targets_on_request():
    first, again, other = (lamina.dataset("digit_pairs", seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(first[0]["right"], again[0]["right"])
    assert not np.array_equal(first[0]["right"], other[0]["right"])
    x, y, _, _ = lamina.dataset("digit_pairs", per_image=3, digits=True)
    assert set(y) == {"same", "left_digit", "right_digit"} and len(y["same"]) == 3 * 1438
    np.testing.assert_array_equal(y["same"][:, 0] == 1, y["left_digit"] == y["right_digit"])
    with pytest.raises(lamina.ArgumentError, match=r"digit_pairs\(per_image=0\): per_image must be a positive int"):
        lamina.dataset("digit_pairs", per_image=0)


# -- lamina train configs for graph models ------------------------------------------------------------------

PAIRS = """
seed = 0
epochs = 2
batch_size = 64
outputs = "same"
metrics = ["binary_accuracy"]

[dataset]
name = "digit_pairs"

[[inputs]]
name = "left"
shape = [64]

[[inputs]]
name = "right"
shape = [64]

[[nodes]]
name = "enc_left"
inputs = "left"
type = "Linear"
units = 8

[[nodes]]
name = "enc_right"
inputs = "right"
layer = "enc_left"

[[nodes]]
name = "both"
inputs = ["enc_left", "enc_right"]
type = "Concatenate"

[[nodes]]
name = "same"
inputs = "both"
type = "Linear"
units = 1

[loss]
type = "BinaryCrossEntropy"
from_logits = true
"""


def edited(old, new, text=PAIRS):
    assert old in text
    return text.replace(old, new, 1)


def test_a_graph_config_builds_its_nodes_and_shares_a_layer_named_by_layer():
    config = runconfig.parse(PAIRS, "pairs.toml")
    x = lamina.dataset("digit_pairs")[0]
    model = runconfig.build_model(config, x)
    nodes = model.graph.nodes
    assert nodes[0].layer is nodes[1].layer  # layer = "enc_left": one Linear, called twice
    assert model.input_names == ("left", "right") and model.input_format == "dict"
    assert model.output_format == "array" and len(model.layers) == 3
    assert model.predict({name: x[name][:5] for name in x}).shape == (5, 1)


@pytest.mark.parametrize("old, new, message", [
    ('outputs = "same"\n', "", "outputs: missing; a graph model needs inputs"),
    ("seed = 0\n", 'seed = 0\nlayers = ["Relu"]\n', "inputs: a config gives either layers .* or inputs, nodes and "
                                                      "outputs .*not both"),
    ('inputs = "right"\n', 'inputs = "nope"\n', r"nodes\[1\].inputs: 'nope' is no input and no earlier node; the "
                                                r"names defined before it are \['left', 'right', 'enc_left'\]"),
    ('inputs = "both"\n', 'inputs = "later"\n', r"nodes\[3\].inputs: 'later' is no input and no earlier node"),
    ('layer = "enc_left"\n', 'layer = "same"\n', r"nodes\[1\].layer: expected the name of an earlier node .*one of "
                                                 r"\['enc_left'\], got 'same'"),
    ('layer = "enc_left"\n', 'layer = "enc_left"\nunits = 8\n', r"nodes\[1\].units: node 'enc_right' reuses the "
                                                                r"layer of node 'enc_left', so it takes no layer"),
    ('type = "Concatenate"\n', "", r"nodes\[2\]: node 'both' has no layer: give \"type\""),
    ('name = "enc_right"\n', 'name = "left"\n', r"nodes\[1\].name: 'left' is given twice"),
    ("shape = [64]\n", "shape = [0]\n", r"inputs\[0\]: Input\(shape=\[0\] \(list\)\): shape must be a tuple of "
                                        "positive ints"),
    ("shape = [64]\n", "shape = [64]\nsize = 3\n", r"inputs\[0\].size: unknown key; an input takes name, shape, "
                                                   "dtype"),
    ("shape = [64]\n", 'shape = [64]\ndtype = "str"\n', r"inputs\[0\]: .*dtype must be a floating or integer"),
    ('outputs = "same"\n', 'outputs = "nope"\n', r"outputs: 'nope' is no node; the nodes are \['enc_left', "),
    ('outputs = "same"\n', "outputs = []\n", "outputs: expected a node's name or a list of node names"),
    ('outputs = "same"\n', 'outputs = "same"\nloss_weights = {same = 1.0}\n', "loss_weights: weighs the losses of "
                                                                              "a model's several outputs"),
    ('layer = "enc_left"\n', 'layer = "enc_left"\ncall = 3\n', r"nodes\[1\].call: expected a table of the call's "
                                                               "keyword arguments"),
    ("units = 8\n", "units = 8\ntrainable = 1\n", r"nodes\[0\].trainable: expected true or false"),
])
def test_graph_config_mistakes_are_config_errors_naming_the_key(old, new, message):
    with pytest.raises(lamina.ConfigError, match=f"^pairs.toml: {message}"):
        runconfig.parse(edited(old, new), "pairs.toml")


SEVERAL = edited('outputs = "same"\nmetrics = ["binary_accuracy"]\n', """outputs = ["same", "left_digit"]
loss_weights = {same = 1.0, left_digit = 0.5}
metrics = {same = ["binary_accuracy"], left_digit = ["accuracy"]}
""", edited('name = "digit_pairs"\n', 'name = "digit_pairs"\ndigits = true\n', edited("""[loss]
type = "BinaryCrossEntropy"
from_logits = true
""", """[[nodes]]
name = "left_digit"
inputs = "enc_left"
type = "Linear"
units = 10

[loss]
same = {type = "BinaryCrossEntropy", from_logits = true}
left_digit = {type = "CrossEntropy", from_logits = true}

[optimizer]
type = "Adam"
lr = 0.01
""")).replace('type = "Concatenate"', 'type = "Multiply"').replace("epochs = 2", "epochs = 10"))


@pytest.mark.parametrize("old, new, message", [
    ("left_digit = {type", "digits = {type", r"loss.digits: 'digits' is no output of the model; its outputs are "
                                         r"\['same', 'left_digit'\]"),
    ("left_digit = 0.5", "left_digit = -1", r"loss_weights.left_digit: expected a number >= 0, got -1"),
    ("loss_weights = {same = 1.0, left_digit = 0.5}", "loss_weights = 2", "loss_weights: expected a table from output "
                                                                     "name"),
    ('left_digit = ["accuracy"]', 'left_digit = "accuracy"', "metrics.left_digit: expected a list of metric names "
                                                             "or tables"),
    ('metrics = {same', 'metrics = {left', r"metrics.left: 'left' is no output of the model"),
])
def test_per_output_keys_name_the_output_that_is_wrong(old, new, message):
    runconfig.parse(SEVERAL, "several.toml")  # the config itself is fine
    with pytest.raises(lamina.ConfigError, match=f"^several.toml: {message}"):
        runconfig.parse(edited(old, new, SEVERAL), "several.toml")


def test_mistakes_found_while_building_name_the_node(tmp_path):
    x = lamina.dataset("digit_pairs")[0]
    for old, new, message in [
        ('type = "Concatenate"', 'type = "Concatenat"', r"nodes\[2\]: unknown layer 'Concatenat'. Did you mean "
                                                        "'Concatenate'"),
        ('layer = "enc_left"\n', 'layer = "enc_left"\ncall = {bogus = 1}\n',
         r"nodes\[1\]: Linear was called with the keyword arguments \['bogus'\]"),
        ("units = 1\n", "units = 1\n[[nodes]]\nname = 'sum'\ninputs = ['same', 'left']\ntype = 'Add'\n",
         r"nodes\[4\]: calling Add\(\) on symbolic input of shape \(None, 1\), \(None, 64\)"),
    ]:
        config = runconfig.parse(edited(old, new), "pairs.toml")
        with pytest.raises(lamina.ConfigError, match=f"^pairs.toml: {message}"):
            runconfig.build_model(config, x)
    with pytest.raises(lamina.ConfigError, match=r"pairs.toml: inputs: the model has 2 inputs \['left', 'right'\], "
                                                 "but the dataset gives one array for x"):
        runconfig.build_model(runconfig.parse(PAIRS, "pairs.toml"), x["left"])


def test_classes_in_a_node_counts_the_dataset_but_a_node_named_classes_stays_a_name():
    text = edited('name = "enc_left"\ninputs = "left"\ntype = "Linear"\nunits = 8\n',
                  'name = "classes"\ninputs = "left"\ntype = "Linear"\nunits = "classes"\n')
    text = text.replace('layer = "enc_left"', 'layer = "classes"').replace('["enc_left", "enc_right"]',
                                                                          '["classes", "enc_right"]')
    config = runconfig.parse(text, "pairs.toml")
    data = lamina.dataset("digit_pairs")
    counted = runconfig.count_classes(config, data)
    assert counted.data["nodes"][0]["units"] == 2 and counted.data["nodes"][0]["name"] == "classes"
    assert counted.data["nodes"][1]["layer"] == "classes"


def test_lamina_train_trains_a_graph_with_several_outputs_and_the_saved_model_predicts_a_dict(tmp_path):
    from lamina.app import run

    config = runconfig.parse(SEVERAL, "several.toml")
    result = run.train(config, output=tmp_path / "run", verbose=False, say=lambda line: None)
    assert list(result.history.history) == ["loss", "same_loss", "left_digit_loss", "same_binary_accuracy",
                                            "left_digit_accuracy"]
    assert set(result.test) == {"loss", "same_loss", "left_digit_loss", "same_binary_accuracy", "left_digit_accuracy"}
    assert result.test["same_binary_accuracy"] > 0.6 and result.test["left_digit_accuracy"] > 0.6
    weighted = result.test["same_loss"] + 0.5 * result.test["left_digit_loss"]
    assert result.test["loss"] == pytest.approx(weighted, rel=1e-6)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"]["left_digit_accuracy"] == pytest.approx(result.test["left_digit_accuracy"])
    model = lamina.load(result.files["model"])
    x = lamina.dataset("digit_pairs")[2]
    predicted = model.predict({name: rows[:3] for name, rows in x.items()})
    assert set(predicted) == {"same", "left_digit"} and predicted["left_digit"].shape == (3, 10)


def test_a_tied_char_config_trains_and_generates(tmp_path):
    from lamina.app import run

    config = runconfig.parse("""
seed = 0
epochs = 1
batch_size = 32
outputs = "logits"

[dataset]
name = "moby_dick"
seq_len = 16
stride = 1024

[[inputs]]
name = "ids"
shape = [16]
dtype = "int64"

[[nodes]]
name = "chars"
inputs = "ids"
type = "Embedding"
num_embeddings = "classes"
dim = 8

[[nodes]]
name = "mixed"
inputs = "chars"
type = "GRU"
units = 8
return_sequences = true

[[nodes]]
name = "logits"
inputs = "mixed"
layer = "chars"
call = {reverse = true}

[loss]
type = "CrossEntropy"
from_logits = true
""", "tied.toml")
    result = run.train(config, output=tmp_path / "run", verbose=False, say=lambda line: None)
    model = lamina.load(result.files["model"])
    emb = model.layers[0]
    assert model.graph.describe()["nodes"][-1]["kwargs"] == {"reverse": True}
    assert emb is model.graph.nodes[-1].layer and emb.weight.value.shape == (80, 8)
    text = lamina.generate(model, "Call me ", length=12, seed=0)
    assert text.startswith("Call me ") and len(text) == 20
    assert lamina.generate(model, "Call me ", length=12, seed=0) == text
