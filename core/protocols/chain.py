"""Chain: layers applied in order, the one implementation that Model and the layers made of
layers (Sequential, Residual, Parallel's branches) share.

An error raised inside says where: a ShapeError (or, going backward, any lamina error) gets
the layer's place in front of its message, `Model.layers[2] (Residual): ...`, and nests into a
path (`Model.layers[0] (Sequential): Sequential.layers[1] (Residual): ...`); any other
exception keeps its type and message and gets a note naming the layer.

One layer instance may sit at several places (shared weights): after each of its calls the
chain saves what it kept for backward on the layer's stack of calls, and backward, going in
reverse, restores each before that place's backward, so the gradients of every place add up.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lamina.errors import LaminaError, ShapeError
from lamina.protocols.layer import Layer


class Chain:
    """`layers` applied in order; `name` is what messages call the list ("Model.layers").

    >>> Chain([Linear(8), Relu()], "Block.layers").forward(x)
    """

    def __init__(self, layers: Sequence[Layer], name: str) -> None:
        self.layers = layers
        self.name = name
        self.shared = shared_places(layers)

    def place(self, index: int) -> str:
        """'Model.layers[2] (Residual)': the layer at `index`, as messages name it."""
        return f"{self.name}[{index}] ({type(self.layers[index]).__name__})"

    def forward(self, x: np.ndarray, stop: int | None = None) -> np.ndarray:
        """Run `x` through every layer (or the first `stop`)."""
        shared = self.shared
        for i in shared:  # a new forward: what earlier ones kept for a backward that never came goes
            for saved in vars(self.layers[i]).pop("_calls", ()):
                saved.close()
        for i, layer in enumerate(self.layers if stop is None else self.layers[:stop]):
            try:
                x = layer(x)
            except ShapeError as err:
                raise ShapeError(f"{self.place(i)}: {err}") from None
            except Exception as err:
                err.add_note(f"raised in the forward pass of {self.name}[{i}], {layer!r}")
                raise
            if shared and i in shared:
                layer._push_call()
        return x

    def backward(self, grad: np.ndarray, from_layer: int | None = None) -> np.ndarray | None:
        """Backpropagate dL/d(output of layer `from_layer`, default the last) down to the input;
        returns dL/dx, or None when the first layer skips it (integer input, or not needed)."""
        result: np.ndarray | None = grad
        start = len(self.layers) - 1 if from_layer is None else from_layer
        for i in range(len(self.layers) - 1, start, -1):  # places whose backward someone else did (a fused loss)
            if i in self.shared:
                self.layers[i]._pop_call()
        for i in range(start, -1, -1):
            if result is None:
                raise ShapeError(
                    f"{self.place(i + 1)} returned no input gradient, but {self.place(i)} before it needs one; "
                    f"a layer that takes integer input must come first in {self.name}"
                )
            try:
                if i in self.shared:
                    self.layers[i]._pop_call()
                result = self.layers[i].backward(result)
            except LaminaError as err:  # the place inside this chain goes in front; the type stays
                raise placed(err, self.place(i)) from None
            except Exception as err:
                err.add_note(f"raised in the backward pass of {self.name}[{i}], {self.layers[i]!r}")
                raise
        return result


def shared_places(layers: Sequence[Layer]) -> frozenset[int]:
    """The places whose layer (or a layer inside it) is also at another place."""
    if len(layers) < 2:
        return frozenset()
    owners: dict[int, set[int]] = {}
    for i, layer in enumerate(layers):
        for inner in layer.walk():
            owners.setdefault(id(inner), set()).add(i)
    return frozenset(i for places in owners.values() if len(places) > 1 for i in places)


def placed(err: LaminaError, place: str) -> LaminaError:
    """`err` again, its message prefixed with `place`; a lamina error whose class takes other
    arguments than a message keeps its message and gets the place as a note."""
    try:
        return type(err)(f"{place}: {err}")
    except Exception:
        err.add_note(f"raised in the backward pass of {place}")
        return err
