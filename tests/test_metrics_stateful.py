"""Metrics over the whole set: the built-ins equal scikit-learn's at any batch size, in train's
history and in evaluate; stateful third-party metrics; the default accumulator of batch means."""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
from conftest import config_file, make_distribution, reference, run_python

import lamina
from lamina.training.loop import metric_results

skm = reference("sklearn.metrics", "pip install scikit-learn")

N, C = 150, 4


def data(seed: int = 0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(N, 5))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0.5)
    return x, y


def reference(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> object:
    """scikit-learn's value of each built-in metric on probabilities p (N, C)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = p.argmax(axis=1)
        table = {
            "f1": lambda: skm.f1_score(y, labels, average="macro", sample_weight=w),
            "precision_micro": lambda: skm.precision_score(y, labels, average="micro", sample_weight=w),
            "recall_weighted": lambda: skm.recall_score(y, labels, average="weighted", sample_weight=w),
            "top_k_accuracy": lambda: skm.top_k_accuracy_score(y, p, k=2, labels=range(C), sample_weight=w),
            "auc": lambda: skm.roc_auc_score(y, p, multi_class="ovr", sample_weight=w),
            "auc_pr": lambda: skm.average_precision_score(y, p, sample_weight=w),
            "confusion_matrix": lambda: skm.confusion_matrix(y, labels, labels=range(C), sample_weight=w),
        }
        return table[name]()


def metrics():
    return ["f1", lamina.metric("precision", average="micro", name="precision_micro"),
            lamina.metric("recall", average="weighted", name="recall_weighted"),
            lamina.metric("top_k_accuracy", k=2), "auc", lamina.metric("auc", curve="pr", name="auc_pr"),
            "confusion_matrix"]


def model():
    lamina.seed(1)
    return lamina.Model([lamina.layer("Linear", C), lamina.layer("Softmax")])


@pytest.mark.parametrize("batch_size", [7, 64, None])
def test_builtin_metrics_equal_sklearn_in_evaluate_at_every_batch_size(batch_size):
    x, y = data()
    m = model()
    m.train(x, y, loss="CrossEntropy", epochs=2, batch_size=16, verbose=False)
    result = m.evaluate(x, y, metrics=metrics(), batch_size=batch_size)
    p = m.predict(x)
    for name in ("f1", "precision_micro", "recall_weighted", "top_k_accuracy", "auc", "auc_pr"):
        assert result[name] == pytest.approx(reference(name, y, p), rel=1e-12, abs=1e-15), name
    np.testing.assert_array_equal(result["confusion_matrix"], reference("confusion_matrix", y, p))


@pytest.mark.parametrize("batch_size", [7, 64, None])
def test_train_history_holds_each_epochs_metrics_over_its_rows(batch_size):
    """Without shuffling or updates (the layer frozen), each epoch's training metric is the metric
    of the set's predictions, and the validation one that of the validation rows."""
    x, y = data()
    m = model()
    m.layers[0].trainable = False
    history = m.train(x[:100], y[:100], loss="CrossEntropy", epochs=1,
                      batch_size=batch_size, shuffle=False, metrics=metrics(), verbose=False,
                      validation_data=(x[100:], y[100:]))
    assert "confusion_matrix" not in history and "val_confusion_matrix" not in history  # arrays: not curves
    p_train, p_val = m.predict(x[:100]), m.predict(x[100:])
    for name in ("f1", "precision_micro", "recall_weighted", "top_k_accuracy", "auc", "auc_pr"):
        assert history[name][0] == pytest.approx(reference(name, y[:100], p_train), rel=1e-12), name
        assert history[f"val_{name}"][0] == pytest.approx(reference(name, y[100:], p_val), rel=1e-12), name


def feed(metric: lamina.Metric, pred, y, w, batch: int) -> object:
    metric.reset()
    for i in range(0, len(pred), batch):
        metric.update(pred[i : i + batch], y[i : i + batch], None if w is None else w[i : i + batch])
    return metric.result()


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("weighted", [False, True])
def test_precision_recall_f1_equal_sklearn_with_sample_weights_and_one_hot_logits(average, weighted):
    g = np.random.default_rng(2)
    logits = g.normal(size=(90, 3))
    y = g.integers(0, 3, 90)
    w = g.random(90) if weighted else None
    one_hot = np.eye(3)[y]
    for name, ref in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ref(y, logits.argmax(1), average=average, sample_weight=w)
        for batch in (7, 64, 90):
            got = feed(lamina.metric(name, average=average), logits, one_hot, w, batch)
            assert got == pytest.approx(expected, rel=1e-12), (name, batch)


def test_binary_metrics_equal_sklearn_on_one_output_with_a_threshold():
    g = np.random.default_rng(3)
    logits = g.normal(size=(80, 1))
    y = (g.random(80) < 0.4).astype(float).reshape(-1, 1)
    w = g.random(80)
    decided = (logits[:, 0] > 0).astype(int)
    for name, ref in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        got = feed(lamina.metric(name, average="binary", threshold=0.0), logits, y, w, 7)
        assert got == pytest.approx(ref(y[:, 0], decided, sample_weight=w), rel=1e-12)
    assert feed(lamina.metric("auc"), logits, y, w, 7) == pytest.approx(skm.roc_auc_score(y[:, 0], logits[:, 0],
                                                                                          sample_weight=w), rel=1e-12)
    assert feed(lamina.metric("auc", curve="pr"), logits, y, None, 7) == skm.average_precision_score(y[:, 0],
                                                                                                    logits[:, 0])
    matrix = feed(lamina.metric("confusion_matrix", threshold=0.0), logits, y, None, 64)
    np.testing.assert_array_equal(matrix, skm.confusion_matrix(y[:, 0], decided))


def test_multiclass_auc_of_logits_is_the_auc_of_their_softmax():
    g = np.random.default_rng(4)
    logits = g.normal(size=(60, 3)) * 3
    y = np.arange(60) % 3
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert feed(lamina.metric("auc"), logits, y, None, 7) == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr"), rel=1e-12)


def test_bad_arguments_name_the_metric_and_the_fix():
    with pytest.raises(lamina.ArgumentError, match="average must be one of"):
        lamina.metric("f1", average="samples")
    with pytest.raises(lamina.ArgumentError, match="k must be a positive int"):
        lamina.metric("top_k_accuracy", k=0)
    with pytest.raises(lamina.ArgumentError, match="curve must be 'roc' or 'pr'"):
        lamina.metric("auc", curve="det")
    with pytest.raises(lamina.ArgumentError, match="name must be a non-empty string"):
        lamina.metric("accuracy", name="val_acc")
    with pytest.raises(lamina.ArgumentError, match="binary needs one output"):
        feed(lamina.metric("f1", average="binary"), np.ones((4, 3)), np.zeros(4, int), None, 4)


def test_name_sets_the_key_and_is_kept_in_the_config():
    x, y = data()
    m = model()
    history = m.train(x, y, loss="CrossEntropy", epochs=1, verbose=False,
                      metrics=[lamina.metric("f1", average="micro", name="f1_micro"), "accuracy"])
    assert {"f1_micro", "accuracy"} <= set(history.keys())
    assert lamina.metric("f1", name="f1_micro").get_config() == {"average": "macro", "threshold": 0.5,
                                                               "name": "f1_micro"}
    assert repr(lamina.metric("accuracy")) == "Accuracy()"  # the default name is not repeated


def test_the_default_accumulator_weights_batch_means_by_rows_and_sample_weights():
    pred = np.arange(10.0).reshape(-1, 1)
    y = np.zeros((10, 1))
    w = np.linspace(0.0, 2.0, 10)
    assert feed(lamina.metric("mae"), pred, y, None, 3) == pytest.approx(4.5)
    assert feed(lamina.metric("mae"), pred, y, w, 3) == pytest.approx(np.average(pred[:, 0], weights=w))


# -- a third-party stateful metric, written as the docs show -----------------------------------------

MACRO_F1 = '''
import numpy as np
import lamina


class MacroF1(lamina.Metric):
    """Macro-F1 over the whole set, from a confusion matrix kept across batches."""

    name = "macro_f1"

    def reset(self):
        self.counts = None  # (classes, classes), sized by the first batch

    def update(self, pred, y, sample_weight=None):
        if self.counts is None:
            self.counts = np.zeros((pred.shape[1], pred.shape[1]))
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        np.add.at(self.counts, (np.asarray(y, dtype=int).reshape(-1), pred.argmax(axis=1)), weights)

    def result(self):
        tp = np.diag(self.counts)
        denominator = self.counts.sum(axis=0) + self.counts.sum(axis=1)
        f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
        return float(f1[denominator > 0].mean())

    def state(self):  # summed over the processes of an MPI run
        return {"counts": self.counts}

    def set_state(self, state):
        self.counts = state["counts"]


class BatchMacroF1(lamina.Metric):
    """The same formula as a batch mean: the issue's case, wrong at small batches."""

    name = "batch_macro_f1"

    def __call__(self, pred, y):
        metric = MacroF1()
        metric.reset()
        metric.update(pred, y)
        return metric.result()


@lamina.hookimpl
def register_metrics(register):
    register(MacroF1)
    register(BatchMacroF1)
'''


@pytest.fixture
def registered(site, monkeypatch):
    make_distribution(site, "lamina-macro-f1", "0.1", {"lamina_macro_f1": MACRO_F1})
    registry = lamina.Registry()  # a fresh one finds the new distribution
    monkeypatch.setattr(sys.modules["lamina.registry"], "_default", registry)
    return registry


def test_a_stateful_plugin_metric_gives_the_same_at_every_batch_size_unlike_a_batch_mean(registered):
    x, y = data()
    m = model()
    m.train(x, y, loss="CrossEntropy", epochs=2, batch_size=16, verbose=False)
    expected = skm.f1_score(y, m.predict(x).argmax(1), average="macro")
    whole = m.evaluate(x, y, metrics=["MacroF1", "BatchMacroF1"])
    assert whole["macro_f1"] == pytest.approx(expected, rel=1e-12)
    assert whole["batch_macro_f1"] == pytest.approx(expected, rel=1e-12)  # one batch: the same
    for batch_size in (7, 16, 64):
        scores = m.evaluate(x, y, metrics=["MacroF1", "BatchMacroF1"], batch_size=batch_size)
        assert scores["macro_f1"] == pytest.approx(expected, rel=1e-12)
    assert m.evaluate(x, y, metrics=["BatchMacroF1"], batch_size=7)["batch_macro_f1"] != pytest.approx(expected)
    m.layers[0].trainable = False
    history = m.train(x, y, loss="CrossEntropy", epochs=1, batch_size=7,
                      metrics=["MacroF1"], verbose=False, validation_data=(x, y))
    assert history["macro_f1"][0] == pytest.approx(expected, rel=1e-12)
    assert history["val_macro_f1"][0] == pytest.approx(expected, rel=1e-12)


def test_lamina_train_records_a_plugin_metric_and_the_builtins(tmp_path):
    site = make_distribution(tmp_path / "site", "lamina-macro-f1", "0.1", {"lamina_macro_f1": MACRO_F1})
    config = config_file(tmp_path, epochs=2)
    text = config.read_text().replace("[dataset]", 'metrics = ["MacroF1", "f1", "confusion_matrix"]\n[dataset]', 1)
    config.write_text(text)
    result = run_python("-m", "lamina", "train", str(config), pythonpath=site)
    assert result.returncode == 0, result.stderr
    out = next(p.parent for p in tmp_path.rglob("metrics.json"))
    written = json.loads((out / "metrics.json").read_text())
    assert len(written["history"]["macro_f1"]) == 2 and "confusion_matrix" not in written["history"]
    matrix = np.array(written["test"]["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() > 0
    assert written["test"]["macro_f1"] == pytest.approx(written["test"]["f1"], rel=1e-12)


def test_metric_results_of_one_process_need_no_state():
    metric = lamina.metric("f1")
    metric.reset()
    metric.update(np.eye(3), np.arange(3))
    assert metric_results([metric], lamina.strategy("local")) == {"f1": 1.0}
