"""Losses: MSE."""
from __future__ import annotations

import numpy as np

import lamina


class MSE(lamina.Loss):
    """mean((pred - y)^2) over every element; pred and y of the same shape.

    dL/dpred = 2 (pred - y) / pred.size: the derivative of the mean that is returned.
    """

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        y = lamina.checks.as_numeric(y, "y", "MSE")
        if pred.shape != y.shape:
            raise lamina.ShapeError(
                f"MSE: pred has shape {pred.shape} but y has shape {y.shape}; they must match "
                f"exactly (broadcasting would compare the wrong pairs). {_reshape_hint(pred, y)}"
            )
        if y.dtype != pred.dtype:
            y = y.astype(pred.dtype)
        self._diff = pred - y
        return float(np.mean(np.square(self._diff)))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)


def _reshape_hint(pred: np.ndarray, y: np.ndarray) -> str:
    if pred.size == y.size:
        return f"Reshape y with y.reshape{pred.shape}."
    return "Give y one target per output (the model's last layer sets the output width)."


@lamina.hookimpl
def register_losses(register):
    register(MSE, aliases=("mean_squared_error",))
