"""Optimizers: SGD."""
from __future__ import annotations

from typing import Any

import lamina


class SGD(lamina.Optimizer):
    """Stochastic gradient descent: value -= lr * grad, in place."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lamina.checks.positive_number(lr, "lr", "SGD")

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        param.value -= self.lr * param.grad


@lamina.hookimpl
def register_optimizers(register):
    register(SGD)
