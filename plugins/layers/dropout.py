"""Dropout: inverted dropout, drawing its masks from lamina's seeded generator."""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case


class Dropout(lamina.Layer):
    """In training, zero each element with probability `rate` and scale the rest by 1 / (1 - rate),
    so that inference (where the layer is the identity) needs no rescaling. Any shape."""

    keeps = ("_mask",)  # what forward keeps for backward

    conformance_cases = [Case({"rate": 0.3})]

    def __init__(self, rate: float = 0.5) -> None:
        self.rate = lamina.checks.fraction(rate, "rate", "Dropout")

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.rate == 0.0:
            self._mask = None
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        keep = lamina.rng().random(x.shape, dtype=dtype) >= self.rate
        self._mask = keep * np.asarray(1.0 / (1.0 - self.rate), dtype=dtype)
        return x * self._mask

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._mask is None else grad * self._mask

    def to_onnx(self, graph, x):
        return graph.op("Identity", x)  # exported models run in inference mode


@lamina.hookimpl
def register_layers(register):
    register(Dropout)
