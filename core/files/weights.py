"""Weights files: a table of named arrays, as safetensors (how the ecosystem shares weights) or
.npz, chosen by the file's suffix; read and written with numpy alone.

    >>> lamina.write_weights("w.safetensors", {"0.weight": np.ones((2, 3), np.float32)})
    >>> lamina.read_weights("w.safetensors")["0.weight"].shape
    (2, 3)

Both formats hold the same dtypes (bool, uint8, int8 to int64, float16 to float64; a
safetensors file's BF16 is read as float32). Reading is bounded like a model file: a stranger's
file is checked before anything it declares is allocated (`lamina.files.safetensors`,
`lamina.files.arrays`), and every failure is a FileFormatError naming it. Writes are atomic.
Metadata (a table of strings) goes into a safetensors header; an .npz has no place for it and
refuses it.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lamina.checks import describe, printable
from lamina.errors import ArgumentError
from lamina.files.arrays import read_npz
from lamina.files.atomic import atomic_write
from lamina.files.safetensors import METADATA, little_endian, read_safetensors, writable, write_safetensors

SUFFIXES = (".safetensors", ".npz")


def read_weights(path: str | os.PathLike[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """{name: array} of the weights file `path` (.safetensors or .npz), within the loading
    budget: `max_bytes`, else LAMINA_MAX_LOAD_BYTES, else 16 GiB for all its arrays together."""
    if _suffix(path, "read_weights") == ".npz":
        return read_npz(path, max_bytes)
    return read_safetensors(path, max_bytes)


def write_weights(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray],
                  metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` ({name: numpy array or scalar}) to `path`, .safetensors or .npz by its suffix,
    atomically; `metadata` (str -> str) goes into a safetensors header (an .npz refuses it)."""
    suffix = _suffix(path, "write_weights")
    owner = f"lamina.write_weights({printable(repr(os.fspath(path)), 80)})"
    _check_tensors(tensors, owner, suffix)
    if metadata is not None:
        _check_metadata(metadata, owner, suffix)
    # row-major and little-endian in both formats; a numpy scalar is a 0-d array
    arrays = {name: little_endian(np.asarray(array)) for name, array in tensors.items()}
    if suffix == ".npz":
        _write_npz(path, arrays)
    else:
        write_safetensors(path, arrays, metadata)


def _suffix(path: str | os.PathLike[str], function: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"lamina.{function}(path={describe(path)}): path must be a str or a Path, e.g. "
                            "'model.safetensors'")
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ArgumentError(
            f"lamina.{function}({printable(repr(os.fspath(path)), 80)}): the suffix {suffix or '(none)'!r} is "
            f"not a weights file's; use {' or '.join(SUFFIXES)}, e.g. 'model.safetensors'"
        )
    return suffix


def _check_tensors(tensors: object, owner: str, suffix: str) -> None:
    """Names that round-trip (text, valid UTF-8) and numpy arrays of a dtype both formats hold."""
    if not isinstance(tensors, Mapping):
        raise ArgumentError(f"{owner}: tensors must be a dict of names and numpy arrays, got {describe(tensors)}; "
                            "e.g. model.state_dict()")
    if not tensors and suffix == ".npz":
        raise ArgumentError(f"{owner}: tensors is empty, and an .npz of no arrays is not a weights file lamina "
                            "reads; write at least one array, or a .safetensors file")
    for name, array in tensors.items():
        _check_text(name, f"{owner}: the tensor name", "a tensor name")
        shown = printable(repr(name), 80)
        if name == METADATA:
            raise ArgumentError(f"{owner}: the tensor name {METADATA!r} is reserved for a safetensors file's "
                                "metadata; rename the tensor")
        if suffix == ".npz" and "\x00" in name:
            raise ArgumentError(f"{owner}: the tensor name {shown} holds a null character, which a zip member's "
                                "name cannot; rename the tensor, or write a .safetensors file")
        if not isinstance(array, (np.ndarray, np.generic)):
            raise ArgumentError(f"{owner}: the tensor {shown} is {describe(array)}, not a numpy array; "
                                "pass np.asarray(value)")
        if writable(np.asarray(array)) is None:
            raise ArgumentError(
                f"{owner}: the tensor {shown} has dtype {array.dtype}, which a weights file does not hold (it holds "
                f"bool, uint8, int8, int16, int32, int64, float16, float32, float64); convert it, e.g. "
                f"array.astype(np.float32)"
            )


def _check_metadata(metadata: object, owner: str, suffix: str) -> None:
    if not isinstance(metadata, Mapping):
        raise ArgumentError(f"{owner}: metadata must be a dict of str to str, got {describe(metadata)}; "
                            "e.g. {'format': 'pt'}")
    if suffix == ".npz" and metadata:
        raise ArgumentError(f"{owner}: an .npz weights file has no place for metadata; write a .safetensors file, "
                            "or leave metadata out")
    for key, value in metadata.items():
        _check_text(key, f"{owner}: a metadata key", "a metadata key")
        _check_text(value, f"{owner}: the metadata {printable(repr(key), 80)}", "a metadata value")


def _check_text(text: object, what: str, kind: str) -> None:
    if not isinstance(text, str):
        raise ArgumentError(f"{what} is {describe(text)}, not a str; {kind} is text, e.g. str(value)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ArgumentError(f"{what} {printable(repr(text), 80)} is not valid Unicode (a lone surrogate); "
                            f"{kind} must encode as UTF-8") from None


def _write_npz(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray]) -> None:
    """What np.savez writes (stored members NAME.npy, never pickled), for any names: np.savez
    takes names as keywords, so 'file' or 'allow_pickle' would not reach it as tensors."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in tensors.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    atomic_write(path, buffer.getvalue())

