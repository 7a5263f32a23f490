"""Optimizer: the protocol every optimizer plugin implements."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from lamina.checks import describe
from lamina.errors import ArgumentError
from lamina.parameter import Parameter
from lamina.protocols.configurable import Configurable
from lamina.protocols.schedule import Schedule


class Optimizer(Configurable):
    """Base class of optimizers: `step(parameters)` updates each `Parameter.value` in place.

    Subclasses implement `update(param, state)`, called once per parameter per step;
    `state` is that parameter's own dict, kept between steps (momentum buffers and the like):
    `self.state[param]`, as in torch.optim, where `self.state` maps each Parameter to its dict.
    `self.current_lr` is the step's learning rate (from `self.lr`, a number or a Schedule),
    and `self.iterations` counts the steps taken. Subclasses need not call `super().__init__()`.
    A frozen parameter (`trainable` False) is skipped: `update` is never called for it, so it
    gets no state and no change (weight decay included).
    """

    iterations: int = 0
    current_lr: float | None = None
    state: dict[Parameter, dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Optimizer:
        # Made here, not in __init__, so that subclasses need not call super().__init__().
        optimizer = super().__new__(cls)
        optimizer.state = {}
        return optimizer

    def step(self, parameters: Iterable[Parameter] | Mapping[str, Parameter]) -> None:
        """Apply one update to every trainable parameter from its `.grad` (frozen ones are left alone)."""
        if isinstance(parameters, Mapping):
            parameters = list(parameters.values())
        elif isinstance(parameters, Parameter):
            parameters = (parameters,)
        elif not isinstance(parameters, (list, tuple)):
            parameters = list(parameters)
        for param in parameters:
            if not isinstance(param, Parameter):
                raise ArgumentError(
                    f"{type(self).__name__}.step: expected lamina.Parameter objects, got "
                    f"{describe(param)}; pass model.parameters() or a list of Parameters"
                )
        self.current_lr = self.learning_rate()
        for param in parameters:
            if param.trainable:
                self.update(param, self.state_for(param))
        self.iterations += 1

    def learning_rate(self) -> float | None:
        """The learning rate for the next step: `lr`, or its schedule's value at this step."""
        lr = getattr(self, "lr", None)
        if not isinstance(lr, Schedule):
            return lr
        value = lr(self.iterations)
        # `not value < 0` is `value >= 0` for a finite number; numbers.Real types only < and <=
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and not value < 0):
            raise ArgumentError(
                f"{type(self).__name__}: its schedule {lr!r} returned lr={value!r} at step "
                f"{self.iterations}; a schedule must return a finite number >= 0. Check the "
                "schedule's arguments (e.g. a decay rate above 1 or a negative minimum)."
            )
        return float(value)

    def step_lr(self) -> float:
        """This step's learning rate, inside `update` (an ArgumentError outside `step`)."""
        if self.current_lr is None:
            raise ArgumentError(
                f"{type(self).__name__}: there is no learning rate outside a step; call step(parameters), "
                "which calls update(param, state)"
            )
        return self.current_lr

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, state)")

    def state_for(self, param: Parameter) -> dict[str, Any]:
        """`self.state[param]`, created empty on first use."""
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {}
        return state

    def rekey_state(self, mapping: Mapping[Parameter, Parameter]) -> None:
        """Move per-parameter state from one set of Parameter objects to another (old -> new),
        as when training resumes into a model rebuilt from a checkpoint."""
        self.state = {mapping[param]: state for param, state in self.state.items() if param in mapping}
