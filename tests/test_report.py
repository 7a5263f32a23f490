"""The evaluation report: per-class precision, recall, F1 and support with class names, and the
confusion matrix; in evaluate's result, `lamina evaluate --report` and `lamina train`'s report.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import config_file, reference, run_python

import lamina
from lamina.app import run

skm = reference("sklearn.metrics", "pip install scikit-learn")


def evaluate_report(model, x, y, **options):
    return model.evaluate(x, y, report=True, **options)


def trained(classes=("cat", "dog", "owl")):
    x, y, *_ = lamina.dataset("spirals", n_samples=120)
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 16), "Relu", lamina.layer("Linear", 3)])
    model.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=3, batch_size=16, verbose=False)
    if classes is not None:
        model.metadata["classes"] = list(classes)
    return model, x, y


@pytest.mark.parametrize("batch_size", [7, None])
def test_the_report_equals_sklearns_classification_report_with_the_class_names(batch_size):
    model, x, y = trained()
    result = evaluate_report(model, x, y, batch_size=batch_size)
    report = result["report"]
    expected = skm.classification_report(y, model.predict(x).argmax(1), output_dict=True, zero_division=0)
    assert [row["class"] for row in report["classes"]] == ["cat", "dog", "owl"]
    for i, row in enumerate(report["classes"]):
        theirs = expected[str(i)]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(
            (theirs["precision"], theirs["recall"], theirs["f1-score"]), rel=1e-12)
        assert row["support"] == theirs["support"]
    assert report["accuracy"] == pytest.approx(expected["accuracy"], rel=1e-12)
    assert report["macro"]["f1"] == pytest.approx(expected["macro avg"]["f1-score"], rel=1e-12)
    assert report["weighted"]["recall"] == pytest.approx(expected["weighted avg"]["recall"], rel=1e-12)
    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix(y, model.predict(x).argmax(1)))
    assert "loss" in result


def test_without_class_names_the_classes_are_numbered():
    model, x, y = trained(classes=None)
    assert [row["class"] for row in evaluate_report(model, x, y)["report"]["classes"]] == ["0", "1", "2"]


def test_the_report_leaves_a_chosen_confusion_matrix_in_the_result():
    model, x, y = trained()
    result = evaluate_report(model, x, y, metrics=["confusion_matrix"])
    np.testing.assert_array_equal(result["confusion_matrix"], result["report"]["confusion_matrix"])


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report-run")
    config = config_file(tmp_path, epochs=2)
    result = run_python("-m", "lamina", "train", str(config))
    assert result.returncode == 0, result.stderr
    return tmp_path / "out"


def test_lamina_train_writes_report_json_for_a_classifier(run_folder):
    report = json.loads((run_folder / "report.json").read_text())
    assert len(report["classes"]) == 3
    assert sum(row["support"] for row in report["classes"]) == int(np.sum(report["confusion_matrix"]))
    assert set(report["classes"][0]) == {"class", "precision", "recall", "f1", "support"}


def test_the_report_is_for_classifiers_only():
    """lamina train's rule: a classification loss (CrossEntropy; BinaryCrossEntropy with one output)."""
    model, x, y = trained()
    assert run.classifier_report(model, lamina.loss("CrossEntropy", from_logits=True), x, y)["classes"]
    assert run.classifier_report(model, lamina.loss("MSE"), x, np.eye(3)[y]) is None
    assert run.classifier_report(model, lamina.loss("BinaryCrossEntropy"), x, np.eye(3)[y]) is None  # multi-label
    binary = lamina.Model([lamina.layer("Linear", 1)])
    binary.train(x, (y == 1).astype(float)[:, None], loss=lamina.loss("BinaryCrossEntropy", from_logits=True), epochs=1,
                 verbose=False)
    report = run.classifier_report(binary, lamina.loss("BinaryCrossEntropy", from_logits=True), x,
                                   (y == 1).astype(float)[:, None])
    decided = (binary.predict(x)[:, 0] > 0).astype(int)  # from logits: the threshold is 0
    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix((y == 1).astype(int), decided))


def test_lamina_evaluate_report_prints_a_table_and_json(run_folder):
    model = str(run_folder / "model.npz")
    common = ["-m", "lamina", "evaluate", model, "--data", "spirals", "--data-option", "n_samples=90", "--report"]
    text = run_python(*common)
    assert text.returncode == 0, text.stderr
    assert "precision      recall          f1     support" in text.stdout.splitlines()[2]
    assert "macro avg" in text.stdout and "confusion_matrix (rows: true class" in text.stdout
    printed = run_python(*common, "--json")
    assert printed.returncode == 0, printed.stderr
    result = json.loads(printed.stdout)
    assert len(result["report"]["classes"]) == 3 and len(result["report"]["confusion_matrix"]) == 3
