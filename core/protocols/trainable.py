"""Trainable: what the training loop, model files and ONNX export use of a model.

`lamina.Model` is the one class that has it; it is the front door that imports training,
files and export, and they see it only through this protocol (so that none of them imports
lamina.model, and the imports among them run one way).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from lamina.parameter import Parameter
from lamina.protocols.layer import Layer
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.training.history import History


class Trainable(Protocol):
    """Layers applied in order, with the state that training leaves on them."""

    # What export reads (and saving, and training): the layers, the input they were built on,
    # and inference mode under the lock that makes calls from several threads take turns.
    @property
    def layers(self) -> Sequence[Layer]: ...
    @property
    def input_shape(self) -> tuple[int, ...] | None: ...
    @property
    def input_dtype(self) -> np.dtype | None: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def lock(self) -> AbstractContextManager[Any]: ...
    def inference(self) -> AbstractContextManager[None]: ...
    def release(self) -> None: ...

    # What saving reads besides: the arrays, and what training chose and the user attached.
    def parameters(self) -> dict[str, Parameter]: ...
    def buffers(self) -> dict[str, np.ndarray]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...

    # What training sets, for callbacks, saving and the next evaluate to read.
    optimizer: Optimizer | None
    loss: Loss | None
    metrics: list[Metric]
    history: History | None
    stop_training: bool
    saved_generator: dict[str, Any] | None  # a loaded file's generator state, until training restores it

    # What training calls.
    def forward(self, x: np.ndarray, stop: int | None = None) -> np.ndarray: ...
    def backward(self, grad: np.ndarray, from_layer: int | None = None) -> np.ndarray | None: ...
    def build(self, x: np.ndarray) -> None: ...
    def zero_grad(self) -> None: ...
    def set_training(self, training: bool) -> None: ...
    def prepare_input(self, x: object, owner: str) -> np.ndarray: ...

