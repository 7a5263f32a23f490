"""Dataset: the protocol of datasets, `Dataset(**options).load() -> (x_train, y_train, x_test, y_test)`."""
from __future__ import annotations

from typing import Any

import numpy as np

from lamina.errors import ArgumentError
from lamina.protocols.configurable import Configurable

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Data(tuple):
    """What `lamina.dataset(...)` returns: the tuple (x_train, y_train, x_test, y_test), plus the
    dataset's `metadata` (e.g. a text dataset's vocabulary, the class names of a folder of
    images or of a CSV's label column), which a model trained on it keeps in `model.metadata`
    and in its file. `num_classes` counts the classes a model's last layer scores."""

    metadata: dict[str, Any]

    def __new__(cls, arrays: Arrays, metadata: dict[str, Any] | None = None) -> Data:
        data = super().__new__(cls, arrays)
        data.metadata = dict(metadata or {})
        return data

    @property
    def num_classes(self) -> int:
        """How many classes: the length of `metadata["classes"]` (class names) or of
        `metadata["vocabulary"]` (a text dataset's characters), else the largest integer label
        + 1. What `"classes"` stands for in a `lamina train` config. Regression targets (floats)
        have no classes: an ArgumentError."""
        for key in ("classes", "vocabulary"):
            if isinstance(self.metadata.get(key), (list, str)):
                return len(self.metadata[key])
        targets = [np.asarray(y) for y in self[1::2]]
        if not all(y.dtype.kind in "iu" for y in targets):
            kinds = ", ".join(sorted({str(y.dtype) for y in targets}))
            raise ArgumentError(
                f"the dataset's targets are {kinds} numbers (regression), not class labels, so it has no classes; "
                "give the number of outputs itself (e.g. units = 1)"
            )
        return int(max((int(y.max()) for y in targets if y.size), default=-1)) + 1


class Dataset(Configurable):
    """Base class of datasets: the constructor takes the options, `load()` returns the arrays.

    `lamina.dataset(name, **options)` builds the registered class and calls `load()`.
    A dataset that reads a whole file a user points to also implements `arrays()`, the full
    (x, y) without a train/test split (`lamina evaluate --data PATH` uses it).
    """

    # File suffixes (".csv") this dataset reads when given `path=...`: `lamina evaluate --data
    # FILE` and `lamina predict MODEL FILE` pick the dataset by the file's suffix.
    suffixes: tuple[str, ...] = ()
    # True for a dataset that reads a folder given as `path=...`; it then implements `inputs()`,
    # which `lamina predict MODEL FOLDER` uses (with the options the model's metadata["inputs"]
    # gives: how its training data was read, e.g. the image size).
    reads_folders: bool = False

    def inputs(self) -> tuple[Any, list[str]]:
        """Every input under `path` (an array or array-like) and a name for each (its file)."""
        raise NotImplementedError(f"{type(self).__name__} does not read folders of inputs")

    def load(self) -> Arrays:
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def metadata(self) -> dict[str, Any]:
        """What a model trained on this data needs to use it later, as JSON values (a text
        dataset's vocabulary and window length); saved with the model. Nothing by default."""
        return {}

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """All of (x, y); by default the train and test parts joined. y may be None in a
        dataset built for inputs only (e.g. `npz(target=None)`, for predictions)."""
        x_train, y_train, x_test, y_test = self.load()
        return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
