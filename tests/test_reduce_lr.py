"""ReduceLROnPlateau: Keras' learning-rate sequence on scripted values (wait, cooldown, min_delta,
min_lr, both modes), the rate it sets in training, what it logs, and its errors."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins.training.callbacks import ReduceLROnPlateau


def keras_rates(values, lr, factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0, higher_is_better=False):
    """The learning rate each epoch logs, by a transcription of Keras 3's rule
    (keras-team/keras, keras/src/callbacks/reduce_lr_on_plateau.py: `_reset` and `on_epoch_end`),
    with the optimizer's rate held in float32 as Keras' variable holds it."""
    if higher_is_better:
        monitor_op, best = (lambda a, b: np.greater(a, b + min_delta)), -np.inf
    else:
        monitor_op, best = (lambda a, b: np.less(a, b - min_delta)), np.inf
    cooldown_counter, wait = 0, 0
    lr = float(np.float32(lr))
    logged = []
    for current in values:
        logged.append(lr)  # logs["learning_rate"] is set before anything else
        if cooldown_counter > 0:  # in_cooldown()
            cooldown_counter -= 1
            wait = 0
        if monitor_op(current, best):
            best = current
            wait = 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                old_lr = lr
                if old_lr > np.float32(min_lr):
                    new_lr = old_lr * factor
                    new_lr = max(new_lr, min_lr)
                    lr = float(np.float32(new_lr))  # self.model.optimizer.learning_rate = new_lr
                    cooldown_counter = cooldown
                    wait = 0
    return logged


class Driven:
    """A stand-in for a model in training: a real optimizer, nothing else."""

    def __init__(self, lr):
        self.optimizer = lamina.optimizer("SGD", lr=lr)
        self.stop_training = False


def lamina_rates(values, lr, monitor="val_loss", **options):
    callback = ReduceLROnPlateau(monitor=monitor, **options)
    model = Driven(lr)
    callback.set_model(model)
    callback.on_train_begin({})
    logged = []
    for epoch, value in enumerate(values):
        logs = {"loss": 0.0, monitor: float(value)}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["lr"])
    callback.on_train_end({})
    return logged, model.optimizer.lr


PLATEAUS = [3.0, 2.0, 1.5, 1.5, 1.49995, 1.5, 1.6, 1.4, 1.4, 1.4, 1.4, 1.4, 1.39, 1.39, 1.39, 1.39, 1.39, 1.39,
            1.39, 1.39, 1.39, 1.39, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]

SCENARIOS = {  # (values, lr, options); each one changes the rate several times
    "patience": (PLATEAUS, 0.1, {"factor": 0.5, "patience": 2}),
    "patience 0": (PLATEAUS, 0.1, {"factor": 0.5, "patience": 0}),
    "cooldown": (PLATEAUS, 0.1, {"factor": 0.5, "patience": 2, "cooldown": 3}),
    "min_delta": (PLATEAUS, 0.1, {"factor": 0.5, "patience": 2, "min_delta": 0.05}),
    "min_lr": (PLATEAUS, 0.1, {"factor": 0.1, "patience": 1, "min_lr": 0.003}),
    "min_lr and cooldown": (PLATEAUS, 1.0, {"factor": 0.3, "patience": 1, "cooldown": 2, "min_lr": 0.05}),
    "defaults": ([1.0] * 40, 0.01, {}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_rates_follow_keras_rule(name):
    values, lr, options = SCENARIOS[name]
    expected = keras_rates(values, lr, **options)
    logged, final = lamina_rates(values, lr, **options)
    assert len(set(expected)) >= 3, "the scenario reduces the rate at least twice"
    # lamina keeps the rate in float64, Keras in a float32 variable
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert final == pytest.approx(keras_rates([*values, values[-1]], lr, **options)[-1], rel=1e-6)


def test_max_mode_follows_keras_rule_for_an_accuracy():
    values = [0.5, 0.6, 0.6, 0.6, 0.65, 0.65, 0.65, 0.65, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    expected = keras_rates(values, 0.1, factor=0.5, patience=2, cooldown=1, higher_is_better=True)
    logged, _ = lamina_rates(values, 0.1, monitor="val_accuracy", factor=0.5, patience=2, cooldown=1)
    assert len(set(expected)) >= 3
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    # the same values read as a loss (mode "min") reduce on other epochs
    as_loss, _ = lamina_rates(values, 0.1, monitor="val_accuracy", factor=0.5, patience=2, cooldown=1, mode="min")
    assert as_loss != logged


def test_a_flat_run_halves_the_rate_every_patience_epochs_by_hand():
    # epoch 0 improves on infinity; epochs 1 and 2 wait; the reduction shows from epoch 3
    logged, final = lamina_rates([1.0] * 7, 1.0, factor=0.5, patience=2)
    assert logged == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert final == 0.125


def test_training_uses_the_reduced_rate_and_logs_it():
    x = np.random.default_rng(0).normal(size=(32, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    model = lamina.Model([lamina.layer("Linear", 1)])
    # min_delta of 1e9: no epoch after the first improves, so the rate is cut every other epoch
    reduce = lamina.callback("ReduceLROnPlateau", monitor="loss", factor=0.5, patience=2, min_delta=1e9)
    optim = lamina.optimizer("SGD", lr=0.05)
    history = model.train(x, y, optim=optim, loss="MSE", epochs=7, callbacks=[reduce], verbose=False)
    assert history["lr"] == [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert optim.lr == 0.00625
    assert optim.current_lr == 0.0125  # the last step's rate: the cut after the last epoch comes next


def test_a_reduced_rate_goes_on_in_a_resumed_run(tmp_path):
    x = np.random.default_rng(1).normal(size=(32, 3))
    y = x.sum(axis=1, keepdims=True)
    checkpoint = tmp_path / "checkpoint.npz"

    def train(epochs, **kwargs):
        lamina.seed(0)
        model = lamina.Model([lamina.layer("Linear", 1)])
        reduce = lamina.callback("ReduceLROnPlateau", monitor="loss", factor=0.5, patience=1, min_delta=1e9)
        return model.train(x, y, loss="MSE", epochs=epochs, verbose=False,
                           callbacks=[reduce, lamina.Checkpoint(checkpoint)], **kwargs)

    first = train(3, optim=lamina.optimizer("SGD", lr=0.1))
    assert first["lr"] == [0.1, 0.1, 0.05]
    resumed = train(5, resume_from=checkpoint)
    # the checkpoint's optimizer holds 0.025 (cut after epoch 3); the counters start afresh
    assert resumed["lr"] == [0.1, 0.1, 0.05, 0.025, 0.025]


def test_a_schedule_is_refused_before_training():
    model = lamina.Model([lamina.layer("Linear", 1)])
    x = np.ones((4, 2))
    optim = lamina.optimizer("SGD", lr=lamina.schedule("StepDecay", initial_lr=0.1, step_size=10, gamma=0.5))
    with pytest.raises(lamina.ArgumentError, match="schedule.*give the optimizer a number as lr"):
        model.train(x, x[:, :1], optim=optim, loss="MSE", epochs=2, verbose=False,
                    callbacks=[ReduceLROnPlateau(monitor="loss")])


def test_a_monitor_missing_from_the_logs_is_an_error_at_the_first_epoch():
    model = lamina.Model([lamina.layer("Linear", 1)])
    x = np.ones((4, 2))
    with pytest.raises(lamina.ArgumentError, match="'val_loss'.*no such value.*'loss'.*validation_split"):
        model.train(x, x[:, :1], loss="MSE", epochs=3, verbose=False, callbacks=[ReduceLROnPlateau()])
    assert model.history is not None and len(model.history) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"factor": 1.0}, r"factor must be a number in \(0, 1\)"),
    ({"factor": 0}, r"factor must be a number in \(0, 1\)"),
    ({"patience": -1}, "patience"),
    ({"min_delta": -0.1}, "min_delta"),
    ({"cooldown": 1.5}, "cooldown"),
    ({"min_lr": -1}, "min_lr"),
    ({"mode": "up"}, "mode"),
    ({"monitor": ""}, "monitor must name a logged value"),
    ({"monitor": "val_widgets"}, "pass mode='min'.*or mode='max'"),
])
def test_bad_arguments_are_argument_errors(kwargs, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        ReduceLROnPlateau(**kwargs)


def test_it_is_built_by_name_with_arguments():
    built = lamina.get_registry().build("callback", "ReduceLROnPlateau", monitor="val_accuracy", patience=3)
    assert isinstance(built, ReduceLROnPlateau) and built.patience == 3
    assert repr(built) == "ReduceLROnPlateau(monitor='val_accuracy', patience=3)"
    assert ReduceLROnPlateau(monitor="val_widgets", mode="max").monitor == "val_widgets"


def test_it_says_each_cut_and_nothing_once_the_rate_is_at_min_lr(capsys):
    logged, final = lamina_rates([1.0] * 8, 0.1, factor=0.1, patience=1, min_lr=0.005)
    assert logged == pytest.approx([0.1, 0.1, 0.01, 0.005, 0.005, 0.005, 0.005, 0.005])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["ReduceLROnPlateau: epoch 2: val_loss has not improved for 1 epoch; learning rate 0.1 -> 0.01",
                     "ReduceLROnPlateau: epoch 3: val_loss has not improved for 1 epoch; learning rate 0.01 -> 0.005"]
