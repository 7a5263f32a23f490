"""Reading model files, safely: whatever the bytes, a model or a FileFormatError naming the file.

Nothing in a file is executed (no pickle; plugins are built by registered name), and nothing
it claims is believed before it is checked against the loading budget (`lamina.files.budget`):
the zip directory's declared sizes, the JSON's size, depth and integers, the parameters the
layers would build, and each array's .npy header, read as a stream so that a member that lies
about its size costs no more than its honest size.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from attrs import define

from lamina.autodiff import no_recording
from lamina.checks import MAX_NESTING, json_depth, json_without_strings, printable
from lamina.errors import FileFormatError, LaminaError
from lamina.files.budget import Budget, Pass, loading, max_load_bytes, pass_bytes
from lamina.files.nodes import build_graph, check_graph
from lamina.files.records import build_plugin, from_json
from lamina.files.save import FORMAT, FORMAT_VERSION
from lamina.graph.network import Graph
from lamina.parameter import Parameter
from lamina.protocols.layer import Layer, building, layer_paths, metering, named_buffers, named_parameters, observing
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.seeding import private_generator, rng
from lamina.training.outputs import OutputLosses
from lamina.training.structure import Layout

MAX_CONFIG_BYTES = 64 * 2**20  # config.json: the layers' arguments, the history; never this big
MAX_INTEGER_DIGITS = 40
MAX_INPUT_VALUES = 10**8  # values in one input row, from which the layers build
NUMBER_KINDS = "biuf"


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
    metadata: dict[str, Any]
    graph: Graph | None = None  # a graph model's, its layers built (on symbolic inputs)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked config.json of a model file (for `lamina info` and `read_model`)."""
    path = Path(path)
    with _Archive(path) as archive:
        return archive.config()


def read_model(path: str | os.PathLike[str], max_bytes: int | None = None) -> SavedModel:
    """Rebuild what a file written by `Model.save` holds, within the loading budget."""
    path = Path(path)
    budget = Budget(str(path), max_load_bytes(max_bytes))
    with _Archive(path) as archive:
        config = archive.config()
        archive.check_declared(config, budget)
        try:
            with loading(budget), private_generator():  # building draws weights; not from lamina's generator
                return _rebuild(archive, config, budget)
        except LaminaError:
            raise
        except MemoryError:
            raise FileFormatError(f"{path}: the model the file describes does not fit in memory") from None
        except Exception as err:  # whatever the bytes: a file's fault is a FileFormatError
            raise FileFormatError(
                f"{path}: the model file is malformed ({type(err).__name__}: {err}); it is corrupted "
                "or was not written by lamina"
            ) from None


def restore_generator(state: dict[str, Any] | None, path: str | os.PathLike[str]) -> None:
    """Put lamina's generator where a file's training left it (only when training resumes)."""
    if state is None:
        return
    try:
        rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise FileFormatError(f"{path}: the random generator state in the file is invalid ({err})") from None


COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # the members' methods lamina reads
_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


class _Archive:
    """A model file's zip archive, opened and read with every failure a FileFormatError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _Archive:
        if not self.path.is_file():
            raise FileNotFoundError(f"no model file at {str(self.path)!r}")
        try:
            self.zip = zipfile.ZipFile(self.path)
            names = self.zip.namelist()
        except Exception as err:  # BadZipFile, OSError, EOFError, NotImplementedError, ...
            raise FileFormatError(
                f"{self.path}: not a lamina model file: it is not a zip archive ({type(err).__name__}: {err}); "
                "is it truncated, or a file of another kind?"
            ) from None
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            self.zip.close()
            raise FileFormatError(f"{self.path}: the model file has the member {repeated[0]!r} twice; "
                                  "it is corrupted or forged")
        # zipfile inflates bzip2 and lzma members with no bound on one read's output (only deflate
        # is bounded), so one small member could become gigabytes before any check; lamina writes
        # its members stored or deflated, and reads no others.
        for info in self.zip.infolist():
            if info.compress_type not in COMPRESSIONS:
                self.zip.close()
                method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
                raise FileFormatError(
                    f"{self.path}: the member {info.filename!r} is compressed with {method}; lamina reads members "
                    "stored or compressed with deflate (as lamina writes them), no other; the file was not written "
                    "by lamina, or was repacked"
                )
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def fail(self, message: str) -> FileFormatError:
        return FileFormatError(f"{self.path}: {message}")

    def _open(self, name: str) -> IO[bytes]:
        try:
            return self.zip.open(name)
        except KeyError:
            raise self.fail(f"the model file has no {name!r} member; is it truncated or corrupted?") from None
        except Exception as err:
            raise self.fail(f"cannot read {name!r} from the model file ({type(err).__name__}: {err}); "
                            "it is corrupted") from None

    def _read(self, stream: IO[bytes], size: int, name: str) -> bytes:
        try:
            return stream.read(size)
        except Exception as err:  # CRC and decompression errors, truncation
            raise self.fail(f"cannot read {name!r} from the model file ({type(err).__name__}: {err}); "
                            "it is corrupted") from None

    def config(self) -> dict[str, Any]:
        if "config.json" not in self.zip.namelist():
            raise self.fail("not a lamina model file: it has no config.json (a zip or .npz of another kind?)")
        if self.zip.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
            raise self.fail(f"its config.json declares more than {MAX_CONFIG_BYTES:,} bytes; it is corrupted or forged")
        with self._open("config.json") as stream:
            text = self._read(stream, MAX_CONFIG_BYTES + 1, "config.json")
        if len(text) > MAX_CONFIG_BYTES:
            raise self.fail(f"its config.json holds more than {MAX_CONFIG_BYTES:,} bytes; it is corrupted or forged")
        depth = json_depth(json_without_strings(text))
        if depth > MAX_NESTING:
            raise self.fail(
                f"its config.json nests {depth:,} levels of lists and tables, over the limit of {MAX_NESTING} "
                "(lamina.checks.MAX_NESTING; a composite layer inside another takes three); it is corrupted or forged"
            )
        config = _parse_json(text, self)
        _check_structure(config, self)
        return config

    def check_declared(self, config: dict[str, Any], budget: Budget) -> None:
        """Refuse early what the file declares beyond the budget: its arrays' shapes, and the
        sizes its zip directory claims for them."""
        declared = sum(
            math.prod(entry["shape"]) * _itemsize(entry["dtype"], self)
            for group in ("weights", "buffers")
            for entry in config.get(group, {}).values()
        )
        count = sum(math.prod(entry["shape"]) for entry in config.get("weights", {}).values())
        if count > budget.max_parameters:
            raise self.fail(
                f"its weights declare {count:,} parameters, over the loading limit of {budget.max_parameters:,} "
                "parameters; the file is corrupted, or describes a model this lamina will not build"
            )
        members = sum(info.file_size for info in self.zip.infolist() if info.filename != "config.json")
        for what, size in (("its weights and buffers", declared), ("its members", members)):
            if size > budget.max_bytes:
                raise self.fail(
                    f"{what} declare {size:,} bytes, over the loading limit of {budget.max_bytes:,} bytes. If you "
                    "trust the file, raise the limit: lamina.load(path, max_bytes=...) or LAMINA_MAX_LOAD_BYTES"
                )
        budget.build_bytes = 2 * declared + 2**26  # weights, their gradients, and a little room
        # Before any layer is built: every declared array is there, with a header that matches.
        for group, kind in (("weights", "weight"), ("buffers", "buffer")):
            for name, entry in config.get(group, {}).items():
                self.header(f"{kind}s/{name}.npy", tuple(entry["shape"]))

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The .npy member `name`, which must hold a numeric array of `shape`: its header is
        checked before any data is read, and exactly that much data is read."""
        with self._open(name) as stream:
            found_dtype, fortran = self._header(stream, name, shape)
            array = np.empty(shape, dtype=found_dtype, order="F" if fortran else "C")
            filled = self._read_into(stream, array.reshape(-1, order="A").view(np.uint8).data, name)
            if filled != array.nbytes:
                raise self.fail(f"the array {name!r} is truncated: {filled:,} of {array.nbytes:,} bytes")
            if self._read(stream, 1, name):
                raise self.fail(f"the array {name!r} holds more data than its header says; it is corrupted or forged")
        return array

    def header(self, name: str, shape: tuple[int, ...]) -> None:
        """Check the .npy member `name` without reading its data: present, numeric, of `shape`,
        and declared (in the zip directory) large enough to hold it."""
        with self._open(name) as stream:
            found_dtype, _ = self._header(stream, name, shape)
        needed = math.prod(shape) * found_dtype.itemsize
        if self.zip.getinfo(name).file_size < needed:
            raise self.fail(f"the array {name!r} declares fewer bytes than its {needed:,} bytes of data; "
                            "it is truncated")

    def _header(self, stream: IO[bytes], name: str, shape: tuple[int, ...]) -> tuple[np.dtype, bool]:
        """Read a .npy header from the stream; (dtype, Fortran order) once it is checked."""
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f".npy format version {version} (lamina writes 1.0 and 2.0)")
        except Exception as err:
            raise self.fail(f"the array {name!r} is corrupted ({type(err).__name__}: {err})") from None
        found_shape, fortran, found_dtype = header
        if found_dtype.kind not in NUMBER_KINDS or found_dtype.hasobject:
            raise self.fail(f"the array {name!r} has dtype {found_dtype}, not a number type; it is corrupted or forged")
        if tuple(found_shape) != tuple(shape):
            raise self.fail(
                f"the array {name!r} has shape {tuple(found_shape)}, the layer needs {tuple(shape)}; it is "
                "corrupted, or a plugin changed"
            )
        return found_dtype, bool(fortran)

    def _read_into(self, stream: IO[bytes], buffer: memoryview, name: str) -> int:
        """Fill `buffer` from the stream (no second copy of the data); the bytes read."""
        filled = 0
        try:
            while filled < len(buffer):
                count = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
                if not count:
                    break
                filled += count
        except Exception as err:
            raise self.fail(f"cannot read {name!r} from the model file ({type(err).__name__}: {err}); "
                            "it is corrupted") from None
        return filled


def _parse_json(text: bytes, archive: _Archive) -> Any:
    # json's parser refuses nesting deeper than the recursion limit with RecursionError, and
    # integers go through _bounded_int: a 5000-digit number is refused, not converted.
    try:
        return json.loads(text.decode("utf-8"), parse_int=_bounded_int)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise archive.fail(f"the model file's config.json is not valid JSON ({err}); it is corrupted") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INTEGER_DIGITS})")
    return int(text)


def _itemsize(dtype: object, archive: _Archive) -> int:
    try:
        found = np.dtype(str(dtype))
    except TypeError:
        raise archive.fail(f"an array's dtype {dtype!r} is not a number type; it is corrupted") from None
    if found.kind not in NUMBER_KINDS or found.hasobject:
        raise archive.fail(f"an array's dtype {dtype!r} is not a number type; it is corrupted")
    return found.itemsize


def _check_structure(config: Any, archive: _Archive) -> None:
    """Every field lamina reads has the type it must have, before any of it is used."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise archive.fail("not a lamina model file: its config.json is not in lamina's format")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise archive.fail(
            f"the file has model format version {version!r}, newer than this lamina reads ({FORMAT_VERSION}); "
            f"upgrade lamina (it was written by lamina {str(config.get('lamina_version'))[:40]!r})"
        )
    problems = []
    layers = config.get("layers", [])  # a missing key is reported when it is read
    if not (isinstance(layers, list) and all(isinstance(r, dict) for r in layers)):
        problems.append("'layers' is not a list of tables")
    for group in ("weights", "buffers"):
        entries = config.get(group, {})
        if not isinstance(entries, dict) or not all(_is_array_entry(e) for e in entries.values()):
            problems.append(f"{group!r} is not a table of arrays with a shape and a dtype")
    weights = config.get("weights", {})
    if isinstance(weights, dict) and not all(isinstance(e.get("trainable", True), bool) for e in weights.values()
                                             if isinstance(e, dict)):
        problems.append("a weight's 'trainable' is not true or false")
    frozen = config.get("frozen_layers", [])
    if not (isinstance(frozen, list) and all(isinstance(path, str) for path in frozen)):
        problems.append("'frozen_layers' is not a list of layer paths")
    plugins = config.get("plugins", {})
    if not isinstance(plugins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in plugins.items()):
        problems.append("'plugins' is not a table of package names and versions")
    shape = config.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and all(_is_size(n) for n in shape)):
        problems.append("'input_shape' is not a list of sizes")
    metadata = config.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.append("'metadata' is not a table")
    progress = config.get("progress")
    if progress is not None and not _is_progress(progress):
        problems.append("'progress' is not a table of the epochs done and the history")
    optimizer = config.get("optimizer")
    if optimizer is not None and not _is_optimizer(optimizer):
        problems.append("'optimizer' is not an optimizer with its steps and state")
    problems += _architecture_problems(config)
    if problems:
        raise archive.fail(f"its config.json is malformed: {'; '.join(problems)}; it is corrupted or forged")


def _architecture_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with the fields of format version 2: "order", "graph" (checked in full
    when it is built) and "output_losses"."""
    problems = []
    order = config.get("order")
    if order is not None and not (isinstance(order, list) and order and all(_is_size(i) for i in order)):
        problems.append("'order' is not a list of layer indices")
    if "graph" in config and ("order" in config or config.get("input_shape") is not None):
        problems.append("'graph' comes with 'order' or 'input_shape', which are for chains")
    losses = config.get("output_losses")
    if losses is not None and not (
            isinstance(losses, dict) and isinstance(losses.get("losses"), dict) and losses["losses"]
            and all(isinstance(r, dict) for r in losses["losses"].values())
            and isinstance(losses.get("loss_weights"), dict) and set(losses["loss_weights"]) == set(losses["losses"])
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
                    for w in losses["loss_weights"].values())):
        problems.append("'output_losses' is not a table of losses and of their weights by output name")
    if losses is not None and "loss" in config:
        problems.append("it has both 'loss' and 'output_losses'")
    return problems


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_array_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("shape"), list)
        and all(_is_size(n) for n in entry["shape"])
        and isinstance(entry.get("dtype"), str)
    )


def _is_progress(progress: object) -> bool:
    if not (isinstance(progress, dict) and _is_size(progress.get("epoch"))):
        return False
    history = progress.get("history", {})
    return isinstance(history, dict) and all(
        isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        for values in history.values()
    )


def _is_optimizer(record: object) -> bool:
    """Steps taken, and per parameter a table of state: arrays (named members) and numbers."""
    return (
        isinstance(record, dict)
        and _is_size(record.get("iterations"))
        and isinstance(record.get("state"), dict)
        and all(isinstance(entry, dict) and all(_is_state_item(item) for item in entry.values())
                for entry in record["state"].values())
    )


def _is_state_item(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    if "array" in item:
        return isinstance(item["array"], str)
    value = item.get("value")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- rebuilding ----------------------------------------------------------------------------------------


def _rebuild(archive: _Archive, config: dict[str, Any], budget: Budget) -> SavedModel:
    path = archive.path
    layers = [build_plugin(record, f"{path}: layers[{i}]") for i, record in enumerate(config["layers"])]
    if not layers:
        raise archive.fail("the file lists no layers")
    shape = dtype = graph = None
    if "graph" in config:
        check_graph(config["graph"], len(layers), str(path), budget.max_bytes)
        graph = build_graph(config["graph"], layers, Pass.for_load(str(path), budget.max_bytes), str(path))
    elif "order" in config:
        layers = [_placed(archive, layers, i, index) for i, index in enumerate(config["order"])]
    if config.get("input_shape") is not None:
        shape = tuple(config["input_shape"])
        dtype = np.dtype(str(config.get("input_dtype")))
        if dtype.kind not in NUMBER_KINDS:
            raise archive.fail(f"its input dtype {dtype} is not a number type")
        if math.prod(shape) > MAX_INPUT_VALUES:
            raise archive.fail(f"the input shape {shape} in the file is not plausible; it is corrupted")
        # The pass's own limit first: a sample of 10^8 float128 values is refused before it exists.
        meter = Pass.for_load(str(path), budget.max_bytes)
        meter.reserve(pass_bytes((1, *shape), dtype), f"the sample input of shape {(1, *shape)} ({dtype})")
        budget.charge(shape, dtype, "the sample input", "other")
        _build(layers, np.zeros((1, *shape), dtype=dtype), meter)
    params = named_parameters(layers)
    _fill(archive, "weight", config.get("weights", {}), {name: p.value for name, p in params.items()})
    _fill(archive, "buffer", config.get("buffers", {}), named_buffers(layers))
    _restore_frozen(archive, config, layers, params)
    loss = build_plugin(config["loss"], f"{path}: loss") if "loss" in config else None
    if "output_losses" in config:
        loss = _output_losses(archive, config["output_losses"], graph)
    metrics = [build_plugin(r, f"{path}: metrics[{i}]") for i, r in enumerate(config.get("metrics", []))]
    optim = _restore_optimizer(archive, config["optimizer"], params, budget) if "optimizer" in config else None
    rng_state = config.get("rng_state")
    if rng_state is not None:  # checked on a generator of its own: loading leaves lamina's alone
        try:
            type(rng().bit_generator)().state = rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as err:
            raise archive.fail(f"the random generator state in the file is invalid ({err})") from None
    return SavedModel(layers, shape, dtype, loss, metrics, optim, rng_state, config.get("progress"),
                      config.get("metadata", {}), graph)


def _placed(archive: _Archive, layers: list[Layer], place: int, index: int) -> Layer:
    """The layer at `place` of a chain whose "order" names `index` of the file's layers."""
    if index >= len(layers):
        raise archive.fail(f"its config.json order[{place}] is {index}, but the file has {len(layers)} layers "
                           f"(indices 0 to {len(layers) - 1}); it is corrupted or forged")
    return layers[index]


def _output_losses(archive: _Archive, record: dict[str, Any], graph: Graph | None) -> OutputLosses:
    """The loss of a model with several outputs: one loss (and weight) per output, by name."""
    if graph is None:
        raise archive.fail("its config.json has 'output_losses' but no 'graph'; it is corrupted or forged")
    layout = Layout(graph.output_names, graph.output_format, "output")
    for name in record["losses"]:
        if name not in layout.names:
            raise archive.fail(f"its config.json output_losses names the output {printable(name, 60)!r}, which the "
                               f"graph does not have ({layout.listed()}); it is corrupted or forged")
    losses = {name: build_plugin(r, f"{archive.path}: output_losses.losses[{name!r}]")
              for name, r in record["losses"].items()}
    return OutputLosses(losses, {name: float(w) for name, w in record["loss_weights"].items()}, layout)


def _build(layers: list[Layer], x: np.ndarray, meter: Pass) -> None:
    """Run one input through the layers in inference mode, so that each builds its parameters
    (a layer that adapts to data builds without its statistics: the file's buffers hold them).

    The pass is metered: every layer's output (sublayers too) and what layers reserve are charged
    to `meter`, which refuses the file past its bytes or its time; each top-level layer drops what
    it kept for backward once called, so that the pass holds one layer's arrays at a time."""
    with no_recording(), building(), metering(meter), observing(meter.observe):
        for i, layer in enumerate(layers):
            meter.begin(f"layers[{i}] {printable(repr(layer), 80)}", x.nbytes)
            layer.training = False
            x = layer(x)
            layer.release()


def _fill(archive: _Archive, kind: str, saved: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Copy the file's weights (or buffers) into the freshly built layers' arrays, in place,
    after checking that the file names exactly these arrays, with these shapes."""
    if set(saved) != set(arrays):
        raise archive.fail(
            f"the file's {kind}s ({', '.join(saved) or 'none'}) do not fit the layers it describes "
            f"({', '.join(arrays) or 'none'}); it is corrupted, or a plugin changed"
        )
    for name, target in arrays.items():
        target[...] = archive.array(f"{kind}s/{name}.npy", target.shape)


def _restore_frozen(archive: _Archive, config: dict[str, Any], layers: list[Layer],
                    params: dict[str, Parameter]) -> None:
    """The frozen flags, as saved: each layer's `trainable` and each parameter's (a file written
    before lamina kept them has none: everything trains)."""
    paths, frozen = layer_paths(layers), set(config.get("frozen_layers", []))
    for path in frozen:
        if path not in paths:
            raise archive.fail(f"its frozen layer {printable(path, 80)!r} is not one of its layers; it is corrupted")
    if frozen:
        for path, layer in paths.items():  # outer layers first: each inner one then sets its own flag
            layer.trainable = path not in frozen
    for name, entry in config.get("weights", {}).items():  # last: a parameter's own flag is the one saved
        params[name].trainable = entry.get("trainable", True)


def _restore_optimizer(archive: _Archive, record: dict[str, Any], params: dict[str, Parameter], budget: Budget) -> Any:
    path = archive.path
    optim = build_plugin(record, f"{path}: optimizer")
    optim.iterations = int(record["iterations"])
    for name, entry in record["state"].items():
        if name not in params:
            raise archive.fail(f"the optimizer has state for {name!r}, which the model does not have")
        param = params[name]
        state = optim.state_for(param)
        for key, item in entry.items():
            if "array" in item:
                budget.charge(param.shape, param.value.dtype, f"the optimizer's {key} for {name}", "other")
                state[key] = archive.array(str(item["array"]), param.shape).astype(param.value.dtype, copy=False)
            elif "value" in item:
                state[key] = from_json(item["value"], f"{path}: optimizer state")
            else:
                raise archive.fail(f"the optimizer's state {name}.{key} holds neither an array nor a value")
    return optim
