"""Optimizers with torch.optim's update rules, argument names and defaults (SGD's lr aside).

Each updates `param.value` in place; `self.current_lr` is the step's learning rate, from a
number or a schedule. Arrays in the state keep the parameter's dtype.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import lamina
from lamina.case import Case
from lamina.checks import fraction, learning_rate, non_negative_number, numbers, positive_number


def _betas(betas: object, owner: str) -> tuple[float, float]:
    first, second = numbers(betas, "betas", owner, count=2, each=fraction)
    return first, second


def _with_weight_decay(param: lamina.Parameter, weight_decay: float) -> np.ndarray:
    """The gradient plus L2 weight decay (a new array, so .grad itself is left as computed)."""
    return param.grad + weight_decay * param.value if weight_decay else param.grad


class SGD(lamina.Optimizer):
    """Gradient descent with optional momentum (heavy-ball or Nesterov) and weight decay.

        g = grad + weight_decay * w
        b = g on the first step, else momentum * b + (1 - dampening) * g
        w -= lr * (g + momentum * b if nesterov else b)        (w -= lr * g without momentum)
    """

    conformance_cases = [Case(), Case({"lr": 0.05, "momentum": 0.9, "nesterov": True}),
                         Case({"lr": 0.05, "weight_decay": 0.1})]

    def __init__(
        self,
        lr: float | lamina.Schedule = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.lr = learning_rate(lr, "SGD")
        self.momentum = non_negative_number(momentum, "momentum", "SGD", example=0.9)
        self.dampening = non_negative_number(dampening, "dampening", "SGD")
        self.nesterov = bool(nesterov)
        self.weight_decay = non_negative_number(weight_decay, "weight_decay", "SGD", example=1e-4)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise lamina.ArgumentError(
                f"SGD(nesterov=True, momentum={momentum!r}, dampening={dampening!r}): Nesterov "
                "momentum needs momentum > 0 and dampening = 0"
            )

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        g = _with_weight_decay(param, self.weight_decay)
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        param.value -= self.current_lr * g


class Adam(lamina.Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient as torch.optim.Adam:

        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(
        self,
        lr: float | lamina.Schedule = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        owner = type(self).__name__
        self.lr = learning_rate(lr, owner, example=0.001)
        self.betas = _betas(betas, owner)
        self.eps = positive_number(eps, "eps", owner, example=1e-8)
        self.weight_decay = non_negative_number(weight_decay, "weight_decay", owner, example=0.01)

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        self.adam_step(param, state, _with_weight_decay(param, self.weight_decay))

    def adam_step(self, param: lamina.Parameter, state: dict[str, Any], g: np.ndarray) -> None:
        """The Adam update of `param` from the gradient `g`, with its moments in `state`."""
        beta1, beta2 = self.betas
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param.value), exp_avg_sq=np.zeros_like(param.value))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - beta1) * (g - m)  # torch's lerp form of beta1 m + (1 - beta1) g
        v *= beta2
        v += (1.0 - beta2) * g * g
        step_size = self.current_lr / (1.0 - beta1**t)
        denom = np.sqrt(v)
        denom /= np.sqrt(1.0 - beta2**t)
        denom += self.eps
        param.value -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w *= 1 - lr * weight_decay,
    then the Adam step on the plain gradient, as torch.optim.AdamW."""

    def __init__(
        self,
        lr: float | lamina.Schedule = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay)

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        if self.weight_decay:  # decoupled: the weights shrink, the gradient stays as computed
            param.value *= 1.0 - self.step_lr() * self.weight_decay
        self.adam_step(param, state, param.grad)


class RMSProp(lamina.Optimizer):
    """RMSProp as torch.optim.RMSprop:

        v = alpha v + (1 - alpha) g^2;  d = sqrt(v) + eps   (sqrt(v - mean_g^2) when centered)
        w -= lr * g / d, or with momentum: b = momentum b + g / d; w -= lr * b
    """

    def __init__(
        self,
        lr: float | lamina.Schedule = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        self.lr = learning_rate(lr, "RMSProp")
        self.alpha = fraction(alpha, "alpha", "RMSProp")
        self.eps = positive_number(eps, "eps", "RMSProp", example=1e-8)
        self.weight_decay = non_negative_number(weight_decay, "weight_decay", "RMSProp")
        self.momentum = non_negative_number(momentum, "momentum", "RMSProp", example=0.9)
        self.centered = bool(centered)

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        g = _with_weight_decay(param, self.weight_decay)
        if not state:
            state["square_avg"] = np.zeros_like(param.value)
            if self.centered:
                state["grad_avg"] = np.zeros_like(param.value)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(param.value)
        v = state["square_avg"]
        v *= self.alpha
        v += (1.0 - self.alpha) * g * g
        if self.centered:
            mean = state["grad_avg"]
            mean += (1.0 - self.alpha) * (g - mean)
            denom = np.sqrt(v - mean * mean)
        else:
            denom = np.sqrt(v)
        denom += self.eps
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / denom
            param.value -= self.current_lr * buf
        else:
            param.value -= self.current_lr * (g / denom)


class Adagrad(lamina.Optimizer):
    """Adagrad as torch.optim.Adagrad:

        s += g^2;  w -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(
        self,
        lr: float | lamina.Schedule = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        self.lr = learning_rate(lr, "Adagrad")
        self.lr_decay = non_negative_number(lr_decay, "lr_decay", "Adagrad")
        self.weight_decay = non_negative_number(weight_decay, "weight_decay", "Adagrad")
        self.initial_accumulator_value = non_negative_number(
            initial_accumulator_value, "initial_accumulator_value", "Adagrad"
        )
        self.eps = positive_number(eps, "eps", "Adagrad", example=1e-10)

    def update(self, param: lamina.Parameter, state: dict[str, Any]) -> None:
        g = _with_weight_decay(param, self.weight_decay)
        if not state:
            state.update(step=0, sum=np.full_like(param.value, self.initial_accumulator_value))
        state["step"] += 1
        s = state["sum"]
        s += g * g
        lr = self.current_lr / (1.0 + (state["step"] - 1) * self.lr_decay)
        denom = np.sqrt(s)
        denom += self.eps
        param.value -= lr * (g / denom)


@lamina.hookimpl
def register_optimizers(register):
    register(SGD)
    register(Adam)
    register(AdamW)
    register(RMSProp)
    register(Adagrad)
