"""lamina: a deep-learning library on numpy that you can read end to end, built from plugins.

>>> import lamina
>>> model = lamina.Model([lamina.layer("Linear", 8), "Relu", {"type": "Linear", "units": 1}])
>>> history = model.train(x, y, optim="SGD", loss="MSE", epochs=100, verbose=False)
"""
from lamina import checks, export, ops
from lamina.callback import Callback
from lamina.case import Case
from lamina.checkpoint import Checkpoint
from lamina.checks import DEFAULT_DTYPE
from lamina.console import echo
from lamina.dataset import Dataset
from lamina.errors import (
    AmbiguousPluginError,
    ArgumentError,
    ConfigError,
    FileFormatError,
    LaminaError,
    MissingPluginError,
    NonFiniteError,
    PluginError,
    PluginWarning,
    ShapeError,
    UnknownPluginError,
)
from lamina.generate import generate
from lamina.history import History
from lamina.hookspecs import hookimpl, hookspec
from lamina.initializer import Initializer, fans
from lamina.io import atomic_write
from lamina.layer import Layer
from lamina.loss import Loss
from lamina.metric import Metric
from lamina.model import Model
from lamina.model import load_model as load
from lamina.optimizer import Optimizer
from lamina.options import TrainOptions
from lamina.parameter import Parameter
from lamina.registry import (
    KINDS,
    PluginFailure,
    PluginInfo,
    Registry,
    callback,
    dataset,
    get_registry,
    info_for,
    initializer,
    layer,
    loss,
    metric,
    optimizer,
    register_plugin,
    resolve,
    schedule,
    strategy,
)
from lamina.schedule import Schedule
from lamina.seeding import rng, seed
from lamina.step import clip_grad_norm
from lamina.strategy import DataParallel, Strategy, active_strategy
from lamina.version import __version__

__all__ = [
    "DEFAULT_DTYPE",
    "KINDS",
    "AmbiguousPluginError",
    "ArgumentError",
    "ConfigError",
    "FileFormatError",
    "Callback",
    "Case",
    "Checkpoint",
    "DataParallel",
    "Dataset",
    "History",
    "Initializer",
    "Layer",
    "LaminaError",
    "Loss",
    "Metric",
    "MissingPluginError",
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
    "Strategy",
    "TrainOptions",
    "ShapeError",
    "UnknownPluginError",
    "__version__",
    "active_strategy",
    "atomic_write",
    "callback",
    "checks",
    "clip_grad_norm",
    "dataset",
    "echo",
    "export",
    "fans",
    "generate",
    "get_registry",
    "hookimpl",
    "hookspec",
    "info_for",
    "initializer",
    "layer",
    "load",
    "loss",
    "metric",
    "ops",
    "optimizer",
    "register_plugin",
    "resolve",
    "rng",
    "schedule",
    "seed",
    "strategy",
]
