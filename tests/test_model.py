"""Model: composing layers by instance, name or dict; training; predictions; errors."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import MSE, SGD, Linear, Relu, Sigmoid, Softmax, Tanh

X = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
Y = np.array([[1], [0], [0], [1]])


def xor_model() -> lamina.Model:
    return lamina.Model([Linear(8), Relu(), Linear(4), Sigmoid(), Linear(1), Sigmoid()])


# -- building ------------------------------------------------------------------------------------


def test_layers_may_be_instances_names_or_dicts():
    relu = Relu()
    model = lamina.Model([{"type": "Linear", "units": 3}, "tanh", relu, {"type": "softmax"}])
    assert [type(layer) for layer in model.layers] == [Linear, Tanh, Relu, Softmax]
    assert model.layers[2] is relu
    assert model.layers[0].units == 3
    assert repr(model) == "Model([Linear(units=3), Tanh(), Relu(), Softmax()])"


@pytest.mark.parametrize(
    "layers, expected",
    [
        ([Linear(2), Relu], "layers[1] is the class Relu, not an instance; write Relu(...)"),
        ([Linear(2), 3], "layers[1] is 3 (int); expected a Layer instance"),
        ([{"units": 3}], "layers[0] is a dict without a 'type' key"),
        ([], "a model needs at least one layer"),
        ("Relu", "layers must be a list"),
        (Relu(), "layers must be a list"),
    ],
)
def test_bad_layer_items_get_an_error_naming_the_position(layers, expected):
    with pytest.raises(lamina.ArgumentError) as info:
        lamina.Model(layers)
    assert expected in str(info.value)


def test_unknown_layer_names_in_a_model_suggest_the_right_name():
    with pytest.raises(lamina.UnknownPluginError, match="Did you mean 'Sigmoid'"):
        lamina.Model([Linear(1), "Sigmod"])


def test_dict_arguments_are_checked_against_the_layer_signature():
    with pytest.raises(lamina.ArgumentError, match="layer 'Linear' takes Linear\\(units, weight_init="):
        lamina.Model([{"type": "Linear", "unitz": 3}])


# -- training ------------------------------------------------------------------------------------


def test_train_returns_one_float_loss_per_epoch_and_reduces_the_loss():
    lamina.seed(0)
    model = xor_model()
    history = model.train(X, Y, optim=SGD(lr=0.6), loss=MSE(), epochs=400, verbose=False)
    assert len(history) == 400 and all(type(v) is float for v in history)
    assert history[-1] < history[0] / 10
    np.testing.assert_allclose(np.mean((model(X) - Y) ** 2), history[-1], rtol=0.05)


def test_train_takes_optimizer_and_loss_by_name():
    lamina.seed(0)
    history = xor_model().train(X, Y, optim="sgd", loss="mse", epochs=5, verbose=False)
    assert len(history) == 5


def test_train_default_is_sgd_on_mse_for_ten_epochs_like_the_blog_post():
    lamina.seed(0)
    model = xor_model()
    history = model.train(X, Y, verbose=False)
    lamina.seed(0)
    again = xor_model()
    expected = again.train(X, Y, optim=SGD(lr=0.01), loss=MSE(), epochs=10, verbose=False)
    assert history == expected


def test_one_training_step_is_plain_gradient_descent_on_the_mean_loss():
    """Checks the whole step by hand: forward, exact MSE gradient, backward, SGD update."""
    lamina.seed(3)
    layer = Linear(1)
    model = lamina.Model([layer])
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = np.array([[1.0], [0.0], [2.0]])
    model(x)  # build
    w, b = layer.weight.value.copy(), layer.bias.value.copy()
    model.train(x, y, optim=SGD(lr=0.1), loss=MSE(), epochs=1, verbose=False)
    residual = x @ w + b - y
    np.testing.assert_allclose(layer.weight.value, w - 0.1 * x.T @ (2 * residual / 3))
    np.testing.assert_allclose(layer.bias.value, b - 0.1 * (2 * residual / 3).sum(axis=0))


class Recorder(lamina.Layer):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(self.training)
        return x

    def backward(self, grad):
        return grad


def test_layers_are_in_training_mode_only_while_training():
    recorder = Recorder()
    model = lamina.Model([Linear(1), recorder])
    model(X)
    model.train(X, Y, epochs=2, verbose=False)
    model(X)
    assert recorder.seen == [False, True, True, False]
    assert recorder.training is False


def test_training_mode_is_reset_even_when_training_fails():
    recorder = Recorder()
    model = lamina.Model([Linear(2), recorder])
    with pytest.raises(lamina.ShapeError):
        model.train(X, Y, epochs=1, verbose=False)  # output width 2, targets width 1
    assert recorder.training is False


def test_float32_by_default_and_float64_when_given():
    model = xor_model()
    model.train(X, Y, epochs=1, verbose=False)
    assert all(p.value.dtype == np.float32 for p in model.parameters().values())
    assert model(X).dtype == np.float32
    model64 = xor_model()
    model64.train(X.astype(np.float64), Y, epochs=1, verbose=False)
    assert all(p.value.dtype == np.float64 for p in model64.parameters().values())


def test_parameters_are_named_by_layer_position():
    model = xor_model()
    model(X)
    assert list(model.parameters()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def test_the_same_seed_gives_the_same_model_bit_for_bit():
    def run(seed):
        lamina.seed(seed)
        model = xor_model()
        model.train(X, Y, optim=SGD(lr=0.6), epochs=20, verbose=False)
        return [p.value.copy() for p in model.parameters().values()], model(X)

    (w1, p1), (w2, p2), (w3, _) = run(7), run(7), run(8)
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    assert p1.tobytes() == p2.tobytes()
    assert any(a.tobytes() != c.tobytes() for a, c in zip(w1, w3))


def test_verbose_training_shows_one_bar_over_the_epochs_with_the_loss(capsys):
    xor_model().train(X, Y, epochs=3)
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err
    assert err.count("\n") == 1  # one bar, not one per layer or per epoch


def test_quiet_training_prints_nothing(capsys):
    xor_model().train(X, Y, epochs=3, verbose=False)
    assert capsys.readouterr() == ("", "")


# -- bad input -----------------------------------------------------------------------------------


def test_wrong_input_width_names_the_layer_its_position_and_both_widths():
    model = lamina.Model([Linear(3), Relu(), Linear(1)])
    model(np.ones((4, 2)))
    with pytest.raises(lamina.ShapeError) as info:
        model(np.ones((4, 5)))
    message = str(info.value)
    assert message.startswith("Model.layers[0] (Linear): Linear(units=3) was built for inputs with 2 features")
    assert "(4, 5), with 5 features" in message


def test_wrong_width_deeper_in_the_model_names_that_position():
    inner = Linear(1)
    inner(np.ones((1, 4)))  # built elsewhere for width 4
    model = lamina.Model([Linear(3), Relu(), inner])
    with pytest.raises(lamina.ShapeError,
                       match=r"Model.layers\[2\] \(Linear\).*built for inputs with 4 features.*3 features"):
        model(np.ones((2, 2)))


def test_x_and_y_of_different_lengths_are_rejected():
    with pytest.raises(lamina.ShapeError, match=r"x and y have shapes \(4, 2\) and \(3, 1\)"):
        xor_model().train(X, Y[:3], epochs=1, verbose=False)


def test_target_shape_mismatch_names_the_loss_and_the_fix():
    with pytest.raises(lamina.ShapeError,
                       match=r"MSE: pred has shape \(4, 1\) but y has shape \(4,\).*y.reshape\(4, 1\)"):
        xor_model().train(X, Y.ravel(), epochs=1, verbose=False)


@pytest.mark.parametrize("x", [[["a", "b"]], np.array([["0", "1"]]), [[0, 1], [0]]])
def test_non_numeric_input_is_rejected_with_a_fix(x):
    with pytest.raises(lamina.ArgumentError, match="x must be"):
        xor_model()(x)


def test_non_numeric_targets_are_rejected():
    with pytest.raises(lamina.ArgumentError, match="MSE: y must be numeric"):
        xor_model().train(X, [["yes"], ["no"], ["no"], ["yes"]], epochs=1, verbose=False)


@pytest.mark.parametrize("epochs", [0, -3, 2.5, "10"])
def test_epochs_must_be_a_positive_int(epochs):
    with pytest.raises(lamina.ArgumentError, match=r"Model.train\(epochs=.*\): epochs must be a positive int"):
        xor_model().train(X, Y, epochs=epochs, verbose=False)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"optim": SGD}, "write SGD(...) or the name 'SGD'"),
        ({"optim": 0.1}, "pass a lamina.Optimizer instance, a registered optimizer name"),
        ({"loss": MSE}, "write MSE(...) or the name 'MSE'"),
        ({"loss": Relu()}, "pass a lamina.Loss instance, a registered loss name"),
    ],
)
def test_optimizer_and_loss_must_be_instances_or_names(kwargs, expected):
    with pytest.raises(lamina.ArgumentError) as info:
        xor_model().train(X, Y, epochs=1, verbose=False, **kwargs)
    assert expected in str(info.value)


def test_a_lamina_error_in_the_backward_pass_names_the_layer_and_its_position():
    model = lamina.Model([Linear(2), Tanh()])
    with pytest.raises(lamina.LaminaError,
                       match=r"^Model.layers\[1\] \(Tanh\): Tanh: backward was called before forward"):
        model.backward(np.ones((4, 2)))


def test_a_missing_input_gradient_names_both_layers():
    class NoGradient(lamina.Layer):
        def forward(self, x):
            return x

        def backward(self, grad):
            return None

    model = lamina.Model([Linear(2), NoGradient()])
    model.set_training(True)
    model.forward(X)
    with pytest.raises(lamina.ShapeError, match=r"Model.layers\[1\] \(NoGradient\) returned no input gradient, but "
                       r"Model.layers\[0\] \(Linear\) before it needs one.*come first in Model.layers"):
        model.backward(np.ones((4, 2)))


def test_model_runs_its_layers_as_a_chain():
    model = lamina.Model([Linear(2), Tanh()])
    assert isinstance(model, lamina.Chain) and model.name == "Model.layers"
    np.testing.assert_array_equal(model.forward(X), lamina.Chain(model.layers, "x").forward(X))


def test_an_error_inside_a_third_party_layer_is_annotated_with_its_position():
    class Broken(lamina.Layer):
        def forward(self, x):
            raise RuntimeError("kaboom")

    with pytest.raises(RuntimeError, match="kaboom") as info:
        lamina.Model([Linear(2), Broken()])(X)
    assert any("Model.layers[1]" in note for note in getattr(info.value, "__notes__", []))


# -- empty inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda m: m.train(np.zeros((0, 3)), np.zeros((0, 1)), verbose=False),
         "x has no rows (shape (0, 3)), so there is nothing to train on"),
        (lambda m: m.train(np.ones((4, 3)), np.ones((4, 1)), validation_data=(np.zeros((0, 3)), np.zeros((0, 1))),
                           verbose=False),
         "validation_data's x_val has no rows"),
        (lambda m: m.evaluate(np.zeros((0, 3)), np.zeros((0, 1)), loss="MSE"), "nothing to evaluate"),
        (lambda m: m.predict(np.zeros((0, 3))), "nothing to predict"),
        (lambda m: m.predict([]), "nothing to predict"),
    ],
    ids=["train", "validation", "evaluate", "predict", "predict-list"],
)
def test_empty_inputs_raise_a_shape_error_saying_there_is_nothing_to_do(call, expected):
    model = lamina.Model([lamina.layer("Linear", 1)])
    with pytest.raises(lamina.ShapeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        call(model)
