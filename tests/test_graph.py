"""Graph models (several inputs and outputs), merge layers, and layers shared between places."""
from __future__ import annotations

import json

import numpy as np
import pytest

import lamina
from lamina.testing import check_layer_gradients, numerical_gradient, relative_error

F64 = "float64"


def contract_model():
    """The issue's contract snippet, in float64 (the Inputs' dtype) for exact comparisons."""
    a, b = lamina.Input((6,), name="a", dtype=F64), lamina.Input((1, 28, 28), name="b", dtype=F64)
    enc = lamina.layer("Linear", 32)
    h = lamina.layer("Concatenate")([lamina.layer("Tanh")(enc(a)), lamina.layer("Flatten")(b)])
    return lamina.Model(inputs={"a": a, "b": b},
                        outputs={"cls": lamina.layer("Linear", 10)(h), "box": lamina.layer("Linear", 4)(h)})


def data(rows=5):
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(rows, 6)), "b": rng.normal(size=(rows, 1, 28, 28))}


def test_the_contract_model_has_the_agreed_interface_and_computes_by_hand():
    lamina.seed(0)
    model, x = contract_model(), data()
    assert model.input_names == ("a", "b") and model.output_names == ("cls", "box")
    assert model.input_format == model.output_format == "dict"
    enc, tanh, flatten, concat, cls, box = model.layers
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "Tanh", "Flatten", "Concatenate",
                                                                  "Linear", "Linear"]
    assert list(model.parameters()) == ["0.weight", "0.bias", "4.weight", "4.bias", "5.weight", "5.bias"]
    h = np.concatenate([np.tanh(x["a"] @ enc.weight.value + enc.bias.value), x["b"].reshape(5, -1)], axis=1)
    out = model.forward(x)
    np.testing.assert_allclose(out["cls"], h @ cls.weight.value + cls.bias.value, rtol=1e-12)
    np.testing.assert_allclose(out["box"], h @ box.weight.value + box.bias.value, rtol=1e-12)
    predicted = model.predict(x)
    assert isinstance(predicted, dict) and list(predicted) == ["cls", "box"]
    np.testing.assert_array_equal(model(x)["cls"], predicted["cls"])
    assert model.graph is not None and lamina.Model([lamina.layer("Linear", 2)]).graph is None


def test_predict_batches_every_input_alike():
    lamina.seed(0)
    model, x = contract_model(), data(7)
    whole = model.predict(x)
    for batch_size in (1, 3, 7, 10):
        parts = model.predict(x, batch_size=batch_size)
        for name in ("cls", "box"):
            np.testing.assert_allclose(parts[name], whole[name], rtol=1e-12)


def test_an_array_like_input_is_read_a_batch_at_a_time(tmp_path):
    lamina.seed(0)
    model, x = contract_model(), data(6)
    path = tmp_path / "b.npy"
    np.save(path, x["b"])
    lazy = np.load(path, mmap_mode="r")
    np.testing.assert_allclose(model.predict({"a": x["a"], "b": lazy}, batch_size=4)["box"],
                               model.predict(x)["box"], rtol=1e-12)


def torch_twin(model, torch):
    """torch modules holding the lamina model's own arrays (weights transposed to torch's layout)."""
    def linear(layer):
        twin = torch.nn.Linear(*layer.weight.value.shape).double()
        twin.weight.data = torch.tensor(layer.weight.value.T.copy())
        twin.bias.data = torch.tensor(layer.bias.value.copy())
        return twin
    return [linear(layer) if type(layer).__name__ == "Linear" else None for layer in model.layers]


def test_one_sgd_step_with_weighted_losses_equals_pytorchs():
    torch = pytest.importorskip("torch")
    lamina.seed(1)
    model, x = contract_model(), data(6)
    y_cls, y_box = np.array([0, 3, 9, 1, 3, 5]), np.random.default_rng(2).normal(size=(6, 4))
    enc, _, _, _, cls, box = torch_twin(model, torch)
    lr, weights = 0.1, {"cls": 1.0, "box": 0.5}
    ce, mse = lamina.loss("CrossEntropy", from_logits=True), lamina.loss("MSE")

    model.set_training(True)
    model.zero_grad()
    pred = model.forward(x)
    total = weights["cls"] * ce(pred["cls"], y_cls) + weights["box"] * mse(pred["box"], y_box)
    model.backward({"cls": weights["cls"] * ce.backward(), "box": weights["box"] * mse.backward()})
    grads = {name: param.grad.copy() for name, param in model.parameters().items()}
    for param in model.parameters().values():
        param.value -= lr * param.grad

    ta, tb = torch.tensor(x["a"]), torch.tensor(x["b"])
    h = torch.cat([torch.tanh(enc(ta)), tb.flatten(1)], dim=1)
    loss = (weights["cls"] * torch.nn.functional.cross_entropy(cls(h), torch.tensor(y_cls))
            + weights["box"] * torch.nn.functional.mse_loss(box(h), torch.tensor(y_box)))
    loss.backward()
    assert float(total) == pytest.approx(float(loss.detach()), rel=1e-12)
    twins = {"0": enc, "4": cls, "5": box}
    for name, grad in grads.items():
        place, kind = name.split(".")
        expected = getattr(twins[place], kind).grad.numpy()
        np.testing.assert_allclose(grad, expected.T if kind == "weight" else expected, rtol=1e-10, atol=1e-14)
        with torch.no_grad():
            getattr(twins[place], kind).sub_(lr * getattr(twins[place], kind).grad)
    for name, param in model.parameters().items():
        place, kind = name.split(".")
        expected = getattr(twins[place], kind).detach().numpy()
        np.testing.assert_allclose(param.value, expected.T if kind == "weight" else expected, rtol=1e-10)


def test_model_train_takes_the_same_step_as_pytorch_with_losses_and_weights_per_output():
    torch = pytest.importorskip("torch")
    lamina.seed(1)
    model, x = contract_model(), data(6)
    y = {"cls": np.array([0, 3, 9, 1, 3, 5]), "box": np.random.default_rng(2).normal(size=(6, 4))}
    enc, _, _, _, cls, box = torch_twin(model, torch)
    history = model.train(x, y, optim=lamina.optimizer("SGD", lr=0.1), epochs=1, verbose=False,
                          loss={"cls": lamina.loss("CrossEntropy", from_logits=True), "box": "MSE"},
                          loss_weights={"cls": 1.0, "box": 0.5})
    ta, tb = torch.tensor(x["a"]), torch.tensor(x["b"])
    h = torch.cat([torch.tanh(enc(ta)), tb.flatten(1)], dim=1)
    loss = (torch.nn.functional.cross_entropy(cls(h), torch.tensor(y["cls"]))
            + 0.5 * torch.nn.functional.mse_loss(box(h), torch.tensor(y["box"])))
    loss.backward()
    assert history["loss"][0] == pytest.approx(float(loss.detach()), rel=1e-12)
    twins = {"0": enc, "4": cls, "5": box}
    for name, param in model.parameters().items():
        place, kind = name.split(".")
        twin = getattr(twins[place], kind)
        expected = (twin - 0.1 * twin.grad).detach().numpy()
        np.testing.assert_allclose(param.value, expected.T if kind == "weight" else expected, rtol=1e-10)


def siamese():
    """One encoder on two inputs (shared weights), the codes merged two ways."""
    a, b = lamina.Input((5,), name="left", dtype=F64), lamina.Input((5,), name="right", dtype=F64)
    enc, act = lamina.layer("Linear", 4), lamina.layer("Tanh")
    ea, eb = act(enc(a)), act(enc(b))
    head = lamina.layer("Linear", 1)
    return lamina.Model(inputs=[a, b], outputs=[head(lamina.layer("Multiply")([ea, eb])),
                                                lamina.layer("Add")([ea, eb])])


def test_a_shared_encoder_adds_the_gradients_of_both_uses_as_pytorch_does():
    torch = pytest.importorskip("torch")
    lamina.seed(3)
    model = siamese()
    assert model.input_names == ("left", "right") and model.output_names == ("output_0", "output_1")
    assert model.input_format == model.output_format == "list"
    assert list(model.parameters()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    g0, g1 = rng.normal(size=(3, 1)), rng.normal(size=(3, 4))
    model.zero_grad()
    model.set_training(True)
    model.forward([xa, xb])
    input_grads = model.backward([g0, g1])
    assert isinstance(input_grads, list) and all(g is None for g in input_grads)  # nobody needs them in training
    enc, head = (twin for twin in torch_twin(model, torch) if twin is not None)
    ea, eb = torch.tanh(enc(torch.tensor(xa))), torch.tanh(enc(torch.tensor(xb)))
    (torch.sum(head(ea * eb) * torch.tensor(g0)) + torch.sum((ea + eb) * torch.tensor(g1))).backward()
    np.testing.assert_allclose(model.layers[0].weight.grad, enc.weight.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(model.layers[0].bias.grad, enc.bias.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(model.layers[3].weight.grad, head.weight.grad.numpy().T, rtol=1e-10)


def test_a_hand_written_linear_used_twice_in_a_chain_gives_pytorchs_gradients():
    torch = pytest.importorskip("torch")
    lamina.seed(5)
    lin = lamina.layer("Linear", 4)
    model = lamina.Model([lin, "Relu", lin])
    x = np.random.default_rng(6).normal(size=(3, 4))
    model.forward(x)  # builds it, in float64
    assert list(model.parameters()) == ["0.weight", "0.bias"]
    grad = np.random.default_rng(7).normal(size=(3, 4))
    model.zero_grad()
    model.set_training(True)
    assert lin.needs_input_grad  # it is also the third layer, whose input gradient is needed
    model.forward(x)
    model.backward(grad)
    twin = torch.nn.Linear(4, 4).double()
    twin.weight.data, twin.bias.data = torch.tensor(lin.weight.value.T.copy()), torch.tensor(lin.bias.value.copy())
    torch.sum(twin(torch.relu(twin(torch.tensor(x)))) * torch.tensor(grad)).backward()
    np.testing.assert_allclose(lin.weight.grad, twin.weight.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(lin.bias.grad, twin.bias.grad.numpy(), rtol=1e-10)


def objective_gradients(model, x, r):
    """(analytic, numeric) gradients of sum(output * r) over every parameter of a one-output model."""
    model.zero_grad()
    model.forward(x)
    model.backward(r)
    analytic = {name: p.grad.copy() for name, p in model.parameters().items()}
    numeric = {name: numerical_gradient(lambda: float(np.sum(model.forward(x) * r)), p.value)
               for name, p in model.parameters().items()}
    return analytic, numeric


class Square(lamina.Layer):
    """A forward-only layer with a weight: y = (x * w)^2."""

    def __init__(self):
        self.w = None

    def build(self, x):
        self.w = lamina.Parameter(np.linspace(0.5, 1.5, x.shape[-1]))

    def forward(self, x):
        return (x * self.w) ** 2


@pytest.mark.parametrize("make", [
    lambda: Square(),
    lambda: lamina.layer("Linear", 3),
    lambda: lamina.layer("Sequential", [lamina.layer("Linear", 3), "Tanh"]),
])
def test_every_kind_of_layer_shared_in_a_graph_matches_finite_differences(make):
    lamina.seed(8)
    shared = make()
    a, b = lamina.Input((3,), dtype=F64), lamina.Input((3,), dtype=F64)
    once, twice = shared(a), shared(shared(b))
    model = lamina.Model(inputs=[a, b], outputs=lamina.layer("Concatenate")([once, twice]))
    rng = np.random.default_rng(9)
    x = [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))]
    analytic, numeric = objective_gradients(model, x, rng.normal(size=(2, 6)))
    assert max(relative_error(analytic[k], numeric[k]) for k in analytic) < 1e-7


def test_one_sequential_shares_a_layer_with_itself_and_inside_a_forward_only_layer():
    lamina.seed(10)
    lin = lamina.layer("Linear", 3)
    block = lamina.layer("Sequential", [lin, "Tanh", lin])
    x = np.random.default_rng(11).normal(size=(2, 3))
    assert max(check_layer_gradients(block, x).values()) < 1e-7

    class HandWrittenTwice(lamina.Layer):  # forward-only, calling one hand-written Linear twice
        def __init__(self):
            self.dense = lamina.layer("Linear", 3)

        def forward(self, x):
            return np.tanh(self.dense(self.dense(x)))

    assert max(check_layer_gradients(HandWrittenTwice(), x).values()) < 1e-7
    model = lamina.Model([block, "Relu", block])
    model.forward(x)
    r = np.random.default_rng(12).normal(size=(2, 3))
    analytic, numeric = objective_gradients(model, x, r)
    assert max(relative_error(analytic[k], numeric[k]) for k in analytic) < 1e-7


def test_an_output_without_gradient_sends_none_and_the_shared_layer_still_gets_the_right_state():
    lamina.seed(13)
    model = siamese()
    rng = np.random.default_rng(14)
    x = [rng.normal(size=(2, 5)), rng.normal(size=(2, 5))]
    r = rng.normal(size=(2, 1))
    model.zero_grad()
    model.forward(x)
    grads = model.backward([r, None])
    assert all(g.shape == (2, 5) for g in grads)
    analytic = {name: p.grad.copy() for name, p in model.parameters().items()}
    numeric = {name: numerical_gradient(lambda: float(np.sum(model.forward(x)[0] * r)), p.value)
               for name, p in model.parameters().items()}
    assert max(relative_error(analytic[k], numeric[k]) for k in analytic) < 1e-7


@pytest.mark.parametrize("name, kwargs, shapes", [
    ("Concatenate", {}, [(3, 2), (3, 4)]),
    ("Concatenate", {"axis": 1}, [(2, 1, 3), (2, 2, 3), (2, 3, 3)]),
    ("Add", {}, [(3, 4), (3, 4)]),
    ("Multiply", {}, [(2, 3), (2, 3), (2, 3)]),
    ("Average", {}, [(4, 2), (4, 2)]),
])
def test_merge_layers_match_finite_differences(name, kwargs, shapes):
    rng = np.random.default_rng(15)
    xs = [rng.normal(size=shape) for shape in shapes]
    errors = check_layer_gradients(lamina.layer(name, **kwargs), xs)
    assert set(errors) == {f"input.{i}" for i in range(len(xs))}
    assert max(errors.values()) < 1e-7


@pytest.mark.parametrize("name, shapes, message", [
    ("Add", [(3, 4), (3, 5)], "same shape"),
    ("Concatenate", [(3, 4), (2, 4)], "same batch size"),
    ("Concatenate", [(3, 4, 2), (3, 5, 1)], "agree on every axis but -1"),
    ("Multiply", [(3, 4)], "at least 2 arrays"),
])
def test_merge_layers_refuse_inputs_that_do_not_fit(name, shapes, message):
    with pytest.raises(lamina.ShapeError, match=message):
        lamina.layer(name)([np.ones(shape) for shape in shapes])


def test_a_wrong_shape_fails_at_the_symbolic_call_naming_the_layer():
    a, b = lamina.Input((4,)), lamina.Input((3,))
    with pytest.raises(lamina.ShapeError, match=r"calling Add\(\) on symbolic input of shape \(None, 4\), "
                                                r"\(None, 3\).*same shape"):
        lamina.layer("Add")([a, b])
    with pytest.raises(lamina.ArgumentError, match="mixes symbolic values with"):
        lamina.layer("Add")([a, np.ones((1, 4))])


def test_data_of_the_wrong_structure_or_shape_is_refused_with_the_fix():
    lamina.seed(0)
    model, x = contract_model(), data(3)
    with pytest.raises(lamina.ArgumentError, match=r"exactly the keys \['a', 'b'\]; missing \['b'\]"):
        model.predict({"a": x["a"]})
    with pytest.raises(lamina.ArgumentError, match=r"unknown \['c'\]"):
        model.predict({**x, "c": x["a"]})
    with pytest.raises(lamina.ShapeError, match=r"input 'a' must have rows of shape \(6,\).*got an array of shape "
                                                r"\(3, 5\)"):
        model.predict({"a": x["a"][:, :5], "b": x["b"]})
    with pytest.raises(lamina.ShapeError, match="same number of rows, got 'a': 2, 'b': 3"):
        model.predict({"a": x["a"][:2], "b": x["b"]})
    with pytest.raises(lamina.ArgumentError, match="must be a dict with the keys"):
        model.predict(x["a"])


def test_graphs_that_cannot_be_run_are_refused_naming_what_is_wrong():
    a, b = lamina.Input((3,), name="a"), lamina.Input((3,), name="b")
    mixed = lamina.layer("Add")([lamina.layer("Linear", 3)(a), lamina.layer("Linear", 3)(b)])
    with pytest.raises(lamina.ArgumentError, match=r"output 'output' is computed from <Symbol: Input 'b'.*not among "
                                                   r"the inputs \['a'\].*Add that Input to inputs="):
        lamina.Model(inputs=a, outputs=mixed)  # values of another Input mixed in: not reachable from the inputs
    with pytest.raises(lamina.ArgumentError, match=r"the input\(s\) \['b'\] are not used by any output"):
        lamina.Model(inputs=[a, b], outputs=lamina.layer("Linear", 2)(a))
    with pytest.raises(lamina.ArgumentError, match="not a lamina.Input"):
        lamina.Model(inputs=lamina.layer("Tanh")(a), outputs=lamina.layer("Linear", 2)(a))
    with pytest.raises(lamina.ArgumentError, match=r"outputs\['y'\] is .*not a symbolic value"):
        lamina.Model(inputs=a, outputs={"y": np.ones(3)})
    with pytest.raises(lamina.ArgumentError, match="needs both inputs= and outputs="):
        lamina.Model(inputs=a)
    with pytest.raises(lamina.ArgumentError, match="shape must be a tuple of positive ints"):
        lamina.Input((3, 0))


def test_a_symbol_has_no_values():
    a = lamina.Input((3,), name="a")
    assert repr(a) == "<Symbol: Input 'a', shape (None, 3)>"
    with pytest.raises(lamina.LaminaError, match="is symbolic"):
        np.asarray(a)


def test_the_graph_describes_itself_as_json_and_is_rebuilt_from_it():
    lamina.seed(16)
    model, x = contract_model(), data(4)
    description = model.graph.describe()
    assert json.loads(json.dumps(description)) == description
    assert description["nodes"][3] == {"layer": 3, "inputs": [["node", 1], ["node", 2]], "list": True}
    assert description["outputs"] == [{"name": "cls", "ref": ["node", 4]}, {"name": "box", "ref": ["node", 5]}]
    rebuilt = type(model.graph).from_description(description, model.layers)
    assert rebuilt.describe() == description
    np.testing.assert_array_equal(rebuilt.forward(x, np.dtype(F64))["box"], model.predict(x)["box"])


def test_what_graph_models_do_not_support_yet_says_so():
    lamina.seed(0)
    model = contract_model()
    x = {"a": np.ones((2, 6)), "b": np.ones((2, 1, 28, 28))}
    with pytest.raises(lamina.LaminaError, match="not supported for graph models"):
        model.adapt(x)


def test_a_chain_is_unchanged():
    model = lamina.Model([lamina.layer("Linear", 2), "Relu"])
    assert (model.input_names, model.output_names, model.input_format, model.output_format) == (
        ("input",), ("output",), "array", "array")
    assert model.predict(np.ones((3, 4))).shape == (3, 2)


def test_a_forward_only_layer_called_on_a_list_gets_a_gradient_for_each_item():
    class AbsDifference(lamina.Layer):  # no backward: lamina derives one gradient per list item
        def forward(self, xs):
            a, b = xs
            return np.abs(a - b)

    rng = np.random.default_rng(0)
    errors = check_layer_gradients(AbsDifference(), [rng.normal(size=(4, 3)), rng.normal(size=(4, 3))])
    assert set(errors) == {"input.0", "input.1"} and max(errors.values()) < 1e-7
    lamina.seed(0)
    a, b = lamina.Input((3,), dtype="float64"), lamina.Input((3,), dtype="float64")
    encoder = lamina.layer("Linear", 2)
    model = lamina.Model(inputs=[a, b], outputs=lamina.layer("Linear", 1)(AbsDifference()([encoder(a), encoder(b)])))
    x, y = [rng.normal(size=(8, 3)), rng.normal(size=(8, 3))], rng.normal(size=(8, 1))
    model.zero_grad()
    model.set_training(True)
    out = model.forward(x)
    model.backward(2 * (out - y) / out.size)
    weight = encoder.weight
    analytic = weight.grad.copy()

    def loss_at(value):
        weight.value[...] = value
        return float(np.mean((model.forward(x) - y) ** 2))

    base, numeric, eps = weight.value.copy(), np.zeros_like(weight.value), 1e-6
    for index in np.ndindex(*base.shape):
        up, down = base.copy(), base.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (loss_at(up) - loss_at(down)) / (2 * eps)
    weight.value[...] = base
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_a_layer_shared_in_a_chain_keeps_the_calls_of_one_forward_only():
    lamina.seed(0)
    shared = lamina.layer("Linear", 4)
    model = lamina.Model([shared, "Tanh", shared])
    x = np.random.default_rng(0).normal(size=(100, 4))
    model.predict(x, batch_size=10)
    for _ in range(5):
        model.forward(x)
    assert len(vars(shared).get("_calls", [])) <= 2  # one forward's two places, not every batch's
    model.set_training(True)
    model.zero_grad()
    out = model.forward(x)
    model.backward(np.ones_like(out))  # the backward still finds both calls
    assert not vars(shared).get("_calls")


@pytest.mark.parametrize("dtype", ["float64,(", "object", "U3", 3.5])
def test_an_input_of_a_dtype_that_is_no_number_type_is_refused(dtype):
    with pytest.raises(lamina.ArgumentError, match="dtype must be a floating or integer numpy dtype"):
        lamina.Input((3,), dtype=dtype)
