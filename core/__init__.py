"""lamina: a deep-learning library on numpy that you can read end to end, built from plugins.

>>> import lamina
>>> model = lamina.Model([lamina.layer("Linear", 8), "Relu", {"type": "Linear", "units": 1}])
>>> history = model.train(x, y, optim="SGD", loss="MSE", epochs=100, verbose=False)
"""
from importlib.metadata import PackageNotFoundError, version as _version

from lamina import checks
from lamina.callback import Callback
from lamina.checks import DEFAULT_DTYPE
from lamina.errors import (
    AmbiguousPluginError,
    ArgumentError,
    LaminaError,
    NonFiniteError,
    PluginError,
    PluginWarning,
    ShapeError,
    UnknownPluginError,
)
from lamina.history import History
from lamina.hookspecs import hookimpl, hookspec
from lamina.initializer import Initializer, fans
from lamina.io import atomic_write
from lamina.layer import Layer
from lamina.loss import Loss
from lamina.metric import Metric
from lamina.model import Model
from lamina.optimizer import Optimizer
from lamina.parameter import Parameter
from lamina.registry import (
    KINDS,
    PluginFailure,
    PluginInfo,
    Registry,
    callback,
    get_registry,
    initializer,
    layer,
    loss,
    metric,
    optimizer,
    register_plugin,
    resolve,
    schedule,
)
from lamina.schedule import Schedule
from lamina.seeding import rng, seed
from lamina.training import clip_grad_norm

try:
    __version__ = _version("lamina")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_DTYPE",
    "KINDS",
    "AmbiguousPluginError",
    "ArgumentError",
    "Callback",
    "History",
    "Initializer",
    "Layer",
    "LaminaError",
    "Loss",
    "Metric",
    "Model",
    "NonFiniteError",
    "Optimizer",
    "Parameter",
    "PluginError",
    "PluginFailure",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "Schedule",
    "ShapeError",
    "UnknownPluginError",
    "__version__",
    "atomic_write",
    "callback",
    "checks",
    "clip_grad_norm",
    "fans",
    "get_registry",
    "hookimpl",
    "hookspec",
    "initializer",
    "layer",
    "loss",
    "metric",
    "optimizer",
    "register_plugin",
    "resolve",
    "rng",
    "schedule",
    "seed",
]
