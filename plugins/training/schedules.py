"""Learning-rate schedules: Constant, StepDecay, ExponentialDecay, CosineDecay (with warmup).

`step` is the optimizer's step count from 0, so decay lengths are counted in batches.
"""
from __future__ import annotations

import math

import lamina
from lamina.checks import non_negative_number, positive_int, positive_number


class Constant(lamina.Schedule):
    """lr, at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = positive_number(lr, "lr", "Constant")

    def __call__(self, step: int) -> float:
        return self.lr


class StepDecay(lamina.Schedule):
    """initial_lr * gamma ** (step // step_size): divide the rate every `step_size` steps."""

    def __init__(self, initial_lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.initial_lr = positive_number(initial_lr, "initial_lr", "StepDecay")
        self.step_size = positive_int(step_size, "step_size", "StepDecay", example=1000)
        self.gamma = positive_number(gamma, "gamma", "StepDecay", example=0.1)

    def __call__(self, step: int) -> float:
        return self.initial_lr * self.gamma ** (step // self.step_size)


class ExponentialDecay(lamina.Schedule):
    """initial_lr * decay_rate ** (step / decay_steps); whole periods only when `staircase`.

    The arguments come in Keras' order; decay_steps=1 gives PyTorch's ExponentialLR(gamma).
    """

    def __init__(self, initial_lr: float, decay_steps: int, decay_rate: float, staircase: bool = False) -> None:
        self.initial_lr = positive_number(initial_lr, "initial_lr", "ExponentialDecay")
        self.decay_rate = positive_number(decay_rate, "decay_rate", "ExponentialDecay", example=0.96)
        self.decay_steps = positive_int(decay_steps, "decay_steps", "ExponentialDecay", example=1000)
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        periods = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.initial_lr * self.decay_rate**periods


class CosineDecay(lamina.Schedule):
    """Linear warmup to initial_lr over `warmup_steps`, then half a cosine down to `min_lr`
    over `decay_steps`, then `min_lr`:

        warmup: initial_lr * (step + 1) / warmup_steps
        decay:  min_lr + (initial_lr - min_lr) * (1 + cos(pi * t)) / 2,  t = (step - warmup) / decay_steps
    """

    def __init__(self, initial_lr: float, decay_steps: int, min_lr: float = 0.0, warmup_steps: int = 0) -> None:
        self.initial_lr = positive_number(initial_lr, "initial_lr", "CosineDecay")
        self.decay_steps = positive_int(decay_steps, "decay_steps", "CosineDecay", example=1000)
        self.min_lr = non_negative_number(min_lr, "min_lr", "CosineDecay")
        if self.min_lr > self.initial_lr:
            raise lamina.ArgumentError(
                f"CosineDecay(min_lr={min_lr!r}): min_lr must not exceed initial_lr={initial_lr!r}"
            )
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise lamina.ArgumentError(
                f"CosineDecay(warmup_steps={warmup_steps!r}): warmup_steps must be an int >= 0"
            )
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / self.warmup_steps
        t = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        return self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


@lamina.hookimpl
def register_schedules(register):
    register(Constant)
    register(StepDecay)
    register(ExponentialDecay)
    register(CosineDecay)
