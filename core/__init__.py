"""lamina: a deep-learning library on numpy that you can read end to end, built from plugins.

>>> import lamina
>>> model = lamina.Model([lamina.layer("Linear", 8), "Relu", {"type": "Linear", "units": 1}])
>>> history = model.train(x, y, optim="SGD", loss="MSE", epochs=100, verbose=False)
"""
from lamina import checks, export, ops, parallel
from lamina.app.console import echo
from lamina.app.generate import generate
from lamina.case import Case
from lamina.checks import DEFAULT_DTYPE
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
from lamina.files.atomic import atomic_write
from lamina.files.state import LoadReport
from lamina.files.weights import read_weights, write_weights
from lamina.graph.block import GraphBlock
from lamina.graph.symbolic import Input, Symbol
from lamina.hookspecs import hookimpl, hookspec
from lamina.model import Model
from lamina.model import load_model as load
from lamina.parameter import Parameter
from lamina.protocols.callback import Callback
from lamina.protocols.chain import Chain
from lamina.protocols.dataset import Dataset
from lamina.protocols.initializer import Initializer, fans
from lamina.protocols.layer import Layer
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.protocols.schedule import Schedule
from lamina.protocols.strategy import DataParallel, Strategy, active_strategy
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
from lamina.seeding import rng, seed
from lamina.training.checkpoint import Checkpoint
from lamina.training.history import History
from lamina.training.options import TrainOptions
from lamina.training.step import clip_grad_norm
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
    "Chain",
    "Checkpoint",
    "DataParallel",
    "Dataset",
    "History",
    "Initializer",
    "GraphBlock",
    "Input",
    "Layer",
    "LaminaError",
    "LoadReport",
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
    "Symbol",
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
    "parallel",
    "read_weights",
    "register_plugin",
    "resolve",
    "rng",
    "schedule",
    "seed",
    "strategy",
    "write_weights",
]
