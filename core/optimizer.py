"""Optimizer: the protocol every optimizer plugin implements."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lamina.checks import describe
from lamina.errors import ArgumentError
from lamina.config import config_repr, constructor_config
from lamina.parameter import Parameter


class Optimizer:
    """Base class of optimizers: `step(parameters)` updates each `Parameter.value` in place.

    Subclasses implement `update(param, state)`, called once per parameter per step;
    `state` is that parameter's own dict, kept between steps (momentum buffers and the like).
    Subclasses need not call `super().__init__()`.
    """

    def step(self, parameters: Iterable[Parameter] | Mapping[str, Parameter]) -> None:
        """Apply one update to every parameter from its `.grad`."""
        if isinstance(parameters, Mapping):
            parameters = parameters.values()
        elif isinstance(parameters, Parameter):
            parameters = (parameters,)
        for param in parameters:
            if not isinstance(param, Parameter):
                raise ArgumentError(
                    f"{type(self).__name__}.step: expected lamina.Parameter objects, got "
                    f"{describe(param)}; pass model.parameters() or a list of Parameters"
                )
            self.update(param, self.state_for(param))

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, state)")

    def state_for(self, param: Parameter) -> dict[str, Any]:
        """The per-parameter state dict, created empty on first use."""
        states = self.__dict__.setdefault("_states", {})
        state = states.get(param)
        if state is None:
            state = states[param] = {}
        return state

    def __repr__(self) -> str:
        return config_repr(self, constructor_config(self))
