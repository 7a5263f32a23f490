"""Weight initialisers: Glorot (Xavier), He (Kaiming), LeCun, constants and a plain normal.

Fans come from `lamina.fans(shape)` unless the layer passes its own. Normal variants are plain
(untruncated) normals, as PyTorch's `nn.init` draws them.
"""
from __future__ import annotations

import numpy as np

import lamina


class GlorotUniform(lamina.Initializer):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): keeps variance through tanh/sigmoid layers."""

    def sample(self, shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return lamina.rng().uniform(-limit, limit, size=shape)


class GlorotNormal(lamina.Initializer):
    """N(0, 2 / (fan_in + fan_out))."""

    def sample(self, shape, fan_in, fan_out):
        return lamina.rng().normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class HeUniform(lamina.Initializer):
    """U(-a, a) with a = sqrt(6 / fan_in): keeps variance through ReLU layers."""

    def sample(self, shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / fan_in)
        return lamina.rng().uniform(-limit, limit, size=shape)


class HeNormal(lamina.Initializer):
    """N(0, 2 / fan_in)."""

    def sample(self, shape, fan_in, fan_out):
        return lamina.rng().normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


class LecunNormal(lamina.Initializer):
    """N(0, 1 / fan_in): the default for SELU networks."""

    def sample(self, shape, fan_in, fan_out):
        return lamina.rng().normal(0.0, np.sqrt(1.0 / fan_in), size=shape)


class Zeros(lamina.Initializer):
    """All zeros (the default for biases)."""

    def sample(self, shape, fan_in, fan_out):
        return np.zeros(shape)


class Ones(lamina.Initializer):
    """All ones."""

    def sample(self, shape, fan_in, fan_out):
        return np.ones(shape)


class Normal(lamina.Initializer):
    """N(mean, std^2), whatever the fans."""

    def __init__(self, std: float = 0.05, mean: float = 0.0) -> None:
        self.std = lamina.checks.positive_number(std, "std", "Normal", example=0.05)
        if not np.isfinite(mean):
            raise lamina.ArgumentError(f"Normal(mean={mean!r}): mean must be a finite number")
        self.mean = float(mean)

    def sample(self, shape, fan_in, fan_out):
        return lamina.rng().normal(self.mean, self.std, size=shape)


@lamina.hookimpl
def register_initializers(register):
    register(GlorotUniform, name="glorot_uniform", aliases=("xavier_uniform",))
    register(GlorotNormal, name="glorot_normal", aliases=("xavier_normal",))
    register(HeUniform, name="he_uniform", aliases=("kaiming_uniform",))
    register(HeNormal, name="he_normal", aliases=("kaiming_normal",))
    register(LecunNormal, name="lecun_normal")
    register(Zeros, name="zeros")
    register(Ones, name="ones")
    register(Normal, name="normal")
