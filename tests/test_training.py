"""The training loop: batches, shuffling, validation, metrics, modes, the NaN guard, clipping."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import lamina
from lamina.plugins import SGD, Adam, CrossEntropy, Linear, Relu, Softmax, Tanh


def blobs(n=60, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    centres = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])[:classes]
    x = centres[labels] + rng.normal(scale=0.6, size=(n, 2))
    return x.astype(np.float32), labels


def classifier(seed=0, softmax=True):
    lamina.seed(seed)
    layers = [Linear(16), Relu(), Linear(3)]
    return lamina.Model(layers + [Softmax()] if softmax else layers)


class Recorder(lamina.Layer):
    """Records the rows and the mode of every forward pass."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.modes: list[bool] = []

    def forward(self, x):
        self.batches.append(x.copy())
        self.modes.append(self.training)
        return x

    def backward(self, grad):
        return grad


def test_history_has_loss_metrics_and_validation_per_epoch():
    x, y = blobs()
    history = classifier().train(
        x, y, optim=Adam(0.01), loss="CrossEntropy", epochs=20, batch_size=16,
        validation_split=0.25, metrics=["accuracy"], verbose=False,
    )
    assert isinstance(history, lamina.History)
    assert set(history.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(history[key]) == 20 for key in history.keys())
    assert len(history) == 20 and history[-1] == history["loss"][-1]
    assert history["accuracy"][-1] > 0.9


def test_minibatches_take_one_permutation_per_epoch():
    x = np.arange(10, dtype=np.float64).reshape(10, 1)
    recorder = Recorder()
    model = lamina.Model([recorder, Linear(1)])
    model(x)  # build first, so that the generator's next draws are the permutations
    recorder.batches.clear()
    lamina.seed(3)
    model.train(x, x, epochs=3, batch_size=4, verbose=False)
    assert [len(b) for b in recorder.batches] == [4, 4, 2] * 3
    epochs = [np.concatenate(recorder.batches[i : i + 3]).ravel() for i in (0, 3, 6)]
    for rows in epochs:
        assert sorted(rows) == list(range(10))  # every sample exactly once per epoch
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled
    assert model.optimizer.iterations == 9
    lamina.seed(3)
    expected = [lamina.rng().permutation(10) for _ in range(3)]
    assert [list(e) for e in epochs] == [list(p.astype(float)) for p in expected]


def test_without_shuffle_batches_are_in_order():
    x = np.arange(7, dtype=np.float64).reshape(7, 1)
    recorder = Recorder()
    lamina.Model([recorder, Linear(1)]).train(x, x, epochs=2, batch_size=3, shuffle=False, verbose=False)
    # (the first pass, on x[:1], builds the layers before the first epoch)
    assert [b.ravel().tolist() for b in recorder.batches[1:4]] == [[0, 1, 2], [3, 4, 5], [6]]


def test_full_batch_by_default():
    x = np.arange(7, dtype=np.float64).reshape(7, 1)
    recorder = Recorder()
    lamina.Model([recorder, Linear(1)]).train(x, x, epochs=2, verbose=False)
    assert [b.ravel().tolist() for b in recorder.batches[1:]] == [list(range(7))] * 2


def test_the_same_seed_gives_the_same_history_and_weights():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = classifier(seed=5)
        history = model.train(x, y, optim="Adam", loss="CrossEntropy", epochs=3, batch_size=8, verbose=False)
        runs.append((history["loss"], [p.value.tobytes() for p in model.parameters().values()]))
    assert runs[0] == runs[1]


def test_validation_split_holds_out_the_last_fraction_and_matches_evaluate():
    x, y = blobs(40)
    model = classifier()
    history = model.train(x, y, optim=Adam(0.01), loss=CrossEntropy(), epochs=3, batch_size=8,
                          validation_split=0.25, metrics="accuracy", verbose=False)
    final = model.evaluate(x[30:], y[30:], metrics=["accuracy"])
    assert final == pytest.approx({"loss": history["val_loss"][-1], "accuracy": history["val_accuracy"][-1]})


def test_validation_data_is_evaluated_in_inference_mode():
    x, y = blobs(20)
    recorder = Recorder()
    model = lamina.Model([recorder, Linear(3), Softmax()])
    model.train(x, y, loss="CrossEntropy", epochs=2, batch_size=10, shuffle=False,
                validation_data=(x[:5], y[:5]), verbose=False)
    # a building pass, then per epoch: two training batches and one validation pass
    assert recorder.modes == [False] + [True, True, False] * 2
    assert recorder.training is False


def test_evaluate_and_predict_switch_to_inference_mode_and_batch():
    x, y = blobs(20)
    recorder = Recorder()
    model = lamina.Model([recorder, Linear(3), Softmax()])
    model.train(x, y, loss="CrossEntropy", epochs=1, verbose=False)
    recorder.modes.clear()
    whole = model.predict(x)
    batched = model.predict(x, batch_size=6)
    np.testing.assert_allclose(whole, batched, rtol=1e-5, atol=1e-7)  # float32, summed in other blocks
    result = model.evaluate(x, y, metrics=["accuracy"], batch_size=7)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(CrossEntropy()(whole, y), rel=1e-5)
    assert recorder.modes == [False] * (1 + 4 + 3)


def test_evaluate_needs_a_loss_before_training():
    model = classifier()
    with pytest.raises(lamina.ArgumentError, match="pass loss="):
        model.evaluate(*blobs(10))
    assert set(model.evaluate(*blobs(10), loss="CrossEntropy")) == {"loss"}


def test_softmax_with_cross_entropy_trains_exactly_like_logits_with_from_logits():
    """The fused gradient (p - y) / n makes both formulations take the same steps."""
    x, y = blobs()
    x = x.astype(np.float64)
    a2 = classifier(seed=1, softmax=True)
    a2(x[:1])  # built right after seeding: both models start from the same weights
    b2 = classifier(seed=1, softmax=False)
    b2(x[:1])
    lamina.seed(7)
    ha = a2.train(x, y, optim=SGD(0.5), loss=CrossEntropy(), epochs=20, batch_size=16, verbose=False)
    lamina.seed(7)
    hb = b2.train(x, y, optim=SGD(0.5), loss=CrossEntropy(from_logits=True), epochs=20, batch_size=16, verbose=False)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-9)
    for pa, pb in zip(a2.parameters().values(), b2.parameters().values()):
        np.testing.assert_allclose(pa.value, pb.value, rtol=1e-9, atol=1e-12)


def test_one_bar_per_epoch_over_batches(capsys):
    x, y = blobs(20)
    classifier().train(x, y, loss="CrossEntropy", epochs=2, batch_size=8, metrics=["accuracy"])
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "3/3" in err and "accuracy=" in err
    assert err.count("\n") == 2


def test_one_bar_over_epochs_for_a_single_batch(capsys):
    x, y = blobs(20)
    classifier().train(x, y, loss="CrossEntropy", epochs=4)
    err = capsys.readouterr().err
    assert "4/4" in err and "epoch 1/4" not in err and err.count("\n") == 1


# -- the NaN guard -------------------------------------------------------------------------------


def test_nan_in_the_data_stops_at_once_naming_epoch_batch_and_cause_and_keeps_weights():
    x, y = blobs(12)
    x[9, 0] = np.nan
    model = classifier()
    model(x[:1])
    before = [p.value.copy() for p in model.parameters().values()]
    with pytest.raises(lamina.NonFiniteError) as info:
        model.train(x, y, loss="CrossEntropy", epochs=3, batch_size=4, shuffle=False, verbose=False)
    message = str(info.value)
    assert "epoch 1/3, batch 3/3" in message and "input batch x contains NaN" in message
    assert isinstance(info.value, FloatingPointError)
    after = [p.value for p in model.parameters().values()]
    assert all(np.isfinite(a).all() for a in after)
    assert not all(np.array_equal(a, b) for a, b in zip(after, before))  # batches 1-2 were applied


class Exploding(lamina.Layer):
    """Finite until its third forward pass, then infinite."""

    def __init__(self) -> None:
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * (np.inf if self.calls >= 3 else 1.0)

    def backward(self, grad):
        return grad


def test_a_non_finite_layer_output_is_named_with_its_position():
    x, y = blobs(12)
    lamina.seed(0)
    model = lamina.Model([Linear(4), Tanh(), Exploding(), Linear(3), Softmax()])
    with pytest.raises(lamina.NonFiniteError) as info:
        model.train(x, y, loss="CrossEntropy", epochs=5, verbose=False)
    message = str(info.value)
    assert "epoch 2/5, batch 1/1" in message  # the third call: after the building pass and epoch 1
    assert "the output of Model.layers[2], Exploding(), is not finite" in message


class BadGradient(lamina.Layer):
    def forward(self, x):
        return x

    def backward(self, grad):
        return grad * np.nan


def test_a_non_finite_gradient_is_named_with_its_layer_and_no_step_is_taken():
    x, y = blobs(12)
    lamina.seed(0)
    model = lamina.Model([Linear(4), BadGradient(), Linear(3), Softmax()])
    model(x[:1])
    before = [p.value.copy() for p in model.parameters().values()]
    with pytest.raises(lamina.NonFiniteError) as info:
        model.train(x, y, loss="CrossEntropy", epochs=2, verbose=False)
    message = str(info.value)
    assert "epoch 1/2, batch 1/1" in message
    assert "its input gradient in Model.layers[1], BadGradient(), is not finite" in message
    for a, b in zip(model.parameters().values(), before):
        np.testing.assert_array_equal(a.value, b)


def test_divergence_from_a_huge_learning_rate_is_caught_with_finite_weights_kept():
    x, y = blobs(30)
    x = x * 1e3
    model = classifier(softmax=False)
    with pytest.raises(lamina.NonFiniteError, match="training stopped at epoch") as info:
        model.train(x, y, optim=SGD(lr=1e30), loss=CrossEntropy(from_logits=True), epochs=50, verbose=False)
    assert "try a lower learning rate" in str(info.value)
    assert all(np.isfinite(p.value).all() for p in model.parameters().values())



class Overflowing(lamina.Layer):
    """Forward only; exp(1000 x) is infinite for any x above ~0.09 from the first call."""

    def forward(self, x):
        return np.exp(1000.0 * x)


def test_a_forward_that_overflows_on_the_first_batch_is_blamed_not_the_learning_rate():
    x, y = blobs(12)
    lamina.seed(0)
    model = lamina.Model([Linear(3), Overflowing(), Softmax()])
    with pytest.raises(lamina.NonFiniteError) as info:
        model.train(x, y, loss="CrossEntropy", epochs=2, verbose=False)
    message = str(info.value)
    assert "epoch 1/2, batch 1/1" in message
    assert "the output of Model.layers[1], Overflowing(), is not finite although its input is" in message
    assert "No update has been made yet" in message and "the forward pass itself overflows" in message
    assert "lower learning rate" not in message


def test_a_backward_that_is_not_finite_before_any_update_is_blamed_not_the_learning_rate():
    x, y = blobs(12)
    lamina.seed(0)
    with pytest.raises(lamina.NonFiniteError) as info:
        lamina.Model([Linear(4), BadGradient(), Linear(3), Softmax()]).train(x, y, loss="CrossEntropy", verbose=False)
    message = str(info.value)
    assert "the backward pass itself" in message and "lower learning rate" not in message


@pytest.mark.parametrize("where", ["x", "y"])
def test_non_finite_data_is_named_as_the_data_at_any_step_without_a_learning_rate_hint(where):
    x = np.random.default_rng(0).normal(size=(8, 3))
    y = x @ np.ones((3, 1))
    (x if where == "x" else y)[5, 0] = np.inf
    lamina.seed(0)
    with pytest.raises(lamina.NonFiniteError) as info:
        lamina.Model([Linear(1)]).train(x, y, epochs=2, batch_size=4, shuffle=False, verbose=False)
    message = str(info.value)
    named = "the input batch x" if where == "x" else "the targets y of this batch"
    assert "batch 2/2" in message and f"{named} contains NaN or infinity: 1 value(s), in row(s) 1 of its 4" in message
    assert "The data itself is not finite" in message and "lower learning rate" not in message


def test_a_non_finite_value_after_updates_suggests_a_lower_learning_rate():
    x, y = blobs(12)
    lamina.seed(0)
    with pytest.raises(lamina.NonFiniteError) as info:  # Exploding's third call: after one update
        lamina.Model([Linear(4), Tanh(), Exploding(), Linear(3), Softmax()]).train(x, y, loss="CrossEntropy", epochs=5,
                                                                                     verbose=False)
    message = str(info.value)
    assert "1 update(s)" in message and "try a lower learning rate or clip_grad_norm=1.0" in message


class NaiveSigmoid(lamina.Layer):
    """1 / (1 + exp(-x)): finite everywhere, but exp overflows (a numpy warning) below x ~ -710."""

    def forward(self, x):
        self._y = 1.0 / (1.0 + np.exp(-x))
        return self._y

    def backward(self, grad):
        return grad * self._y * (1.0 - self._y)


def test_numpy_warnings_are_silenced_in_all_of_training_but_not_in_predict_and_evaluate():
    # pytest turns RuntimeWarnings into errors: any that escaped training would fail it here
    x, y = blobs(12)
    x = x.astype(np.float64) * 1e3  # exp(-x) overflows from the building forward on
    lamina.seed(0)
    model = lamina.Model([NaiveSigmoid(), Linear(3)])
    model.train(x, y, loss=CrossEntropy(from_logits=True), epochs=2, batch_size=4, validation_data=(x, y),
                verbose=False)
    assert all(np.isfinite(p.value).all() for p in model.parameters().values())
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):  # no NaN guard here: the warning tells
        model.predict(x)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        model.evaluate(x, y)


class WarnsItself(lamina.Layer):
    def forward(self, x):
        warnings.warn("WarnsItself: a plugin's own warning", RuntimeWarning, stacklevel=2)
        return x

    def backward(self, grad):
        return grad


def test_a_plugins_own_warnings_are_not_silenced_in_training():
    x, y = blobs(12)
    with pytest.warns(RuntimeWarning, match="a plugin's own warning"):
        lamina.Model([WarnsItself(), Linear(3)]).train(x, y, loss=CrossEntropy(from_logits=True), verbose=False)

# -- gradient clipping ---------------------------------------------------------------------------


def test_clip_grad_norm_caps_the_global_norm_of_the_step():
    x, y = blobs(20)
    model = classifier()
    model(x[:1])
    before = [p.value.copy() for p in model.parameters().values()]
    model.train(x, y, optim=SGD(lr=1.0), loss="CrossEntropy", epochs=1, clip_grad_norm=0.01, verbose=False)
    moved = np.sqrt(sum(np.sum((p.value - b) ** 2) for p, b in zip(model.parameters().values(), before)))
    assert moved == pytest.approx(0.01, rel=1e-3)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(i).normal(size=(3, 4)) for i in range(3)]
    params = [lamina.Parameter(np.zeros((3, 4))) for _ in grads]
    tparams = [torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64)) for _ in grads]
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.from_numpy(g.copy())
    norm = lamina.clip_grad_norm(params, 0.5)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, 0.5)
    assert norm == pytest.approx(tnorm.item())
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, lamina.ArgumentError, "Model.train(batch_size=0): batch_size must be a positive int"),
        ({"batch_size": 2.5}, lamina.ArgumentError, "batch_size must be a positive int"),
        ({"validation_split": 1.0}, lamina.ArgumentError, "validation_split must be a number in [0, 1), got 1.0"),
        ({"validation_split": -0.1}, lamina.ArgumentError, "validation_split must be a number in [0, 1)"),
        ({"validation_split": 0.95}, lamina.ArgumentError, "leaves 12 for validation and 0 for training"),
        ({"metrics": ["acuracy"]}, lamina.UnknownPluginError, "unknown metric 'acuracy'. Did you mean 'accuracy'"),
        ({"callbacks": ["EarlyStoping"]}, lamina.UnknownPluginError, "Did you mean 'EarlyStopping'?"),
        ({"metrics": ["accuracy", "acc"]}, lamina.ArgumentError, "two results would be called 'accuracy'"),
        ({"validation_data": (1, 2, 3)}, lamina.ArgumentError, "expected a pair (x_val, y_val)"),
        ({"validation_data": ([[0, 0]], [0]), "validation_split": 0.5}, lamina.ArgumentError, "not both"),
        ({"clip_grad_norm": 0}, lamina.ArgumentError, "clip_grad_norm must be a positive number"),
        ({"optim": "Adamm"}, lamina.UnknownPluginError, "Did you mean 'Adam'"),
    ],
)
def test_bad_training_arguments_get_errors_naming_the_parameter(kwargs, error, message):
    x, y = blobs(12)
    with pytest.raises(error) as info:
        classifier().train(x, y, loss="CrossEntropy", epochs=1, verbose=False, **kwargs)
    assert message in str(info.value)


def test_validation_data_lengths_must_match():
    x, y = blobs(12)
    with pytest.raises(lamina.ShapeError, match="validation_data's x_val and y_val have shapes"):
        classifier().train(x, y, loss="CrossEntropy", validation_data=(x[:4], y[:3]), verbose=False)


# -- lamina.echo during training -------------------------------------------------------------------


class Announcer(lamina.Callback):
    def on_epoch_end(self, epoch, logs):
        lamina.echo("announcing epoch", epoch + 1)


def test_echo_prints_above_the_bar_and_is_silent_when_training_quietly(capsys):
    model = lamina.Model([lamina.layer("Linear", 1)])
    x, y = np.ones((8, 2)), np.ones((8, 1))
    model.train(x, y, epochs=2, batch_size=4, callbacks=[Announcer()], verbose=True)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["announcing epoch 1", "announcing epoch 2"]
    assert "epoch 2/2" in captured.err  # the bars, on stderr, untouched
    model.train(x, y, epochs=2, callbacks=[Announcer()], verbose=False)
    assert capsys.readouterr().out == ""
