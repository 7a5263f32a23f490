"""Model files: one zip holding config.json and the arrays as .npy members, never pickled.

Layout (it is also a valid .npz):
    config.json                   format, lamina's version, layers, plugins, weight names...
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
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import define

from lamina.errors import ArgumentError, FileFormatError, LaminaError
from lamina.io import atomic_write
from lamina.layer import Layer, named_buffers, named_parameters
from lamina.loss import Loss
from lamina.metric import Metric
from lamina.optimizer import Optimizer
from lamina.seeding import rng
from lamina.serialize import build_plugin, describe_plugin, from_json, to_json
from lamina.version import __version__

if TYPE_CHECKING:  # saving is below model: it takes a model, but never makes one
    from lamina.model import Model

FORMAT = "lamina.model"
FORMAT_VERSION = 1


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    archive.writestr(name, buffer.getvalue())


def save_model(
    model: Model,
    path: str | os.PathLike[str],
    include_optimizer: bool = False,
    progress: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to `path` atomically; with `include_optimizer`, also the optimizer's state
    and lamina's random generator, so that training resumes exactly. `progress` (the epochs
    done and the history so far) makes the file a checkpoint that `train(resume_from=...)` reads."""
    params = model.parameters()
    buffers = model.buffers()
    layers = [describe_plugin(layer, "layer", f"Model.layers[{i}]") for i, layer in enumerate(model.layers)]
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lamina_version": __version__,
        "layers": layers,
        "input_shape": None if model.input_shape is None else list(model.input_shape),
        "input_dtype": None if model.input_dtype is None else str(model.input_dtype),
        "weights": {name: {"shape": list(p.shape), "dtype": str(p.value.dtype)} for name, p in params.items()},
        "buffers": {name: {"shape": list(b.shape), "dtype": str(b.dtype)} for name, b in buffers.items()},
    }
    if model.loss is not None:
        config["loss"] = describe_plugin(model.loss, "loss", "Model.loss")
    if model.metrics:
        config["metrics"] = [describe_plugin(m, "metric", f"Model.metrics[{i}]") for i, m in enumerate(model.metrics)]
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
        config["progress"] = to_json(progress, "progress")
    records = [config["layers"], [config.get("loss")], config.get("metrics", []), [config.get("optimizer")]]
    config["plugins"] = _plugins(records)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("config.json", json.dumps(config, indent=2))
        for name, array in arrays.items():
            _write_array(archive, name, array)
    return atomic_write(path, buffer.getvalue())


def _optimizer_record(optim: Any, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    record = describe_plugin(optim, "optimizer", "Model.optimizer")
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
                entry[key] = {"value": to_json(value, f"optimizer state {name}.{key}")}
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


# -- loading ---------------------------------------------------------------------------------------


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config.json of a model file, checked to be one (for `lamina info` and `load_model`)."""
    path = Path(path)
    with _open(path) as archive:
        return _config(archive, path)


class _open:
    """A model file's zip archive; any failure to open it is a FileFormatError naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> zipfile.ZipFile:
        if not self.path.is_file():
            raise FileNotFoundError(f"no model file at {str(self.path)!r}")
        try:
            self.archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise FileFormatError(
                f"{self.path}: not a lamina model file: it is not a zip archive ({err}); is it "
                "truncated, or a file of another kind?"
            ) from None
        return self.archive

    def __exit__(self, *exc: object) -> None:
        self.archive.close()


def _member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise FileFormatError(f"{path}: the model file has no {name!r} member; is it truncated or corrupted?") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as err:
        raise FileFormatError(f"{path}: cannot read {name!r} from the model file ({err}); it is corrupted") from None


def _config(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    if "config.json" not in archive.namelist():
        raise FileFormatError(f"{path}: not a lamina model file: it has no config.json (a zip or .npz of another kind?)")
    try:
        config = json.loads(_member(archive, "config.json", path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{path}: the model file's config.json is not valid JSON ({err}); it is corrupted") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise FileFormatError(f"{path}: not a lamina model file: its config.json is not in lamina's format")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: the file has model format version {version!r}, newer than this lamina reads "
            f"({FORMAT_VERSION}); upgrade lamina (it was written by lamina {config.get('lamina_version')})"
        )
    return config


def _array(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    data = _member(archive, name, path)
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise FileFormatError(f"{path}: the array {name!r} is corrupted ({err})") from None
    if array.dtype.kind not in "biuf":
        raise FileFormatError(f"{path}: the array {name!r} has dtype {array.dtype}, not a number type")
    return array


@define(eq=False)
class SavedModel:
    """What a model file holds, rebuilt: the layers with their weights and buffers, and what
    training left (loss, metrics, optimizer with its state, generator state, progress)."""

    layers: list[Layer]
    input_shape: tuple[int, ...] | None
    input_dtype: np.dtype | None
    loss: Loss | None
    metrics: list[Metric]
    optimizer: Optimizer | None
    rng_state: dict[str, Any] | None
    progress: dict[str, Any] | None


def read_model(path: str | os.PathLike[str]) -> SavedModel:
    """Rebuild what a file written by `Model.save` holds; nothing in the file is executed."""
    path = Path(path)
    with _open(path) as archive:
        config = _config(archive, path)
        try:
            return _rebuild(archive, config, path)
        except (LaminaError, FileNotFoundError):
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError, RecursionError) as err:
            raise FileFormatError(
                f"{path}: the model file is malformed ({type(err).__name__}: {err}); it is corrupted "
                "or was not written by lamina"
            ) from None


# A file's claims are checked before they are believed: a forged input shape must not make
# the loader allocate gigabytes.
MAX_INPUT_VALUES = 10**8


def _rebuild(archive: zipfile.ZipFile, config: dict[str, Any], path: Path) -> SavedModel:
    layers = [build_plugin(record, f"{path}: layers[{i}]") for i, record in enumerate(config["layers"])]
    if not layers:
        raise ValueError("the file lists no layers")
    shape = dtype = None
    if config.get("input_shape") is not None:
        shape = tuple(int(n) for n in config["input_shape"])
        dtype = np.dtype(config["input_dtype"])
        if dtype.kind not in "biuf":
            raise ValueError(f"input_dtype {dtype} is not a number type")
        if any(n < 0 for n in shape) or np.prod(shape, dtype=np.float64) > MAX_INPUT_VALUES:
            raise FileFormatError(f"{path}: the input shape {shape} in the file is not plausible; it is corrupted")
        try:
            _build(layers, np.zeros((1, *shape), dtype=dtype))
        except MemoryError:
            raise FileFormatError(f"{path}: the layers the file describes are too large to build; it is corrupted") from None
    params = named_parameters(layers)
    _fill(archive, path, "weight", config["weights"], {name: p.value for name, p in params.items()})
    _fill(archive, path, "buffer", config.get("buffers", {}), named_buffers(layers))
    loss = build_plugin(config["loss"], f"{path}: loss") if "loss" in config else None
    metrics = [build_plugin(r, f"{path}: metrics[{i}]") for i, r in enumerate(config.get("metrics", []))]
    optim = _restore_optimizer(archive, config["optimizer"], params, path) if "optimizer" in config else None
    rng_state = config.get("rng_state")
    if rng_state is not None and not isinstance(rng_state, dict):
        raise FileFormatError(f"{path}: the random generator state in the file is invalid (not a table)")
    return SavedModel(layers, shape, dtype, loss, metrics, optim, rng_state, config.get("progress"))


def restore_generator(saved: SavedModel, path: str | os.PathLike[str]) -> None:
    """Put lamina's generator where the file's training left it (for an exact resume)."""
    if saved.rng_state is None:
        return
    try:
        rng().bit_generator.state = saved.rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise FileFormatError(f"{path}: the random generator state in the file is invalid ({err})") from None


def _build(layers: list[Layer], x: np.ndarray) -> None:
    """Run one input through the layers in inference mode, so that each builds its parameters."""
    for layer in layers:
        layer.training = False
        x = layer(x)
    for layer in layers:
        layer.release()


def _fill(archive: zipfile.ZipFile, path: Path, kind: str, saved: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Copy the file's weights (or buffers) into the freshly built layers' arrays, in place,
    after checking that the file names exactly these arrays, with these shapes."""
    if set(saved) != set(arrays):
        raise FileFormatError(
            f"{path}: the file's {kind}s ({', '.join(saved) or 'none'}) do not fit the layers it "
            f"describes ({', '.join(arrays) or 'none'}); it is corrupted, or a plugin changed"
        )
    for name, target in arrays.items():
        array = _array(archive, f"{kind}s/{name}.npy", path)
        if array.shape != target.shape:
            raise FileFormatError(f"{path}: {kind} {name!r} has shape {array.shape}, the layer needs {target.shape}")
        target[...] = array


def _restore_optimizer(archive: zipfile.ZipFile, record: dict[str, Any], params: dict[str, Any], path: Path) -> Any:
    optim = build_plugin(record, f"{path}: optimizer")
    optim.iterations = int(record["iterations"])
    for name, entry in record["state"].items():
        state = optim.state_for(params[name])
        for key, item in entry.items():
            if "array" in item:
                state[key] = _array(archive, item["array"], path).astype(params[name].value.dtype, copy=False)
            else:
                state[key] = from_json(item["value"], f"{path}: optimizer state")
    return optim
