"""Best-only checkpoints: Checkpoint(save_best_only=True) keeps the model of the best epoch by a
logged value, which lamina.load reads back to that epoch's validation score."""
from __future__ import annotations

import numpy as np
import pytest

import lamina


def data():
    x, y, x_val, y_val = lamina.dataset("spirals", n_samples=120)
    return x[:30], y[:30], x_val, y_val  # few training rows: the validation loss goes down and up again


def train(callbacks, epochs=30):
    x, y, x_val, y_val = data()
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 32), "Tanh", lamina.layer("Linear", 3)])
    loss = lamina.loss("CrossEntropy", from_logits=True)
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.05), loss=loss, metrics=["accuracy"], epochs=epochs,
                          batch_size=10, validation_data=(x_val, y_val), callbacks=callbacks, verbose=False)
    return model, history


def test_a_best_only_checkpoint_reloads_to_the_best_validation_loss(tmp_path):
    path = tmp_path / "best.npz"
    checkpoint = lamina.Checkpoint(path, save_best_only=True)
    model, history = train([checkpoint])
    val_loss = history["val_loss"]
    best = int(np.argmin(val_loss))
    assert best < len(val_loss) - 1, "the last epoch is not the best: the file must not be the final model"
    assert checkpoint.best_epoch == best and checkpoint.best == val_loss[best]
    _, _, x_val, y_val = data()
    loaded = lamina.load(path)
    # the loop scores validation data in batches of batch_size: the same sums here
    assert loaded.evaluate(x_val, y_val, batch_size=10)["loss"] == pytest.approx(val_loss[best], rel=1e-6)
    assert model.evaluate(x_val, y_val, batch_size=10)["loss"] == pytest.approx(val_loss[-1], rel=1e-6)
    assert loaded.evaluate(x_val, y_val)["loss"] != pytest.approx(val_loss[-1], rel=1e-3)


def test_mode_max_keeps_the_first_of_the_best_accuracies(tmp_path):
    path = tmp_path / "best.npz"
    checkpoint = lamina.callback("Checkpoint", path, monitor="val_accuracy", save_best_only=True)
    _, history = train([checkpoint])
    accuracy = history["val_accuracy"]
    best = int(np.argmax(accuracy))  # the first of the ties: only a strictly better value replaces it
    assert accuracy.count(max(accuracy)) > 1 and best < len(accuracy) - 1
    assert checkpoint.best_epoch == best
    _, _, x_val, y_val = data()
    scores = lamina.load(path).evaluate(x_val, y_val, metrics=["accuracy"], batch_size=10)
    assert scores["accuracy"] == accuracy[best] and scores["loss"] == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_mode_min_on_an_accuracy_keeps_the_worst(tmp_path):
    checkpoint = lamina.Checkpoint(tmp_path / "worst.npz", monitor="val_accuracy", save_best_only=True, mode="min")
    _, history = train([checkpoint])
    assert checkpoint.best_epoch == int(np.argmin(history["val_accuracy"]))


def test_every_n_epochs_compares_only_those_epochs(tmp_path):
    checkpoint = lamina.Checkpoint(tmp_path / "best.npz", every=3, save_best_only=True)
    _, history = train([checkpoint])
    checked = history["val_loss"][2::3]  # epochs 3, 6, ... (counted from 1)
    assert checkpoint.best_epoch == 2 + 3 * int(np.argmin(checked))
    assert checkpoint.best_epoch != int(np.argmin(history["val_loss"]))


def test_a_best_only_file_is_a_model_not_a_resumable_checkpoint(tmp_path):
    best, last = tmp_path / "best.npz", tmp_path / "last.npz"
    model, _ = train([lamina.Checkpoint(best, save_best_only=True), lamina.Checkpoint(last)], epochs=3)
    x, y, _, _ = data()
    with pytest.raises(lamina.ArgumentError, match="not a checkpoint"):
        model.train(x, y, loss=model.loss, epochs=4, resume_from=best, verbose=False)
    model.train(x, y, loss=model.loss, epochs=4, resume_from=last, verbose=False)  # the resumable one is as before
    assert len(model.history) == 4


def test_a_resumed_run_keeps_the_best_of_the_epochs_before(tmp_path):
    path = tmp_path / "best.npz"
    model = lamina.Model([lamina.layer("Linear", 1)])
    model.build(np.zeros((1, 2)))
    checkpoint = lamina.Checkpoint(path, save_best_only=True)

    def epoch(number, val_loss):
        model.parameters()["0.weight"].value[...] = number  # the weights tell the epoch
        checkpoint.on_epoch_end(number, {"loss": 0.0, "val_loss": val_loss})
        model.history.record(number, {"loss": 0.0, "val_loss": val_loss})

    model.history = lamina.History()
    checkpoint.set_model(model)
    checkpoint.on_train_begin({})
    epoch(0, 0.5)
    epoch(1, 0.2)
    # a new run resumed from its history: epoch 2 is worse than epoch 1, so the file stays
    model.history = lamina.History.from_dict(model.history.history)
    checkpoint.on_train_begin({})
    assert checkpoint.best_epoch == 1 and checkpoint.best == 0.2
    epoch(2, 0.3)
    assert np.all(lamina.load(path).parameters()["0.weight"].value == 1)
    epoch(3, 0.1)
    assert np.all(lamina.load(path).parameters()["0.weight"].value == 3)


def test_a_monitor_missing_from_the_logs_is_an_error_at_the_first_epoch(tmp_path):
    path = tmp_path / "best.npz"
    x, y, _, _ = data()
    model = lamina.Model([lamina.layer("Linear", 3)])
    with pytest.raises(lamina.ArgumentError, match=r"Checkpoint\(monitor='val_loss', save_best_only=True\): no such "
                                                    "value.*'loss'.*validation_split"):
        model.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=3, verbose=False,
                    callbacks=[lamina.Checkpoint(path, save_best_only=True)])
    assert len(model.history) == 0 and not path.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"monitor": "val_loss"}, "monitor and mode choose the best epoch.*save_best_only=True"),
    ({"mode": "max"}, "monitor and mode choose the best epoch"),
    ({"save_best_only": "yes"}, "save_best_only"),
    ({"save_best_only": True, "monitor": 3}, "monitor must name a logged value"),
    ({"save_best_only": True, "mode": "lowest"}, "mode"),
    ({"save_best_only": True, "monitor": "val_widgets"}, "no metric class says.*pass mode='min'.*or mode='max'"),
])
def test_bad_arguments_are_argument_errors(kwargs, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.Checkpoint("best.npz", **kwargs)


@pytest.mark.parametrize("monitor, mode", [
    ("val_loss", "min"), ("loss", "min"), ("val_mae", "min"), ("mse", "min"), ("val_cross_entropy_loss", "min"),
    ("accuracy", "max"), ("val_binary_accuracy", "max"), ("val_top_k_accuracy", "max"), ("val_auc", "max"),
    ("val_f1", "max"), ("precision", "max"), ("val_recall", "max"),
])
def test_mode_auto_reads_the_direction_from_the_metric_class(monitor, mode):
    assert lamina.Callback.monitor_mode(monitor, "auto", "Checkpoint") == mode
    assert lamina.Callback.monitor_mode(monitor, "min", "Checkpoint") == "min"


def test_the_default_config_is_unchanged_and_best_only_is_built_by_name(tmp_path):
    assert repr(lamina.Checkpoint("c.npz")) == "Checkpoint(path='c.npz')"
    built = lamina.get_registry().build("callback", "Checkpoint", path="b.npz", save_best_only=True, monitor="val_f1")
    assert repr(built) == "Checkpoint(path='b.npz', monitor='val_f1', save_best_only=True)"
