"""Loss: the protocol every loss plugin implements."""
from __future__ import annotations

import numpy as np

from lamina.checks import as_numeric
from lamina.config import Configurable


class Loss(Configurable):
    """Base class of losses: `loss(pred, y) -> float`, then `loss.backward() -> dL/dpred`.

    `backward` returns the gradient of exactly the value the last call returned, with the
    shape and dtype of `pred`. Subclasses implement `forward(pred, y)` and `backward()`.
    """

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        return self.forward(pred, y)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(pred, y)")

    def backward(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def fuses_with(self, layer: object) -> bool:
        """True when `fused_backward` can replace this loss's and `layer`'s backward together.

        The model asks this of its last layer; e.g. CrossEntropy after Softmax returns the
        gradient with respect to the softmax's input, (p - y) / n, in one stable step.
        """
        return False

    def fused_backward(self) -> np.ndarray:
        """dL/d(input of the fused layer); only called when `fuses_with` returned True."""
        raise NotImplementedError(f"{type(self).__name__} fuses with no layer")

    def prepare_target(self, y: object, dtype: np.dtype) -> np.ndarray:
        """Convert targets once before training (not per step); by default to `dtype`.

        Losses that take integer labels override this to keep them as integers.
        """
        return as_numeric(y, "y", type(self).__name__).astype(dtype, copy=False)

