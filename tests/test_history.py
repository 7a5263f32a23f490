"""History: one value per epoch for every key, NaN where a key was not logged; resumed and
written (metrics.json's strict JSON, curves.png) alike."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import lamina
from lamina.app.plotting import plot_curves
from lamina.training.history import History


def nan_at(values: list[float]) -> list[int]:
    return [i for i, v in enumerate(values) if math.isnan(v)]


class Sometimes(lamina.Callback):
    """Logs "late" from epoch `start` on, and "odd" only in odd epochs."""

    def __init__(self, start: int = 3) -> None:
        self.start = start

    def on_epoch_end(self, epoch, logs):
        if epoch >= self.start:
            logs["late"] = float(epoch)
        if epoch % 2:
            logs["odd"] = float(epoch)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3))
    return x, x @ rng.normal(size=(3, 1))


def test_a_key_logged_in_some_epochs_has_nan_in_the_others():
    x, y = data()
    lamina.seed(0)
    history = lamina.Model([lamina.layer("Linear", 1)]).train(x, y, epochs=6, callbacks=[Sometimes(3)], verbose=False)
    assert len(history) == 6
    for key in ("loss", "late", "odd"):
        assert len(history[key]) == 6
    assert nan_at(history["late"]) == [0, 1, 2] and history["late"][3:] == [3.0, 4.0, 5.0]
    assert nan_at(history["odd"]) == [0, 2, 4] and history["odd"][1::2] == [1.0, 3.0, 5.0]
    assert nan_at(history["loss"]) == []


def test_record_pads_both_ways():
    history = History()
    history.record(0, {"loss": 1.0, "first": 5.0})
    history.record(1, {"loss": 0.5, "second": 7.0})
    assert history["loss"] == [1.0, 0.5]
    assert nan_at(history["first"]) == [1] and nan_at(history["second"]) == [0]


def test_from_dict_pads_a_short_list_at_its_end_and_takes_the_epoch_count():
    history = History.from_dict({"loss": [3.0, 2.0, 1.0], "gone": [9.0]})
    assert history.epoch == [0, 1, 2] and nan_at(history["gone"]) == [1, 2]
    given = History.from_dict({"loss": [3.0, 2.0]}, epochs=4)
    assert len(given) == 4 and nan_at(given["loss"]) == [2, 3]
    assert History.from_dict({"loss": [3.0, 2.0, 1.0]}, epochs=2)["loss"] == [3.0, 2.0]


def test_histories_with_nan_in_the_same_epochs_are_equal():
    a, b = History.from_dict({"k": [1.0, float("nan")]}), History.from_dict({"k": [1.0, float("nan")]})
    assert a == b and a != History.from_dict({"k": [1.0, 2.0]}) and a != History.from_dict({"j": [1.0, float("nan")]})


@pytest.mark.parametrize("stop", [2, 3, 4])
def test_a_resumed_run_has_the_same_padded_history_as_an_uninterrupted_one(tmp_path, stop):
    x, y = data()
    options = dict(optim="Adam", batch_size=4, verbose=False)
    lamina.seed(0)
    whole = lamina.Model([lamina.layer("Linear", 1)]).train(x, y, epochs=6, callbacks=[Sometimes(3)], **options)
    path = tmp_path / "checkpoint.npz"
    lamina.seed(0)
    first = lamina.Model([lamina.layer("Linear", 1)])
    first.train(x, y, epochs=stop, callbacks=[Sometimes(3), lamina.callback("Checkpoint", path)], **options)
    lamina.seed(0)
    second = lamina.Model([lamina.layer("Linear", 1)])
    resumed = second.train(x, y, epochs=6, callbacks=[Sometimes(3)], resume_from=path, verbose=False, batch_size=4)
    assert resumed == whole and all(len(v) == 6 for v in resumed.values())
    assert resumed.epoch == list(range(6))


def test_to_json_writes_nan_as_null_for_strict_json():
    history = History.from_dict({"loss": [1.0, 0.5], "late": [float("nan"), 2.0], "big": [float("inf"), 1.0]})
    text = json.dumps(history.to_json(), allow_nan=False)
    assert json.loads(text) == {"loss": [1.0, 0.5], "late": [None, 2.0], "big": [None, 1.0]}


def test_curves_are_drawn_for_keys_with_gaps_and_lone_validation_keys(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    history = History()
    for epoch in range(4):
        logs = {"loss": 1.0 / (epoch + 1), "val_custom": 0.5}
        if epoch == 2:
            logs["rare"] = 3.0  # a lone point between gaps
        history.record(epoch, logs)
    history.record(4, {"loss": 0.1})
    path = plot_curves(history, tmp_path / "curves.png")
    with Image.open(path) as image:
        assert image.size[0] >= 3 * 400  # three panels side by side: loss, val_custom, rare
