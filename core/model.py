"""Model: a stack of layers, trained end to end by backpropagation."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lamina.checks import DEFAULT_DTYPE, as_floating, describe, positive_int
from lamina.errors import ArgumentError, ShapeError
from lamina.layer import Layer
from lamina.loss import Loss
from lamina.optimizer import Optimizer
from lamina.parameter import Parameter
from lamina.registry import get_registry


class Model:
    """Layers applied in order: `model(x)` predicts, `model.train(x, y, ...)` fits.

    `layers` items are Layer instances, registered names (`"Relu"`) or dicts
    (`{"type": "Linear", "units": 8}`).

    >>> model = Model([Linear(8), "Relu", {"type": "Linear", "units": 1}, "Sigmoid"])
    >>> history = model.train(x, y, optim=SGD(lr=0.6), loss="MSE", epochs=400)
    """

    def __init__(self, layers: Iterable[Layer | str | Mapping[str, Any]]) -> None:
        if isinstance(layers, (str, Layer, Mapping)) or not isinstance(layers, Iterable):
            raise ArgumentError(
                f"Model(layers={describe(layers)}): layers must be a list, e.g. "
                "Model([Linear(8), Relu(), Linear(1)])"
            )
        self.layers: list[Layer] = [_build_layer(i, item) for i, item in enumerate(layers)]
        if not self.layers:
            raise ArgumentError("Model(layers=[]): a model needs at least one layer")

    # -- inference -----------------------------------------------------------------------

    def __call__(self, x: object) -> np.ndarray:
        """Predict: run `x` through every layer (bools and ints become the model's float dtype)."""
        return self.forward(as_floating(x, "x", "Model", self._dtype()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run an array through every layer; errors name the layer and its position."""
        for i, layer in enumerate(self.layers):
            try:
                x = layer(x)
            except ShapeError as err:
                raise ShapeError(f"Model.layers[{i}] ({type(layer).__name__}): {err}") from None
            except Exception as err:
                _note(err, f"raised in the forward pass of Model.layers[{i}], {layer!r}")
                raise
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Backpropagate dL/d(output) through the layers in reverse; returns dL/d(input)."""
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            try:
                grad = layer.backward(grad)
            except Exception as err:
                _note(err, f"raised in the backward pass of Model.layers[{i}], {layer!r}")
                raise
        return grad

    # -- parameters ----------------------------------------------------------------------

    def parameters(self) -> dict[str, Parameter]:
        """Every trainable parameter, named '<layer index>.<name>' (e.g. '0.weight')."""
        return {
            f"{i}.{name}": param
            for i, layer in enumerate(self.layers)
            for name, param in layer.parameters().items()
        }

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def _dtype(self) -> np.dtype:
        for layer in self.layers:
            for param in layer.parameters().values():
                return param.value.dtype
        return DEFAULT_DTYPE

    def _set_training(self, training: bool) -> None:
        for layer in self.layers:
            layer.training = training

    # -- training ------------------------------------------------------------------------

    def train(
        self,
        x: object,
        y: object,
        optim: Optimizer | str = "SGD",
        loss: Loss | str = "MSE",
        epochs: int = 10,
        verbose: bool = True,
    ) -> list[float]:
        """Fit the model to (x, y) by full-batch gradient descent; returns the loss per epoch.

        `optim` and `loss` take instances or registered names. A progress bar over the
        epochs shows the current loss unless `verbose=False`.
        """
        optim = _resolve(optim, "optimizer", Optimizer, "optim")
        loss = _resolve(loss, "loss", Loss, "loss")
        epochs = positive_int(epochs, "epochs", "Model.train", example=100)
        x = as_floating(x, "x", "Model.train", self._dtype())
        y = loss.prepare_target(y, x.dtype)
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise ShapeError(
                f"Model.train: x has shape {x.shape} and y has shape {y.shape}; they need the "
                "same number of samples along the first axis (one row of y per row of x)"
            )

        history: list[float] = []
        params: list[Parameter] | None = None
        self._set_training(True)
        try:
            bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not verbose)
            for _ in bar:
                pred = self.forward(x)
                value = float(loss(pred, y))
                if params is None:  # layers build their parameters on the first forward pass
                    params = list(self.parameters().values())
                for param in params:
                    param.grad.fill(0)
                self.backward(loss.backward())
                optim.step(params)
                history.append(value)
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
        finally:
            self._set_training(False)
        return history

    def __repr__(self) -> str:
        return f"Model([{', '.join(repr(layer) for layer in self.layers)}])"


def _build_layer(position: int, item: object) -> Layer:
    if isinstance(item, Layer):
        return item
    if isinstance(item, str):
        return get_registry().build("layer", item)
    if isinstance(item, Mapping):
        kwargs = dict(item)
        if "type" not in kwargs:
            raise ArgumentError(
                f"Model: layers[{position}] is a dict without a 'type' key ({item!r}); "
                "name the layer, e.g. {'type': 'Linear', 'units': 8}"
            )
        return get_registry().build("layer", kwargs.pop("type"), **kwargs)
    if isinstance(item, type) and issubclass(item, Layer):
        raise ArgumentError(
            f"Model: layers[{position}] is the class {item.__name__}, not an instance; "
            f"write {item.__name__}(...) or the name {item.__name__!r}"
        )
    raise ArgumentError(
        f"Model: layers[{position}] is {describe(item)}; expected a Layer instance, a "
        "registered name such as 'Relu', or a dict such as {'type': 'Linear', 'units': 8}"
    )


def _resolve(value: object, kind: str, base: type, argument: str) -> Any:
    if isinstance(value, base):
        return value
    if isinstance(value, str):
        return get_registry().build(kind, value)
    if isinstance(value, type) and issubclass(value, base):
        hint = f"write {value.__name__}(...) or the name {value.__name__!r}"
    else:
        hint = f"pass a lamina.{base.__name__} instance or a registered {kind} name"
    raise ArgumentError(f"Model.train({argument}={describe(value)}): {hint}")


def _note(err: BaseException, note: str) -> None:
    if hasattr(err, "add_note"):  # Python >= 3.11
        err.add_note(note)
