"""Writing model files: one zip holding config.json and the arrays as .npy members, never pickled.

Reading them back is `lamina.files.load`'s job.

Layout (it is also a valid .npz):
    config.json                   format, lamina's version, layers, plugins, weight names (a frozen
                                  one with "trainable": false), "frozen_layers" (their paths)...
                                  Format version 2 adds, where needed: "graph" (a graph model's
                                  `Graph.describe()`; "layers" then lists each layer once, in order
                                  of first use), "order" (a chain that uses a layer at several
                                  places: each place's index into "layers") and "output_losses"
                                  (the loss and its weight per output, after several-output training)
    weights/<name>.npy            one per parameter, named like model.parameters() ("0.weight")
    buffers/<name>.npy            non-trained layer state, named like model.buffers()
    optimizer/<i>/<key>.npy       optimizer state arrays for parameter i (include_optimizer=True)
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lamina.checks import printable
from lamina.errors import ArgumentError
from lamina.files.atomic import atomic_write
from lamina.files.records import describe_plugin, to_json
from lamina.protocols.layer import layer_paths
from lamina.protocols.trainable import Trainable
from lamina.seeding import rng
from lamina.training.outputs import OutputLosses
from lamina.version import __version__

FORMAT = "lamina.model"
FORMAT_VERSION = 2  # 2: "order" or "graph"; a file that needs neither is written as version 1


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    archive.writestr(name, buffer.getvalue())


def save_model(
    model: Trainable,
    path: str | os.PathLike[str],
    include_optimizer: bool = False,
    progress: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to `path` atomically; with `include_optimizer`, also the optimizer's state
    and lamina's random generator, so that training resumes exactly. `progress` (the epochs
    done and the history so far) makes the file a checkpoint that `train(resume_from=...)` reads."""
    params = model.parameters()
    buffers = model.buffers()
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": 1,
        "lamina_version": __version__,
        **_architecture(model),
        "weights": {name: _weight_entry(p) for name, p in params.items()},
        "buffers": {name: {"shape": list(b.shape), "dtype": str(b.dtype)} for name, b in buffers.items()},
    }
    frozen_layers = [path for path, layer in layer_paths(model.layers).items() if not layer.trainable]
    if frozen_layers:  # only then: a file without the key loads with every layer trainable
        config["frozen_layers"] = frozen_layers
    if isinstance(model.loss, OutputLosses):  # several outputs: a loss record per output (and its weight)
        config["output_losses"] = {
            "losses": {name: describe_plugin(loss, "loss", f"Model.loss.losses[{name!r}]", 4)
                       for name, loss in model.loss.losses.items()},
            "loss_weights": {name: float(weight) for name, weight in model.loss.loss_weights.items()},
        }
    elif model.loss is not None:
        config["loss"] = describe_plugin(model.loss, "loss", "Model.loss", 2)
    if model.metrics:
        config["metrics"] = [describe_plugin(m, "metric", f"Model.metrics[{i}]", 3)
                             for i, m in enumerate(model.metrics)]
    arrays = {f"weights/{name}.npy": param.value for name, param in params.items()}
    arrays.update({f"buffers/{name}.npy": array for name, array in buffers.items()})
    if include_optimizer:
        optim = model.optimizer
        if optim is None:
            raise ArgumentError(
                "Model.save(include_optimizer=True): the model has no optimizer yet; train it first"
            )
        config["optimizer"], state_arrays = _optimizer_record(optim, params)
        arrays.update(state_arrays)
        config["rng_state"] = rng().bit_generator.state
    if progress is not None:
        config["progress"] = to_json(progress, "progress", 2)
    if model.metadata:
        config["metadata"] = to_json(model.metadata, "Model.metadata", 2)
    records = [config["layers"], [config.get("loss")], config.get("metrics", []), [config.get("optimizer")],
               [config.get("output_losses")]]
    config["plugins"] = _plugins(records)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("config.json", json.dumps(config, indent=2))
        for name, array in arrays.items():
            _write_array(archive, name, array)
    return atomic_write(path, buffer.getvalue())


def _architecture(model: Trainable) -> dict[str, Any]:
    """The layers, each once, and how they connect: for a chain that uses no instance twice, the
    layers in order (as every lamina wrote it); else format version 2 and either "order" (each
    place's index into "layers") or "graph" (`Graph.describe()`)."""
    graph = getattr(model, "graph", None)
    distinct = list({id(layer): layer for layer in model.layers}.values()) if graph is None else graph.layers
    _check_sharing(distinct)
    # Levels in config.json: the config is 1, its tables and lists 2, what they hold 3.
    found: dict[str, Any] = {
        "layers": [describe_plugin(layer, "layer", f"Model.layers[{i}]", 3) for i, layer in enumerate(distinct)],
        "input_shape": None if model.input_shape is None or graph is not None else list(model.input_shape),
        "input_dtype": None if model.input_dtype is None or graph is not None else str(model.input_dtype),
    }
    if graph is not None:
        found["graph"] = to_json(graph.describe(), "Model.graph", 2)
    elif len(distinct) < len(model.layers):
        index = {id(layer): i for i, layer in enumerate(distinct)}
        found["order"] = [index[id(layer)] for layer in model.layers]
    if "graph" in found or "order" in found:
        found["format_version"] = FORMAT_VERSION
    return found


def _check_sharing(layers: list[Any]) -> None:
    """A file rebuilds each layer it lists, and each layer inside it, as a new instance: one
    instance inside another layer and at a second place cannot be described."""
    places: dict[int, str] = {}
    for path, layer in layer_paths(layers).items():
        if id(layer) in places:
            raise ArgumentError(
                f"Model.save: the layer {printable(repr(layer), 80)} sits at {places[id(layer)]} and at {path} (its "
                "layers' paths), inside another layer; a model file can share a layer between places of the model "
                "or nodes of a graph, not inside layers; make the inner uses separate layers, or save the weights "
                "with save_weights(path)"
            )
        places[id(layer)] = path


def _weight_entry(param: Any) -> dict[str, Any]:
    """A weight's shape and dtype, and `"trainable": false` when it is frozen (absent: trainable)."""
    entry: dict[str, Any] = {"shape": list(param.shape), "dtype": str(param.value.dtype)}
    if not param.trainable:
        entry["trainable"] = False
    return entry


def _optimizer_record(optim: Any, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    record = describe_plugin(optim, "optimizer", "Model.optimizer", 2)
    record["iterations"] = int(optim.iterations)
    states, arrays = {}, {}
    for index, (name, param) in enumerate(params.items()):
        state = optim.state_for(param)
        if not state:
            continue
        entry = {}
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer/{index}/{key}.npy"] = value
                entry[key] = {"array": f"optimizer/{index}/{key}.npy"}
            else:
                # in config.json: config > optimizer > state > name > key > the value
                entry[key] = {"value": to_json(value, f"optimizer state {name}.{key}", 6)}
        states[name] = entry
    record["state"] = states
    return record, arrays


def _plugins(groups: list[list[Any]]) -> dict[str, str]:
    """Every distribution whose plugins the file names, with its version."""
    found: dict[str, str] = {}

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if "package" in value and "type" in value:
                found[value["package"]] = value.get("version", "")
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(groups)
    return found
