"""Dataset: the protocol of datasets, `Dataset(**options).load() -> (x_train, y_train, x_test, y_test)`."""
from __future__ import annotations

from typing import Any

import numpy as np

from lamina.config import Configurable

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Data(tuple):
    """What `lamina.dataset(...)` returns: the tuple (x_train, y_train, x_test, y_test), plus the
    dataset's `metadata` (e.g. a text dataset's vocabulary), which a model trained on it keeps
    in `model.metadata` and in its file."""

    metadata: dict[str, Any]

    def __new__(cls, arrays: Arrays, metadata: dict[str, Any] | None = None) -> Data:
        data = super().__new__(cls, arrays)
        data.metadata = dict(metadata or {})
        return data


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
