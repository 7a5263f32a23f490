"""What `lamina evaluate` and `lamina predict` read: a dataset's or a data file's test rows, an
input file's rows, a folder of inputs read as the model's training data was.

Files are strangers' data: .npy and .npz go through lamina.files.arrays (headers checked, memory
bounded), other files through the dataset that reads their suffix with its errors named, and a
model file's metadata["inputs"] is read as data with documented keys, never passed on as options.
"""
from __future__ import annotations

import inspect
import math
import reprlib
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

import lamina
from lamina.errors import ArgumentError, FileFormatError, LaminaError
from lamina.files import arrays
from lamina.registry import get_registry
from lamina.training.structure import rows_of


def _reader(path: Path) -> str:
    """The registered dataset that reads files with `path`'s suffix (its `suffixes`)."""
    datasets = get_registry().plugins("dataset")
    suffix = path.suffix.lower()
    readers = [info for info in datasets if suffix and suffix in getattr(info.cls, "suffixes", ())]
    if len(readers) == 1:
        return readers[0].qualified_name
    if readers:
        names = ", ".join(info.qualified_name for info in readers)
        raise ArgumentError(f"{path}: several datasets read {suffix} files ({names}); "
                            "name one with --data NAME --data-option path=...")
    known = ", ".join(sorted(f"{s} ({info.name})" for info in datasets for s in getattr(info.cls, "suffixes", ())))
    raise ArgumentError(f"{path}: no installed dataset reads {suffix or 'suffix-less'} files; these do: {known}")


def has_reader(path: Path) -> bool:
    try:
        _reader(path)
    except ArgumentError:
        return False
    return True


def _is_file(spec: str) -> bool:
    path = Path(spec)
    return path.exists() or any(path.suffix.lower() in getattr(info.cls, "suffixes", ())
                                for info in get_registry().plugins("dataset"))


def scored_data(
    spec: str, target: str | None, options: dict[str, object], all_rows: bool, metadata: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """(x, y, rows): a registered dataset's test part, or a data file's test part as `lamina
    train` splits it with the same options (every row with `all_rows`); `rows` says which rows.

    A model trained by `lamina train` keeps its dataset's split options (metadata["dataset"]);
    a file read by that same dataset is split with them unless --data-option says otherwise."""
    path = Path(spec)
    if not _is_file(spec):
        if target is not None:
            raise ArgumentError(f"--target applies to data files, not to the dataset {spec!r}")
        source = get_registry().build("dataset", spec, **options)
        if all_rows:
            x, y = source.arrays()
            return x, y, {"part": "all", "scored": rows_of(x), "total": rows_of(x), "data": spec}
        x_train, _, x_test, y_test = source.load()  # x may be a dict by input name (digit_pairs)
        rows = {"part": "test", "scored": rows_of(x_test), "total": rows_of(x_train) + rows_of(x_test), "data": spec}
        return x_test, y_test, rows | _split_options(source)
    kind = _reader(path)
    options = {**options, "path": str(path)}
    if target is not None:
        options["target"] = int(target) if target.lstrip("-").isdigit() else target
    classes, trained = metadata.get("classes"), metadata.get("dataset")
    if isinstance(classes, list) and "classes" not in options and _takes(kind, "classes"):
        options["classes"] = classes  # the model's labels: a file that lacks a class keeps them
    if isinstance(trained, dict) and _same_dataset(trained.get("name"), kind):
        options = {key: value for key, value in trained.items() if key in ("test_split", "seed")} | options
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {spec!r}")
    _check_arrays(path)
    targets = options.get("target")
    if isinstance(targets, str) and Path(targets).is_file():
        _check_arrays(Path(targets))  # npy's targets are a second .npy file
    reader = get_registry().build("dataset", kind, **options)
    if all_rows:
        with arrays.reading(spec, _how(path)):
            x, y = reader.arrays()
        if y is None:
            raise ArgumentError(f"{spec}: the file has no target to score against; "
                                "name its column or array with --target")
        return x, y, {"part": "all", "scored": len(x), "total": len(x), "data": spec}
    with arrays.reading(spec, _how(path)):
        x_train, _, x_test, y_test = reader.load()
    if len(x_test) == 0:
        raise ArgumentError(
            f"{spec}: its test split is empty ({_shown(_split_options(reader))}); score every row with --all-rows, "
            "or hold rows out with e.g. --data-option test_split=0.2"
        )
    rows = {"part": "test", "scored": len(x_test), "total": len(x_train) + len(x_test), "data": spec}
    return x_test, y_test, rows | _split_options(reader)


def _check_arrays(path: Path) -> None:
    """A .npy or .npz data file checked before a dataset reads it with np.load: its headers
    against its size and the input limit (lamina.files.arrays), so that what np.load allocates
    is what the file holds."""
    if path.suffix.lower() in (".npy", ".npz"):
        arrays.check(path)


def _how(path: Path) -> str:
    """How to write a good data file like `path`, for a message about a bad one."""
    if path.suffix.lower() in (".npy", ".npz"):
        return "write it with np.save(path, array) (np.savez(path, x=..., y=...) for .npz) of numeric arrays"
    return f"check that it is a {path.suffix or 'data'} file of the kind its dataset reads"


def _same_dataset(name: object, kind: str) -> bool:
    """Whether the registered dataset `name` (from a model file) is the one named `kind`."""
    try:
        return (isinstance(name, str)
                and get_registry().get("dataset", name).cls is get_registry().get("dataset", kind).cls)
    except LaminaError:
        return False


def _takes(kind: str, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(get_registry().get("dataset", kind).cls).parameters
    except (TypeError, ValueError):
        return False


def _split_options(reader: object) -> dict[str, Any]:
    """{"test_split": 0.2, "seed": 0}: the options that pick a dataset's test rows, as it has them."""
    return {key: getattr(reader, key) for key in ("test_split", "seed") if hasattr(reader, key)}


def _shown(options: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in options.items())


def rows_line(rows: dict[str, Any]) -> str:
    """What `lamina evaluate` scores, e.g. `scoring the test split: 30 of 150 rows of iris.csv ...`."""
    name = Path(rows["data"]).name if _is_file(rows["data"]) else rows["data"]
    if rows["part"] == "all":
        return f"scoring all {rows['scored']} rows of {name} (no split)"
    split = _shown({key: rows[key] for key in ("test_split", "seed") if key in rows})
    how = f", the rows lamina train holds out with {split}" if split else ""
    return f"scoring the test split: {rows['scored']} of {rows['total']} rows of {name}{how} (--all-rows: every row)"


def data_options(pairs: list[str] | None) -> dict[str, object]:
    """--data-option KEY=VALUE pairs; VALUE is read as TOML (numbers, true/false, "strings",
    [lists]) as in a `lamina train` config, and as plain text when it is not valid TOML."""
    options: dict[str, object] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ArgumentError(f"--data-option {pair!r}: expected KEY=VALUE, e.g. --data-option test_split=0.25")
        try:
            options[key] = tomllib.loads(f"value = {value.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            options[key] = value.strip()
    return options


def input_rows(spec: str) -> np.ndarray:
    """The rows of an input file: .npy and .npz read by lamina.files.arrays (headers checked,
    memory bounded), any other kind by the dataset that reads its suffix."""
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no input file at {spec!r}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return lamina.checks.as_floating(arrays.read_npy(path), "x", "lamina predict")
    if suffix == ".npz":
        if not arrays.is_npz(path):
            raise FileFormatError(f"{spec}: the file holds one .npy array, not an .npz archive of named arrays; "
                                  "rename it to .npy, or write it with np.savez(path, x=array)")
        found = arrays.read_npz(path)
        if "x" not in found and len(found) != 1:
            raise ArgumentError(f"{spec}: no array named 'x'; it has {', '.join(map(repr, found))}. Save the inputs "
                                "as x (np.savez(path, x=inputs)) or alone in the file")
        x = found["x"] if "x" in found else next(iter(found.values()))
        return lamina.checks.as_floating(x, "x", "lamina predict").astype(np.float32, copy=False)
    reader = get_registry().build("dataset", _reader(path), path=str(path), target=None)
    with arrays.reading(spec, _how(path)):
        x, _ = reader.arrays()
    return x


# What a model file's metadata["inputs"] may say about reading a folder for `lamina predict`:
# the dataset (one that reads folders) and these of its options, each checked; nothing else.
FOLDER_KEYS = ("dataset", "options")
FOLDER_OPTIONS = ("image_size", "color_mode")
MAX_IMAGE_PIXELS = 4096 * 4096  # height x width of image_size in a model file's metadata
FOLDER_BATCH_BYTES = 2**28  # float32 bytes of one batch of a folder's inputs, without --batch-size


def folder_inputs(model: lamina.Model, folder: Path, source: str) -> tuple[Any, list[str]]:
    """The inputs under `folder`, read as the model's training data was (its metadata["inputs"]
    names the dataset and its options, checked as data: FOLDER_KEYS, FOLDER_OPTIONS), or by the
    one installed dataset that reads folders."""
    spec = model.metadata.get("inputs")
    if spec is not None:
        name, options = _folder_spec(model, spec, source)
        try:
            reader = get_registry().build("dataset", name, path=str(folder), **options)
        except LaminaError as err:
            raise FileFormatError(f"{source}: metadata['inputs']: {err}") from None
    else:
        readers = [info for info in get_registry().plugins("dataset") if getattr(info.cls, "reads_folders", False)]
        if len(readers) != 1:
            names = ", ".join(info.qualified_name for info in readers) or "none is installed"
            raise ArgumentError(
                f"{folder}: a folder of inputs needs the dataset that read the model's training data, and the model "
                f"file does not name one; the datasets that read folders: {names}"
            )
        reader = get_registry().build("dataset", readers[0].qualified_name, path=str(folder))
    return reader.inputs()


def _forged(source: str, key: str, problem: str) -> FileFormatError:
    return FileFormatError(
        f"{source}: metadata['inputs']{key}: {problem}; the file is corrupted or forged, or its metadata was set by "
        "hand: set it from the dataset the model was trained on (model.metadata.update(data.metadata()))"
    )


def _folder_spec(model: lamina.Model, spec: object, source: str) -> tuple[str, dict[str, Any]]:
    """(dataset name, options) from a model file's metadata["inputs"], every key checked."""
    if not isinstance(spec, dict):
        raise _forged(source, "", f"expected a table {{'dataset': ..., 'options': {{...}}}}, got {reprlib.repr(spec)}")
    for key in spec:
        if key not in FOLDER_KEYS:
            raise _forged(source, f"[{reprlib.repr(key)}]",
                          f"not a key lamina reads (those are {', '.join(FOLDER_KEYS)})")
    name = spec.get("dataset")
    if not isinstance(name, str):
        raise _forged(source, "['dataset']", f"expected the name of a dataset, got {reprlib.repr(name)}")
    try:
        info = get_registry().get("dataset", name)
    except LaminaError as err:
        raise FileFormatError(f"{source}: metadata['inputs']['dataset']: {err}") from None
    if not getattr(info.cls, "reads_folders", False):
        readers = [i.qualified_name for i in get_registry().plugins("dataset")
                   if getattr(i.cls, "reads_folders", False)]
        raise _forged(source, "['dataset']", f"{reprlib.repr(name)} does not read folders of inputs (those that do: "
                      f"{', '.join(readers) or 'none is installed'})")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise _forged(source, "['options']", f"expected a table of options, got {reprlib.repr(options)}")
    try:
        takes = set(inspect.signature(info.cls).parameters)
    except (TypeError, ValueError):
        takes = set()
    for key in options:
        if key not in FOLDER_OPTIONS or key not in takes:
            allowed = ", ".join(k for k in FOLDER_OPTIONS if k in takes) or "none"
            raise _forged(source, f"['options'][{reprlib.repr(key)}]",
                          f"not an option lamina passes to {info.qualified_name} (those are: {allowed})")
    if "image_size" in options:
        options = {**options, "image_size": _image_size(model, options["image_size"], source)}
    if "color_mode" in options and not isinstance(options["color_mode"], str):
        raise _forged(source, "['options']['color_mode']",
                      f"expected a string, got {reprlib.repr(options['color_mode'])}")
    return name, options


def _image_size(model: lamina.Model, value: object, source: str) -> list[int]:
    """[height, width] from a model file's metadata: whole numbers >= 1, at most MAX_IMAGE_PIXELS
    in all, and the model's own input size when it has one."""
    pair = [value, value] if isinstance(value, int) else value
    if (not isinstance(pair, list) or len(pair) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in pair)):
        raise _forged(source, "['options']['image_size']",
                      f"expected [height, width], whole numbers >= 1, got {reprlib.repr(value)}")
    if pair[0] * pair[1] > MAX_IMAGE_PIXELS:
        raise _forged(source, "['options']['image_size']",
                      f"{pair[0]} x {pair[1]} pixels, over lamina's limit of {MAX_IMAGE_PIXELS:,} pixels per image")
    shape = model.input_shape
    if shape is not None and len(shape) == 3 and tuple(shape[1:]) != tuple(pair):
        raise _forged(source, "['options']['image_size']",
                      f"{pair[0]} x {pair[1]}, but the model takes inputs of shape {tuple(shape)} "
                      f"(channels, height, width)")
    return pair


def folder_batch(inputs: Any, batch_size: int | None) -> int | None:
    """--batch-size, else as many of a folder's inputs as fit FOLDER_BATCH_BYTES (float32)."""
    if batch_size is not None:
        return batch_size
    shape = getattr(inputs, "shape", None)
    if not shape or len(shape) < 2:
        return None
    row = 4 * math.prod(int(n) for n in shape[1:])
    return max(1, min(256, FOLDER_BATCH_BYTES // max(row, 1)))
