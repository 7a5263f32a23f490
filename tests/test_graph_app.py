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
