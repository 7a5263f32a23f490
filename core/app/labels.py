"""A classifier's predictions as labels: the class names a model file keeps, one line per
input on the terminal (escaped: names come from files), and a CSV with a class column."""
from __future__ import annotations

import csv
import io
import reprlib

import numpy as np

import lamina
from lamina.app.console import escape
from lamina.errors import FileFormatError


def _scores(model: lamina.Model, predictions: np.ndarray) -> np.ndarray:
    """The predictions as (rows, classes) scores; logits become probabilities by a softmax."""
    scores = predictions.reshape(len(predictions), -1)
    if getattr(model.loss, "from_logits", False):
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = shifted / shifted.sum(axis=1, keepdims=True)
    return scores


def class_names(model: lamina.Model, source: str) -> list[str] | None:
    """The model's class names (its training data's, saved in its metadata), if it has them:
    a list of strings (whole numbers are taken as their text)."""
    classes = model.metadata.get("classes")
    if classes is None or classes == []:
        return None
    if not isinstance(classes, list) or not all(
        isinstance(name, str) or (isinstance(name, int) and not isinstance(name, bool)) for name in classes
    ):
        raise FileFormatError(
            f"{source}: metadata['classes']: expected a list of class names (strings), got {reprlib.repr(classes)}; "
            "the file is corrupted or forged, or its metadata was set by hand"
        )
    return [str(name) for name in classes]


def print_classes(model: lamina.Model, classes: list[str] | None, names: list[str], predictions: np.ndarray) -> None:
    """One line per input: its name, the predicted class (by name if the model knows them) and
    its score; names and classes escaped (they come from files), so a line is always three columns."""
    scores = _scores(model, predictions)
    best = scores.argmax(axis=1)
    for name, label, row in zip(names, best, scores):
        shown = classes[label] if classes is not None and label < len(classes) else str(label)
        print(f"{escape(name)}\t{escape(shown)}\t{row[label]:.3f}")


def csv_with_classes(model: lamina.Model, predictions: np.ndarray, classes: list[str]) -> bytes:
    """CSV of a classifier's outputs: a header `class,<name>,...`, then per row the predicted
    class's name and the model's output for each class."""
    outputs = predictions.reshape(len(predictions), -1)
    best = _scores(model, predictions).argmax(axis=1)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["class", *classes])
    for label, row in zip(best, outputs):
        writer.writerow([classes[label] if label < len(classes) else str(label), *(f"{v:.8g}" for v in row)])
    return text.getvalue().encode("utf-8")
