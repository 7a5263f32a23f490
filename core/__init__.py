"""lamina: a deep-learning library on numpy that you can read end to end, built from plugins.

>>> import lamina
>>> model = lamina.Model([lamina.layer("Linear", 8), "Relu", {"type": "Linear", "units": 1}])
>>> history = model.train(x, y, optim="SGD", loss="MSE", epochs=100, verbose=False)
"""
from importlib.metadata import PackageNotFoundError, version as _version

from lamina import checks
from lamina.checks import DEFAULT_DTYPE
from lamina.errors import (
    AmbiguousPluginError,
    ArgumentError,
    LaminaError,
    PluginError,
    PluginWarning,
    ShapeError,
    UnknownPluginError,
)
from lamina.hookspecs import hookimpl, hookspec
from lamina.layer import Layer
from lamina.loss import Loss
from lamina.model import Model
from lamina.optimizer import Optimizer
from lamina.parameter import Parameter
from lamina.registry import (
    KINDS,
    PluginFailure,
    PluginInfo,
    Registry,
    get_registry,
    layer,
    loss,
    optimizer,
    register_plugin,
)
from lamina.seeding import rng, seed

try:
    __version__ = _version("lamina")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_DTYPE",
    "KINDS",
    "AmbiguousPluginError",
    "ArgumentError",
    "Layer",
    "LaminaError",
    "Loss",
    "Model",
    "Optimizer",
    "Parameter",
    "PluginError",
    "PluginFailure",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "ShapeError",
    "UnknownPluginError",
    "__version__",
    "checks",
    "get_registry",
    "hookimpl",
    "hookspec",
    "layer",
    "loss",
    "optimizer",
    "register_plugin",
    "rng",
    "seed",
]
