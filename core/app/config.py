"""`lamina train` configs: TOML read into a checked RunConfig, and the objects built from it.

Every error names the file, the key and the problem; unknown keys are errors, never ignored.
"""
from __future__ import annotations

import difflib
import inspect
import tomllib
from pathlib import Path
from typing import Any

from attrs import field, frozen

from lamina.app import nodes
from lamina.checks import MAX_NESTING, describe, nesting, printable
from lamina.errors import ArgumentError, ConfigError, LaminaError
from lamina.model import Model
from lamina.protocols.dataset import Data
from lamina.registry import CLASSES, KINDS, get_registry
from lamina.training.options import TrainOptions, config_keys

# The embedded default of `lamina train` with no CONFIG: an MLP on the shipped digits.
DEFAULT_CONFIG = """\
# lamina train's default: a multilayer perceptron on the 8x8 handwritten digits.
seed = 0
epochs = 60
batch_size = 32
validation_split = 0.1
metrics = ["accuracy"]
output = "runs/default"

[dataset]
name = "digits"

[[layers]]
type = "Linear"
units = 128

[[layers]]
type = "Relu"

[[layers]]
type = "Linear"
units = 10

[[layers]]
type = "Softmax"

[loss]
type = "CrossEntropy"

[optimizer]
type = "Adam"
lr = 0.001

[[callbacks]]
type = "EarlyStopping"
monitor = "val_loss"
patience = 10
"""

# The run's own keys; the training options (epochs, batch_size, ...) come from TrainOptions.
KEYS = {
    "seed": "an int >= 0 seeding lamina's generator (default 0)",
    "output": "the output folder (default runs/<config name>)",
    "dataset": 'a dataset name or a table with "name" and its options',
    "layers": 'a list of layer names or tables with "type" and its arguments (and trainable = false to freeze it)',
    "inputs": 'a graph model\'s inputs instead of layers: a list of tables with "name", "shape" (one row\'s, e.g. '
              '[64]) and "dtype" (optional; "int64" for ids)',
    "nodes": 'a graph model\'s layer calls, in order: tables with "name", "inputs" (a name or a list of names) and '
             'the layer ("type" and its arguments, or layer = "<node name>" to call that node\'s layer again), '
             'and "call" (optional: the call\'s keyword arguments)',
    "outputs": "a graph model's outputs: a node name, or a list of node names (then loss, loss_weights and "
               "metrics may be tables by output name)",
    "loss": f'a loss name or a table with "type" (default "{KINDS["loss"].default}"), or a table by output name '
            "of those",
    "loss_weights": "a table from output name to a number >= 0: each output's loss weight in the total",
    "optimizer": f'an optimizer name or a table with "type" (default "{KINDS["optimizer"].default}")',
    "schedule": 'a table with "type": the optimizer\'s learning-rate schedule',
    "init": 'a table: weights = "a weights or model file" to start from (and layout, strict, exclude, freeze)',
    "tensorboard": "true or false (default): write TensorBoard event files into <output>/tensorboard "
                   "(needs pip install 'lamina[tensorboard]')",
    **config_keys(),
    "metrics": "a list of metric names or tables, or a table by output name of such lists",
}
REQUIRED = ("dataset", "layers")  # or, for a graph model, inputs, nodes and outputs instead of layers
# Options whose config value names plugins (built below), not a value TrainOptions checks.
PLUGIN_OPTIONS = ("metrics", "callbacks", "strategy")


@frozen
class RunConfig:
    """A checked `lamina train` config; `source` names it in error messages."""

    source: str
    data: dict[str, Any] = field(repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")


def read(path: str | Path | None) -> RunConfig:
    """Read a config file (None: the embedded default) and check its keys and types."""
    if path is None:
        source, text = "the default config", DEFAULT_CONFIG
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such config file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{source}: cannot read it ({err})") from None
    return parse(text, source, Path(path).stem if path is not None else "default")


def parse(text: str, source: str, name: str = "run") -> RunConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    except RecursionError:  # inline arrays and tables: tomllib recurses into them
        raise ConfigError(f"{source}: not valid TOML for lamina: its arrays or inline tables nest deeper than "
                          f"Python's parser goes, and far over lamina's limit of {MAX_NESTING} levels "
                          "(lamina.checks.MAX_NESTING)") from None
    depth, path = nesting(data)  # before anything recurses into the tables (messages, building)
    if depth > MAX_NESTING:
        raise ConfigError(
            f"{source}: {printable(path.lstrip('.'), 120)}: the config nests {depth:,} levels of tables and lists "
            f"there, over the limit of {MAX_NESTING} (lamina.checks.MAX_NESTING); a dotted key makes a table per "
            "dot: flatten it"
        )
    config = RunConfig(source, data)
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise config.error(key, f"unknown key.{hint} Known keys: {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in data and not (key == "layers" and nodes.is_graph(data)):
            alternative = " (or, for a graph model, inputs, nodes and outputs)" if key == "layers" else ""
            raise config.error(key, f"missing; it is required: {KEYS[key]}{alternative}")
    _check_int(config, "seed", minimum=0)
    _check_type(config, "output", str, "a folder path as a string")
    _check_type(config, "tensorboard", bool, KEYS["tensorboard"])
    if "output" in data and (not data["output"].strip() or "\0" in data["output"]):
        raise config.error("output",
                           f"{describe(data['output'])} is no folder name; name the folder, e.g. "
                           f"output = \"runs/{name}\"")
    for key in config_keys():  # each training option is checked by TrainOptions itself
        if key in data and key not in PLUGIN_OPTIONS:
            try:
                TrainOptions.make({key: data[key]})
            except ArgumentError:
                raise config.error(key, f"expected {KEYS[key]}, got {describe(data[key])}") from None
    for key in ("layers", "metrics", "callbacks"):
        if key in data and not isinstance(data[key], list) and not (key == "metrics" and nodes.several(data)):
            raise config.error(key, f"expected {KEYS[key]}, got {describe(data[key])}")
    if nodes.is_graph(data):
        nodes.check(data, config.error)
    elif not data["layers"]:
        raise config.error("layers", "the list is empty; a model needs at least one layer")
    for key, spec in _layer_specs(data):  # before the data loads: a wrong type fails at once
        _trainable_flag(config, spec, key)
    check_outputs(config)
    check_init(config)
    data.setdefault("output", f"runs/{name}")
    return config


def _layer_specs(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key, spec) of every layer the config makes: its [[layers]], or its [[nodes]] that make one."""
    if nodes.is_graph(data):
        return [(f"nodes[{i}]", node) for i, node in enumerate(data["nodes"]) if "layer" not in node]
    return [(f"layers[{i}]", spec) for i, spec in enumerate(data["layers"])]


def check_outputs(config: RunConfig) -> None:
    """`loss`, `metrics` and `loss_weights` by output name: tables whose keys are the outputs."""
    outputs = nodes.output_names(config.data, config.error) if nodes.several(config.data) else []
    loss, metrics, weights = config.get("loss"), config.get("metrics"), config.get("loss_weights")
    if weights is not None and not outputs:
        raise config.error("loss_weights", "weighs the losses of a model's several outputs (outputs = [names]); "
                                           "this model has one output: leave it out")
    per_output = [("loss", loss)] if isinstance(loss, dict) and "type" not in loss and outputs else []
    per_output += [(key, value) for key, value in (("metrics", metrics), ("loss_weights", weights))
                   if isinstance(value, dict)]
    for key, table in per_output:
        for name, value in table.items():
            if name not in outputs:
                raise config.error(f"{key}.{name}", f"{name!r} is no output of the model; its outputs are {outputs}")
            if key == "metrics" and not isinstance(value, list):
                raise config.error(f"metrics.{name}", f"expected a list of metric names or tables, got "
                                                      f"{describe(value)}")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key == "loss_weights" and not (number and 0 <= value < float("inf")):
                raise config.error(f"loss_weights.{name}", f"expected a number >= 0, got {describe(value)}")
    if weights is not None and not isinstance(weights, dict):
        raise config.error("loss_weights", f"expected {KEYS['loss_weights']}, e.g. loss_weights = {{"
                                           f"{outputs[0]} = 1.0}}, got {describe(weights)}")


INIT_KEYS = {
    "weights": "the weights file to start from: .safetensors, .npz, or a model file from lamina train",
    "layout": '"lamina" (default) or "torch": whose names and shapes the file has',
    "strict": "true (default): every weight of the model must be in the file and fit; false: load what fits",
    "exclude": 'a list of names (glob patterns, e.g. ["6.*"]) of the file not to load: a head to train afresh',
    "freeze": 'a list of parameter names (glob patterns, e.g. ["0.*", "2.*"]) to freeze: they do not train',
}
LAYOUTS = ("lamina", "torch")


def check_init(config: RunConfig) -> None:
    """The [init] table's keys and types, when the config is read."""
    table = config.get("init")
    if table is None:
        return
    if not isinstance(table, dict):
        raise config.error("init", f"expected a table with {', '.join(INIT_KEYS)}, got {describe(table)}")
    for key in table:
        if key not in INIT_KEYS:
            raise config.error(f"init.{key}", f"unknown key; [init] takes {', '.join(INIT_KEYS)}")
    if not isinstance(table.get("weights"), str) or not table["weights"].strip():
        raise config.error("init.weights", f"expected {INIT_KEYS['weights']} as a path string, got "
                           f"{describe(table.get('weights'))}")
    if table.get("layout", "lamina") not in LAYOUTS:
        raise config.error("init.layout", f"expected {INIT_KEYS['layout']}, got {describe(table['layout'])}")
    if not isinstance(table.get("strict", True), bool):
        raise config.error("init.strict", f"expected true or false, got {describe(table['strict'])}")
    for key in ("exclude", "freeze"):
        value = table.get(key, [])
        if not (isinstance(value, list) and all(isinstance(p, str) and p for p in value)):
            raise config.error(f"init.{key}", f"expected {INIT_KEYS[key]}, got {describe(value)}")


def _check_type(config: RunConfig, key: str, kind: type, expected: str) -> None:
    value = config.get(key)
    if value is not None and not isinstance(value, kind):
        raise config.error(key, f"expected {expected}, got {describe(value)}")


def _check_int(config: RunConfig, key: str, minimum: int) -> None:
    value = config.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise config.error(key, f"expected {KEYS[key]}, got {describe(value)}")


# -- building objects -----------------------------------------------------------------------------


def build(config: RunConfig, kind: str, spec: Any, key: str, name_key: str = "type", **extra: Any) -> Any:
    """A plugin from a name or a table {name_key: ..., args...}; errors carry the key."""
    if isinstance(spec, str):
        name, args = spec, {}
    elif isinstance(spec, dict):
        if name_key not in spec:
            raise config.error(key, f'the table needs a "{name_key}" key naming the {kind}')
        args = dict(spec)
        name = args.pop(name_key)
        if not isinstance(name, str):
            raise config.error(f"{key}.{name_key}", f"expected a {kind} name, got {describe(name)}")
    else:
        raise config.error(key, f'expected a {kind} name or a table with "{name_key}", got {describe(spec)}')
    try:
        return get_registry().build(kind, name, **args, **extra)
    except LaminaError as err:
        raise config.error(key, str(err)) from None


def _trainable_flag(config: RunConfig, spec: Any, key: str) -> bool:
    """A [[layers]] entry's `trainable` (True when absent); anything but true or false is a ConfigError."""
    if not isinstance(spec, dict) or "trainable" not in spec:
        return True
    flag = spec["trainable"]
    if not isinstance(flag, bool):
        raise config.error(f"{key}.trainable",
                           f"expected true or false (false freezes the layer), got {describe(flag)}")
    return flag


def build_layer(config: RunConfig, spec: Any, key: str) -> Any:
    """The layer of a [[layers]] entry; `trainable = false` is taken out before the layer is built
    by name, then freezes it (its parameters, those it builds later, and its sublayers')."""
    trainable = _trainable_flag(config, spec, key)
    if isinstance(spec, dict) and "trainable" in spec:
        spec = {name: value for name, value in spec.items() if name != "trainable"}
    layer = build(config, "layer", spec, key)
    if not trainable:
        layer.trainable = False
    return layer


def build_list(config: RunConfig, kind: str, key: str) -> list[Any]:
    return [build(config, kind, spec, f"{key}[{i}]") for i, spec in enumerate(config.get(key, []))]


def build_model(config: RunConfig, x: Any) -> Model:
    """The config's model: a chain of its [[layers]], or the graph of its inputs, nodes and
    outputs (taking a dict by input name when the dataset's `x` is a dict)."""
    if not nodes.is_graph(config.data):
        return Model([build_layer(config, spec, f"layers[{i}]") for i, spec in enumerate(config.get("layers"))])
    return nodes.build(config.data, config.error, lambda spec, key: build_layer(config, spec, key),
                       dict_inputs=isinstance(x, dict))


def build_loss(config: RunConfig) -> Any:
    """The loss: one for every output, or (a table by output name) a dict of them."""
    spec = config.get("loss", KINDS["loss"].default)
    if nodes.several(config.data) and isinstance(spec, dict) and "type" not in spec:
        return {name: build(config, "loss", value, f"loss.{name}") for name, value in spec.items()}
    return build(config, "loss", spec, "loss")


def build_metrics(config: RunConfig) -> Any:
    """The metrics: a list for every output with a loss, or (a table by output name) a dict of lists."""
    spec = config.get("metrics", [])
    if isinstance(spec, dict):
        return {name: [build(config, "metric", item, f"metrics.{name}[{i}]") for i, item in enumerate(specs)]
                for name, specs in spec.items()}
    return build_list(config, "metric", "metrics")


def build_optimizer(config: RunConfig) -> Any:
    spec = config.get("optimizer", KINDS["optimizer"].default)
    if config.get("schedule") is None:
        return build(config, "optimizer", spec, "optimizer")
    schedule = build(config, "schedule", config.get("schedule"), "schedule")
    if isinstance(spec, dict) and "lr" in spec:
        raise config.error("optimizer.lr", "give the learning rate as lr or as a [schedule], not both")
    return build(config, "optimizer", spec, "optimizer", lr=schedule)


def load_dataset(config: RunConfig) -> Data:
    """The config's dataset: its four arrays, and in `.metadata` what the model keeps of it."""
    return load_weighted(config)[0]


def load_weighted(config: RunConfig) -> tuple[Data, Any, Any]:
    """The config's dataset, and its training and test rows' sample weights (None unless the
    dataset has them: a dataset hands them over with a `sample_weights()` method returning the
    weights of `load()`'s train and test rows, or None; e.g. csv's `weight = "column"`)."""
    spec = config.get("dataset")
    dataset = build(config, "dataset", spec, "dataset", name_key="name")
    try:
        data = Data(dataset.load(), dataset.metadata())
        weights = getattr(dataset, "sample_weights", None)
        parts = weights() if callable(weights) else None
    except (LaminaError, OSError) as err:
        raise config.error("dataset", str(err)) from None
    return (data, None, None) if parts is None else (data, parts[0], parts[1])


# The keys whose tables build plugins; "classes" in them is the dataset's class count.
PLUGIN_KEYS = ("layers", "nodes", "loss", "optimizer", "schedule", "metrics", "callbacks")


def count_classes(config: RunConfig, data: Data) -> RunConfig:
    """The config with every option whose value is the string "classes" (in a plugin's table,
    nested tables and lists included, e.g. a Sequential's layers) replaced by the dataset's
    number of classes (`Data.num_classes`); the same config when none is."""
    found: list[str] = []

    def walk(value: Any, key: str, in_table: bool) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{key}.{k}", True) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{key}[{i}]", False) for i, v in enumerate(value)]
        if in_table and isinstance(value, str) and value == CLASSES:
            found.append(key)
            return count()
        return value

    counted: list[int] = []

    def count() -> int:
        if not counted:
            try:
                counted.append(data.num_classes)
            except LaminaError as err:
                raise config.error(found[0],
                                   f'"{CLASSES}" is the number of classes of the dataset, but {err}') from None
        return counted[0]

    def walk_key(key: str, value: Any) -> Any:
        if key == "nodes" and isinstance(value, list):  # a node's own keys name nodes, not numbers
            return [{k: v if k in nodes.NODE_KEYS else walk(v, f"nodes[{i}].{k}", True) for k, v in node.items()}
                    for i, node in enumerate(value)]
        return walk(value, key, False) if key in PLUGIN_KEYS else value

    resolved = {key: walk_key(key, value) for key, value in config.data.items()}
    return RunConfig(config.source, resolved) if found else config


SPLIT_OPTIONS = ("test_split", "seed")


def split_options(config: RunConfig) -> dict[str, Any]:
    """{"name": "csv", "test_split": 0.25, "seed": 0}: the config's dataset and the options that
    pick its test rows (given, or the dataset's defaults), which `lamina train` keeps in the
    model's metadata["dataset"] so that `lamina evaluate --data FILE` scores the same rows."""
    spec = config.get("dataset")
    name = spec if isinstance(spec, str) else spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str):
        return {}
    given = spec if isinstance(spec, dict) else {}
    try:
        params = inspect.signature(get_registry().get("dataset", name).cls).parameters
    except (LaminaError, TypeError, ValueError):
        return {}
    split = {
        key: given.get(key, params[key].default) for key in SPLIT_OPTIONS
        if key in params and (key in given or params[key].default is not inspect.Parameter.empty)
    }
    return {"name": name, **split} if split else {}


def training_options(config: RunConfig) -> dict[str, Any]:
    """The training options the config sets (checked by `parse`), as Model.train's keywords."""
    found = {key: config.get(key) for key in config_keys() if key in config.data and key not in PLUGIN_OPTIONS}
    return found | ({"loss_weights": config.get("loss_weights")} if "loss_weights" in config.data else {})
