"""TensorBoard: event files that TensorBoard's own EventAccumulator reads back to the history's
values (every tag, every step), batch scalars, histograms, `tensorboard = true` in lamina train
configs, and a clear error without the extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import config_file

import lamina
from lamina.app import config as runconfig
from lamina.app import run as runapp


def test_without_tensorboardx_building_it_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # what an environment without it imports
    with pytest.raises(lamina.ArgumentError, match=r"needs the tensorboardX package.*'lamina\[tensorboard\]'"):
        lamina.callback("TensorBoard", "logs")


def test_a_config_with_tensorboard_and_no_tensorboardx_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    path = config_file(tmp_path)
    path.write_text("tensorboard = true\n" + path.read_text())
    with pytest.raises(lamina.ConfigError, match=r"run.toml: tensorboard: .*pip install 'lamina\[tensorboard\]'"):
        runapp.train(runconfig.read(path), verbose=False, say=lambda text: None)


def test_tensorboard_in_a_config_must_be_true_or_false(tmp_path):
    path = config_file(tmp_path)
    path.write_text('tensorboard = "yes"\n' + path.read_text())
    with pytest.raises(lamina.ConfigError, match="tensorboard: expected true or false"):
        runconfig.read(path)


# -- with tensorboardX, read back by TensorBoard itself ---------------------------------------------


@pytest.fixture
def accumulator():
    """Reads a log folder as TensorBoard does (the tensorboard package, a test reference only)."""
    pytest.importorskip("tensorboardX", reason="the TensorBoard callback needs the tensorboard extra: "
                                               "pip install '.[tensorboard]'")
    module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                 reason="the tensorboard package reads the files back: pip install tensorboard")

    def read(folder):
        events = module.EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
        events.Reload()
        return events

    return read


def train(callbacks, epochs=4, **kwargs):
    x, y, _, _ = lamina.dataset("spirals", n_samples=120)
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 8), "Relu", lamina.layer("Linear", 3)])
    loss = lamina.loss("CrossEntropy", from_logits=True)
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01), loss=loss, metrics=["accuracy"], epochs=epochs,
                          batch_size=16, validation_split=0.25, callbacks=callbacks, verbose=False, **kwargs)
    return model, history


def scalars(events, tag):
    return [e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)]


def test_every_tag_and_step_reads_back_as_the_history(tmp_path, accumulator):
    reduce = lamina.callback("ReduceLROnPlateau", monitor="val_loss", patience=0, factor=0.5, min_delta=1.0)
    _, history = train([reduce, lamina.callback("TensorBoard", tmp_path / "tb")])
    events = accumulator(tmp_path / "tb")
    assert set(events.Tags()["scalars"]) == set(history.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                                                   "lr"}
    assert len(set(history["lr"])) > 1  # the rate changes: its curve is not a constant
    for tag in history.keys():
        steps, values = scalars(events, tag)
        assert steps == history.epoch == [0, 1, 2, 3]
        assert values == [float(np.float32(v)) for v in history[tag]], tag  # TensorBoard keeps float32
    assert not events.Tags()["histograms"]


def test_it_logs_the_learning_rate_itself_and_a_schedule_s(tmp_path, accumulator):
    schedule = lamina.schedule("StepDecay", initial_lr=0.1, step_size=6, gamma=0.5)
    x, y, _, _ = lamina.dataset("spirals", n_samples=120)
    model = lamina.Model([lamina.layer("Linear", 3)])
    optim = lamina.optimizer("SGD", lr=schedule)
    history = model.train(x, y, optim=optim, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=3,
                          batch_size=16, verbose=False, callbacks=[lamina.callback("TensorBoard", tmp_path)])
    # 96 rows, 6 steps an epoch: epoch e ends with step 6e + 5, at the schedule's rate 0.1 * 0.5**e
    assert history["lr"] == [0.1, 0.05, 0.025]
    assert scalars(accumulator(tmp_path), "lr") == ([0, 1, 2], [float(np.float32(v)) for v in history["lr"]])


def test_batch_scalars_are_the_running_means_at_every_step(tmp_path, accumulator):
    _, history = train([lamina.callback("TensorBoard", tmp_path, update_freq="batch")], epochs=3)
    events = accumulator(tmp_path)
    assert set(events.Tags()["scalars"]) == {*history.keys(), "batch_loss", "batch_accuracy"}
    steps, values = scalars(events, "batch_loss")
    per_epoch = 5  # 72 training rows in batches of 16
    assert steps == list(range(1, 3 * per_epoch + 1))
    # the running mean after an epoch's last step is the epoch's loss
    assert values[per_epoch - 1::per_epoch] == [float(np.float32(v)) for v in history["loss"]]


def test_histograms_of_every_parameter_each_epoch(tmp_path, accumulator):
    model, _ = train([lamina.callback("TensorBoard", tmp_path, histograms=True)], epochs=2)
    events = accumulator(tmp_path)
    parameters = model.parameters()
    assert set(events.Tags()["histograms"]) == set(parameters) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for name, param in parameters.items():
        saved = events.Histograms(name)
        assert [h.step for h in saved] == [0, 1]
        last = saved[-1].histogram_value
        assert last.num == param.value.size
        assert last.min == pytest.approx(param.value.min()) and last.max == pytest.approx(param.value.max())
        assert last.sum == pytest.approx(param.value.sum(), abs=1e-5)


def test_lamina_train_with_tensorboard_true_writes_the_run_s_curves(tmp_path, accumulator):
    path = config_file(tmp_path, epochs=3)
    path.write_text("tensorboard = true\nmetrics = [\"accuracy\"]\nvalidation_split = 0.2\n" + path.read_text())
    result = runapp.train(runconfig.read(path), verbose=False, say=lambda text: None)
    folder = result.output / "tensorboard"
    assert any(p.name.startswith("events.out.tfevents.") for p in folder.iterdir())
    events = accumulator(folder)
    history = result.history
    assert set(events.Tags()["scalars"]) == set(history.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                                                   "lr"}
    for tag in history.keys():
        assert scalars(events, tag) == ([0, 1, 2], [float(np.float32(v)) for v in history[tag]])


def test_bad_arguments_are_argument_errors(accumulator):
    with pytest.raises(lamina.ArgumentError, match="update_freq"):
        lamina.callback("TensorBoard", "logs", update_freq="step")
    with pytest.raises(lamina.ArgumentError, match="histograms"):
        lamina.callback("TensorBoard", "logs", histograms="yes")
    with pytest.raises(lamina.ArgumentError, match="log_dir must be a folder path"):
        lamina.callback("TensorBoard", "")
    built = lamina.get_registry().build("callback", "TensorBoard", log_dir="logs", update_freq="batch")
    assert repr(built) == "TensorBoard(log_dir='logs', update_freq='batch')"
