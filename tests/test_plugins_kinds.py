"""Metrics, callbacks and initialisers: values, behaviour and errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest

import lamina
from lamina.plugins import (
    SGD,
    Accuracy,
    BinaryAccuracy,
    CSVLogger,
    EarlyStopping,
    LearningRateLogger,
    Linear,
    MeanAbsoluteError,
    MeanSquaredError,
    StepDecay,
)

# -- metrics -------------------------------------------------------------------------------------

PRED = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
LABELS = np.array([1, 0, 1, 1])


def test_accuracy_from_labels_one_hot_probabilities_or_logits():
    assert Accuracy()(PRED, LABELS) == 0.75
    assert Accuracy()(PRED, np.eye(3)[LABELS]) == 0.75
    assert Accuracy()(np.log(PRED), LABELS) == 0.75  # logits: same argmax
    assert Accuracy()(PRED, LABELS.reshape(-1, 1)) == 0.75


def test_accuracy_on_a_single_column_points_to_binary_accuracy():
    with pytest.raises(lamina.ShapeError, match="use the metric 'binary_accuracy'"):
        Accuracy()(np.ones((3, 1)), np.ones(3))


def test_binary_accuracy_mae_and_mse():
    pred, y = np.array([[0.9], [0.4], [0.6], [0.1]]), np.array([[1.0], [1.0], [0.0], [0.0]])
    assert BinaryAccuracy()(pred, y) == 0.5
    assert BinaryAccuracy(threshold=0.0)(np.log(pred / (1 - pred)), y) == 0.5
    assert MeanAbsoluteError()(pred, y) == pytest.approx(np.mean([0.1, 0.6, 0.6, 0.1]))
    assert MeanSquaredError()(pred, y) == pytest.approx(np.mean([0.01, 0.36, 0.36, 0.01]))
    with pytest.raises(lamina.ShapeError, match=r"mae: pred has shape \(4, 1\) but y has shape \(4,\)"):
        MeanAbsoluteError()(pred, y.ravel())


def test_metric_names_key_the_history():
    assert [m.name for m in (Accuracy(), BinaryAccuracy(), MeanAbsoluteError(), MeanSquaredError())] == [
        "accuracy", "binary_accuracy", "mae", "mse"]

    class TopTwoAccuracy(lamina.Metric):
        def __call__(self, pred, y):
            return 1.0

    assert TopTwoAccuracy.name == "top_two_accuracy"
    assert lamina.metric("ACC").name == "accuracy"


def test_epoch_metrics_are_sample_weighted_means_of_batches():
    lamina.seed(0)
    x = np.random.default_rng(0).normal(size=(10, 2))
    model = lamina.Model([Linear(1)])
    history = model.train(x, x[:, :1], optim=SGD(lr=1e-12), epochs=1, batch_size=4, shuffle=False,
                          metrics=["mae"], verbose=False)
    # lr ~ 0: the weights are the same for every batch, so the epoch mean equals one pass.
    assert history["mae"][0] == pytest.approx(MeanAbsoluteError()(model(x), x[:, :1]), rel=1e-6)


# -- callbacks -----------------------------------------------------------------------------------


class Driven:
    """A fake model for driving a callback by hand."""

    def __init__(self):
        self.param = lamina.Parameter(np.zeros(2))
        self.stop_training = False
        self.optimizer = None

    def parameters(self):
        return {"w": self.param}


def drive(callback, values, monitor="val_loss"):
    model = Driven()
    callback.set_model(model)
    callback.on_train_begin({})
    epochs = 0
    for epoch, value in enumerate(values):
        model.param.value[:] = epoch  # weights tell the epoch they came from
        callback.on_epoch_end(epoch, {monitor: value, "loss": 0.0})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end({})
    return model, epochs


def test_early_stopping_waits_patience_epochs_then_restores_the_best_weights():
    stopper = EarlyStopping(patience=2)
    model, epochs = drive(stopper, [3.0, 2.0, 2.5, 2.6, 1.0])
    assert epochs == 4 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    assert model.param.value.tolist() == [1.0, 1.0]
    assert stopper.best_value == 2.0


def test_early_stopping_min_delta_mode_and_no_restore():
    model, epochs = drive(EarlyStopping(patience=1, min_delta=0.5, restore_best=False), [3.0, 2.8, 2.0])
    assert epochs == 2 and model.param.value.tolist() == [1.0, 1.0]
    model, epochs = drive(EarlyStopping(monitor="val_accuracy", patience=1), [0.5, 0.7, 0.6, 0.9], "val_accuracy")
    assert epochs == 3 and model.param.value.tolist() == [1.0, 1.0]  # "auto": accuracy is maximised


def test_early_stopping_in_training_restores_the_best_epoch():
    x = np.random.default_rng(0).normal(size=(20, 2))
    lamina.seed(0)
    model = lamina.Model([Linear(1)])
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    history = model.train(x, x[:, :1], optim=SGD(0.1), epochs=10, callbacks=[stopper], verbose=False)
    assert len(history) == 2  # epoch 0 improves on infinity; epoch 1 cannot improve by 1e9
    assert stopper.best_epoch == 0


def test_early_stopping_names_a_missing_monitor():
    with pytest.raises(lamina.ArgumentError) as info:
        drive(EarlyStopping(), [1.0], monitor="loss_")
    assert "no such value in this epoch's logs (they have 'loss_', 'loss')" in str(info.value)
    assert "validation_data or validation_split" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"patience": -1}, "patience must be an int >= 0"), ({"mode": "up"}, "mode must be 'auto', 'min' or 'max'"),
     ({"min_delta": -1}, "min_delta must be a number >= 0"), ({"monitor": ""}, "monitor must name a logged value")],
)
def test_early_stopping_arguments_are_checked(kwargs, message):
    with pytest.raises(lamina.ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EarlyStopping(**kwargs)


def test_learning_rate_logger_records_the_scheduled_rate(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 2))
    model = lamina.Model([Linear(1)])
    optim = SGD(lr=StepDecay(0.1, step_size=2, gamma=0.5))
    history = model.train(x, x[:, :1], optim=optim, epochs=3, batch_size=4,
                          callbacks=["LearningRateLogger"], verbose=False)
    # two steps per epoch; the logged rate is the one of each epoch's last step (1, 3, 5)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_csv_logger_writes_every_epoch_atomically(tmp_path):
    path = tmp_path / "log.csv"
    x = np.random.default_rng(0).normal(size=(8, 2))
    model = lamina.Model([Linear(1)])
    model.train(x, x[:, :1], epochs=3, metrics=["mae"], callbacks=[LearningRateLogger(), CSVLogger(path)],
                validation_split=0.25, verbose=False)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae", "lr"]
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    assert float(rows[-1]["lr"]) == 0.01
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary file left behind


def test_a_custom_callback_can_stop_training_and_sees_every_hook():
    seen = []

    class StopAtTwo(lamina.Callback):
        def on_train_begin(self, logs=None):
            seen.append("begin")

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(f"start {epoch}")

        def on_epoch_end(self, epoch, logs):
            seen.append(f"end {epoch}")
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            seen.append("finish")

    x = np.ones((4, 2))
    history = lamina.Model([Linear(1)]).train(x, x[:, :1], epochs=10, callbacks=StopAtTwo(), verbose=False)
    assert len(history) == 2
    assert seen == ["begin", "start 0", "end 0", "start 1", "end 1", "finish"]


# -- initialisers --------------------------------------------------------------------------------

FAN_IN, FAN_OUT = 400, 300


@pytest.mark.parametrize(
    "name, std",
    [
        ("glorot_uniform", np.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("glorot_normal", np.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("he_uniform", np.sqrt(2 / FAN_IN)),
        ("he_normal", np.sqrt(2 / FAN_IN)),
        ("lecun_normal", np.sqrt(1 / FAN_IN)),
    ],
)
def test_variance_scaling_initialisers_have_the_documented_spread(name, std):
    lamina.seed(0)
    w = lamina.initializer(name)((FAN_IN, FAN_OUT), np.float32)
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    assert w.std() == pytest.approx(std, rel=0.02) and abs(w.mean()) < 0.01 * std * 10
    if name.endswith("uniform"):
        assert np.abs(w).max() <= std * np.sqrt(3)


def test_constant_and_normal_initialisers():
    assert not lamina.initializer("zeros")((3, 2)).any()
    assert (lamina.initializer("ones")((3,), np.float64) == 1).all()
    lamina.seed(1)
    w = lamina.initializer("normal", std=0.1, mean=2.0)((200, 200))
    assert w.mean() == pytest.approx(2.0, abs=0.01) and w.std() == pytest.approx(0.1, rel=0.02)


def test_fans_of_matrices_and_convolution_kernels():
    assert lamina.fans((3, 5)) == (3, 5)
    assert lamina.fans((16, 3, 5, 5)) == (75, 400)  # (out, in, kh, kw)
    assert lamina.fans((7,)) == (7, 7)


def test_linear_takes_initialisers_by_name_or_instance_and_checks_names_early():
    layer = Linear(4, weight_init="zeros", bias_init=lamina.initializer("normal", std=1.0))
    layer(np.ones((2, 3)))
    assert not layer.weight.value.any() and layer.bias.value.any()
    assert repr(Linear(4)) == "Linear(units=4)"
    assert "weight_init='zeros'" in repr(Linear(4, weight_init="zeros"))
    with pytest.raises(lamina.UnknownPluginError, match="Did you mean 'he_uniform'"):
        Linear(4, weight_init="he_unifrom")
    with pytest.raises(lamina.ArgumentError, match="weight_init=3"):
        Linear(4, weight_init=3)


def test_the_same_seed_gives_the_same_initial_weights():
    draws = []
    for _ in range(2):
        lamina.seed(42)
        draws.append(lamina.initializer("he_normal")((5, 5)).tobytes())
    assert draws[0] == draws[1]


# -- every registered metric, callback, initialiser and schedule is tested -----------------------

TESTED = {
    "metric": {"accuracy", "binary_accuracy", "mae", "mse",  # test_metrics_stateful.py: against scikit-learn
               "precision", "recall", "f1", "top_k_accuracy", "auc", "confusion_matrix"},
    "callback": {"EarlyStopping", "LearningRateLogger", "CSVLogger", "Checkpoint",  # +test_checkpoint.py
                 "ReduceLROnPlateau", "TensorBoard"},  # test_reduce_lr.py, test_tensorboard.py
    "initializer": {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
                    "zeros", "ones", "normal"},
    "schedule": {"Constant", "StepDecay", "ExponentialDecay", "CosineDecay"},  # test_optimizers.py
    "dataset": {"xor", "spirals", "digits", "npz", "csv", "text", "moby_dick",  # test_datasets.py, test_text.py
                "npy", "image_folder",  # test_files.py
                "digit_pairs"},  # test_graph_app.py
    "strategy": {"local", "mpi"},  # test_mpi.py
}


@pytest.mark.parametrize("kind", sorted(TESTED))
def test_every_registered_plugin_of_the_other_kinds_has_tests(kind):
    registered = {f"{i.package}:{i.name}" for i in lamina.get_registry().plugins(kind)}
    assert registered == {f"lamina:{name}" for name in TESTED[kind]}, "add tests for new plugins"


# -- EarlyStopping says why it stopped -------------------------------------------------------------


def test_early_stopping_says_why_it_stopped_through_echo(capsys):
    model = lamina.Model([lamina.layer("Linear", 1)])
    x = np.random.default_rng(0).normal(size=(16, 2))
    stop = lamina.callback("EarlyStopping", monitor="loss", patience=0, min_delta=1e9)
    model.train(x, x[:, :1], epochs=5, callbacks=[stop], verbose=True)
    assert "EarlyStopping: stopped after epoch 2: loss has not improved for 0 epochs (best" in capsys.readouterr().out
