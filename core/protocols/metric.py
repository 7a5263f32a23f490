"""Metric: the protocol of metrics, `metric(pred, y) -> float`, a mean over the samples."""
from __future__ import annotations

import re

import numpy as np

from lamina.protocols.configurable import Configurable


class Metric(Configurable):
    """Base class of metrics: `metric(pred, y) -> float`, the mean over the batch's samples.

    Training reports a metric per epoch as the sample-weighted mean of its batch values, so a
    metric must be a mean over samples (accuracy, mae, ...). Its key in the history is `name`
    (by default the class name in snake_case), and "val_" + name for validation data.
    """

    name: str = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(pred, y)")

