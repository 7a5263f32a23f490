"""The safetensors format, read and written with numpy alone.

A file is an 8-byte little-endian header length N, N bytes of a UTF-8 JSON header, then the
byte buffer. The header is an object: per tensor `{"dtype": "F32", "shape": [2, 3],
"data_offsets": [begin, end]}` (offsets into the buffer), and optionally `"__metadata__"`, a
table of strings. Tensors are row-major and little-endian; together they cover the buffer
exactly, without gaps or overlaps.

Writing follows the reference implementation (the `safetensors` package) byte for byte: tensors
sorted by dtype (widest first) then name, the header compact JSON padded with spaces to a
multiple of 8 bytes. Reading a stranger's file believes nothing before checking it: the header's
length (at most 100 MB) and nesting before it is parsed, then every entry's keys and types, the
dtype, the shape against its span, the spans against the buffer, and the total against the
loading budget, all before any tensor is allocated; each tensor is then read into its own new
array, a chunk at a time. Whatever the bytes, the result is the tensors or a FileFormatError.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import IO, Any, NamedTuple

import numpy as np

from lamina.checks import MAX_NESTING, describe, json_depth, json_without_strings, printable
from lamina.errors import ArgumentError, FileFormatError
from lamina.files.arrays import reading
from lamina.files.atomic import atomic_write
from lamina.files.budget import ENVIRONMENT, max_load_bytes

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
MAX_DIMENSIONS = 32  # numpy 1.x's limit on an array's dimensions
MAX_VALUES = 2**48  # values in one tensor (its non-zero dimensions): the format's sizes are 48-bit
MAX_INTEGER_DIGITS = 20  # an offset or a dimension in the header (2**64 has 20 digits)
MAX_TENSORS = 100_000  # in one file: checkpoints are sharded in files of hundreds to thousands
MAX_HEADER_ITEMS = 5_000_000  # values in the header (',' and ':' outside strings): 10 to 40 a tensor
MAX_HEADER_STRINGS = 1_000_000  # strings in the header: 5 a tensor, and the metadata's
CHUNK_BYTES = 2**20
METADATA = "__metadata__"
KEYS = ("dtype", "shape", "data_offsets")
# What lamina reads and writes: the format's name -> numpy's (BF16 is read into float32).
DTYPES = {
    "BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"), "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
}
# Every dtype the format knows, in the reference's order: it writes the later ones first.
ORDER = ("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
         "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64")
_WRITES = {np.dtype(dtype).newbyteorder("<"): name for name, dtype in DTYPES.items() if name != "BF16"}
_CORRUPTED = "the file is corrupted, forged, or not a safetensors file"
_HOW = "write it with lamina.write_weights(path, tensors) or safetensors' save_file"


class Entry(NamedTuple):
    """One tensor the header declares, checked: where its bytes lie and what they make."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


# -- writing -------------------------------------------------------------------------------------


def write_safetensors(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` (checked by the caller: names and numpy arrays of DTYPES) as a safetensors
    file, atomically, in the bytes the reference implementation writes."""
    arrays = sorted(((name, little_endian(array)) for name, array in tensors.items()),
                    key=lambda item: (-ORDER.index(_WRITES[item[1].dtype]), item[0]))
    header: dict[str, Any] = {}
    if metadata is not None:
        header[METADATA] = dict(metadata)
    offset = 0
    for name, array in arrays:
        header[name] = {"dtype": _WRITES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the reference pads the header to a multiple of 8 bytes
    if len(text) > MAX_HEADER_BYTES:
        raise ArgumentError(f"lamina.write_weights({os.fspath(path)!r}): the header (names, shapes, metadata) takes "
                            f"{len(text):,} bytes, over the format's limit of {MAX_HEADER_BYTES:,}; shorten the "
                            "metadata or the names")
    atomic_write(path, b"".join([len(text).to_bytes(8, "little"), text, *(array.data for _, array in arrays)]))


def writable(array: np.ndarray) -> str | None:
    """The format's name for the dtype of `array`, or None when lamina does not write it."""
    return _WRITES.get(array.dtype.newbyteorder("<"))


def little_endian(array: np.ndarray) -> np.ndarray:
    """`array`, row-major and little-endian (a copy only where it is not)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(array.shape)


# -- reading -------------------------------------------------------------------------------------


def read_safetensors(path: str | os.PathLike[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """{name: array} of the safetensors file `path` (BF16 as float32), in the header's order,
    once the whole header is checked and the tensors fit in the loading budget."""
    limit = max_load_bytes(max_bytes)
    where = os.fspath(path)
    with reading(where, _HOW), open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        header = _read_header(stream, size, where)
        entries = _entries(header, where)
        _check_layout(entries, size - stream.tell(), where)
        needed = sum(_values(e) * np.dtype(_result_dtype(e.dtype)).itemsize for e in entries)
        if needed > limit:
            raise FileFormatError(
                f"{where}: its tensors would take {needed:,} bytes, over the loading limit of {limit:,} bytes. If "
                f"you trust the file, raise the limit: lamina.read_weights(path, max_bytes=...) or the environment "
                f"variable {ENVIRONMENT}"
            )
        tensors = {entry.name: _fill(stream, entry, where) for entry in sorted(entries, key=lambda e: e.begin)}
        if stream.read(1):  # the file grew while it was read
            raise FileFormatError(f"{where}: the file holds bytes past its last tensor; {_CORRUPTED}")
        return {entry.name: tensors[entry.name] for entry in entries}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `__metadata__` table of the safetensors file `path` ({} without one), its header checked."""
    where = os.fspath(path)
    with reading(where, _HOW), open(path, "rb") as stream:
        header = _read_header(stream, os.fstat(stream.fileno()).st_size, where)
        _entries(header, where)
        return dict(header.get(METADATA, {}))


def _read_header(stream: IO[bytes], size: int, where: str) -> dict[str, Any]:
    """The JSON header at the start of the file, its length and nesting checked before it is
    read and parsed; duplicate keys and NaN refused."""
    start = stream.read(8)
    if len(start) < 8:
        raise FileFormatError(f"{where}: the file has {size:,} bytes, too few for a safetensors file (8 bytes of "
                              f"header length, then the header); it is truncated or empty; {_HOW}")
    length = int.from_bytes(start, "little")
    if length > MAX_HEADER_BYTES:
        raise FileFormatError(f"{where}: its header length is {length:,} bytes, over the limit of "
                              f"{MAX_HEADER_BYTES:,}; {_CORRUPTED}")
    if 8 + length > size:
        raise FileFormatError(f"{where}: its header length is {length:,} bytes, but the file holds only "
                              f"{size - 8:,} after it; it is truncated, or {_CORRUPTED}")
    text = stream.read(length)
    if len(text) < length:
        raise FileFormatError(f"{where}: the file ends inside its header; it is truncated")
    if not text.startswith(b"{"):
        raise FileFormatError(f"{where}: its header does not start with '{{' (it starts with {text[:16]!r}); "
                              f"{_CORRUPTED}")
    _check_json_size(text, where)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FileFormatError(f"{where}: its header is not valid JSON ({printable(err, 200)}); {_CORRUPTED}") from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{where}: its header is {describe(header)}, not a JSON object; {_CORRUPTED}")
    return header


_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % (MAX_INTEGER_DIGITS + 1))


def _check_json_size(text: bytes, where: str) -> None:
    """Refuse, before parsing, a header whose parse would cost more than a real one's: more than
    MAX_HEADER_STRINGS strings (each costs the scan below), then, counted outside strings, more
    than MAX_HEADER_ITEMS values, numbers of more than 20 digits, nesting past MAX_NESTING."""
    strings = text.count(b'"') // 2  # escaped quotes too: at least the strings there are
    if strings > MAX_HEADER_STRINGS:
        raise FileFormatError(f"{where}: its header holds {strings:,} strings, over the limit of "
                              f"{MAX_HEADER_STRINGS:,} (about {MAX_TENSORS:,} tensors); {_CORRUPTED}")
    bare = json_without_strings(text)
    items = bare.count(b",") + bare.count(b":")
    if items > MAX_HEADER_ITEMS:
        raise FileFormatError(f"{where}: its header holds {items:,} values, over the limit of {MAX_HEADER_ITEMS:,} "
                              f"(about {MAX_TENSORS:,} tensors); {_CORRUPTED}")
    long = _LONG_NUMBER.search(bare)
    if long:
        raise FileFormatError(f"{where}: its header holds a number of more than {MAX_INTEGER_DIGITS} digits; "
                              f"{_CORRUPTED}")
    depth = json_depth(bare)
    if depth > MAX_NESTING:
        raise FileFormatError(f"{where}: its header nests {depth:,} levels of lists and tables, over the limit of "
                              f"{MAX_NESTING} (lamina.checks.MAX_NESTING; a safetensors header needs 3); {_CORRUPTED}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table = dict(pairs)
    if len(table) < len(pairs):  # the spec forbids duplicate keys: which one would be the tensor?
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {printable(repr(key), 80)} appears twice in one object")
            seen.add(key)
    return table


def _no_constant(text: str) -> None:
    raise ValueError(f"{text} is not JSON")


def _entries(header: dict[str, Any], where: str) -> list[Entry]:
    """Each tensor's entry, checked: exactly its three keys, a dtype lamina reads, a shape of
    sizes, and offsets spanning exactly shape x itemsize bytes; the metadata a table of strings."""
    if len(header) - (METADATA in header) > MAX_TENSORS:
        raise FileFormatError(f"{where}: its header declares {len(header) - (METADATA in header):,} tensors, over "
                              f"the limit of {MAX_TENSORS:,} in one file; {_CORRUPTED}")
    metadata = header.get(METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise FileFormatError(f"{where}: its {METADATA!r} is {describe(metadata)}, not a table of strings; "
                              f"{_CORRUPTED}")
    for text in (*header, *metadata, *metadata.values()):
        try:  # JSON's escapes can spell a lone surrogate, which is no text
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise FileFormatError(f"{where}: its header holds the name or text {printable(repr(text), 80)}, which "
                                  f"is not valid Unicode (a lone surrogate); {_CORRUPTED}") from None
    return [_entry(name, entry, where) for name, entry in header.items() if name != METADATA]


def _entry(name: str, entry: object, where: str) -> Entry:
    if isinstance(entry, dict) and len(entry) == len(KEYS) and all(key in entry for key in KEYS):
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if (type(dtype) is str and dtype in DTYPES and type(shape) is list and len(shape) <= MAX_DIMENSIONS
                and all(map(_is_size, shape)) and type(offsets) is list and len(offsets) == 2
                and all(map(_is_size, offsets))):
            values = _product(shape)
            if values is not None and offsets[1] - offsets[0] == values * DTYPES[dtype].itemsize:
                return Entry(name, dtype, tuple(shape), offsets[0], offsets[1])  # the usual case, checked quickly
    raise _entry_error(f"{where}: the tensor {printable(repr(name), 80)}", entry)


def _product(shape: list[int]) -> int | None:
    """The values of `shape`, or None when its non-zero sizes multiply past MAX_VALUES (found on
    the way: a giant shape is never multiplied out)."""
    values = 1
    for n in shape:
        values *= n or 1
        if values > MAX_VALUES:
            return None
    return 0 if 0 in shape else values


def _entry_error(what: str, entry: object) -> FileFormatError:
    """What is wrong with an entry that `_entry` did not accept."""
    if not isinstance(entry, dict) or sorted(entry) != sorted(KEYS):
        keys = sorted(map(str, entry)) if isinstance(entry, dict) else describe(entry)
        return FileFormatError(f"{what} has the entry {printable(keys, 120)}; an entry holds exactly "
                               f"{', '.join(KEYS)}; {_CORRUPTED}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not (isinstance(dtype, str) and dtype in DTYPES):
        known = "a dtype lamina does not read" if dtype in ORDER else "not a safetensors dtype"
        return FileFormatError(f"{what} has dtype {printable(describe(dtype), 80)}, {known} (lamina reads "
                               f"{', '.join(DTYPES)}); convert it, e.g. to F32, before saving")
    if not isinstance(shape, list) or not all(_is_size(n) for n in shape):
        return FileFormatError(f"{what} has the shape {printable(describe(shape), 80)}, not a list of sizes; "
                               f"{_CORRUPTED}")
    if len(shape) > MAX_DIMENSIONS:
        return FileFormatError(f"{what} has {len(shape):,} dimensions, over numpy's {MAX_DIMENSIONS}; {_CORRUPTED}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_size, offsets))):
        return FileFormatError(f"{what} has the data offsets {printable(describe(offsets), 80)}, not [begin, end]; "
                               f"{_CORRUPTED}")
    values = _product(shape)
    if values is None:
        return FileFormatError(f"{what} has the shape {printable(shape, 120)}, over {MAX_VALUES:,} values; "
                               f"{_CORRUPTED}")
    needed = values * DTYPES[dtype].itemsize
    return FileFormatError(f"{what} has shape {tuple(shape)} of {dtype}, {needed:,} bytes, but its data offsets "
                           f"[{offsets[0]:,}, {offsets[1]:,}] span {offsets[1] - offsets[0]:,}; {_CORRUPTED}")


def _is_size(value: object) -> bool:
    return type(value) is int and value >= 0


def _values(entry: Entry) -> int:
    return math.prod(entry.shape)  # checked: at most MAX_VALUES, or 0


def _check_layout(entries: list[Entry], buffer: int, where: str) -> None:
    """The tensors' spans cover the `buffer` bytes after the header exactly: nothing past its
    end, no overlap, no gap (a gap could hide another file's bytes), nothing after the last."""
    for entry in entries:
        if entry.end > buffer:
            raise FileFormatError(
                f"{where}: the tensor {printable(repr(entry.name), 80)} ends at byte {entry.end:,} of the data, but "
                f"the file holds only {buffer:,} bytes of data; it is truncated, or {_CORRUPTED}"
            )
    position, previous = 0, None
    for entry in sorted(entries, key=lambda e: (e.begin, e.end)):
        name = printable(repr(entry.name), 80)
        if entry.begin < position:
            raise FileFormatError(f"{where}: the tensor {name} (bytes {entry.begin:,} to {entry.end:,}) overlaps "
                                  f"{printable(repr(previous), 80)} (up to {position:,}); {_CORRUPTED}")
        if entry.begin > position:
            raise FileFormatError(f"{where}: {entry.begin - position:,} bytes of data before the tensor {name} "
                                  f"belong to no tensor (the tensors must cover the data without gaps); "
                                  f"{_CORRUPTED}")
        position, previous = entry.end, entry.name
    if position != buffer:
        raise FileFormatError(f"{where}: the file holds {buffer - position:,} bytes of data past its last tensor; "
                              f"{_CORRUPTED}")


def _result_dtype(dtype: str) -> np.dtype:
    return np.dtype("<f4") if dtype == "BF16" else DTYPES[dtype]


def _fill(stream: IO[bytes], entry: Entry, where: str) -> np.ndarray:
    """A new array for `entry`, filled from the stream (at the entry's first byte) a chunk at a
    time; BF16 goes through a chunk-sized buffer into float32."""
    array = np.empty(entry.shape, dtype=_result_dtype(entry.dtype))
    flat = array.reshape(-1)
    if entry.dtype == "BF16":  # bfloat16 is the upper half of a float32
        wide = flat.view("<u4")
        step = CHUNK_BYTES // 2
        for start in range(0, wide.size, step):
            half = np.empty(min(step, wide.size - start), dtype="<u2")
            _read_into(stream, half.view(np.uint8).data, entry, where)
            np.left_shift(half, 16, out=wide[start: start + half.size], dtype="<u4")
        return array
    _read_into(stream, flat.view(np.uint8).data, entry, where)
    if entry.dtype == "BOOL" and flat.view(np.uint8).max(initial=0) > 1:
        raise FileFormatError(f"{where}: the BOOL tensor {printable(repr(entry.name), 80)} holds bytes other than "
                              f"0 and 1; {_CORRUPTED}")
    return array


def _read_into(stream: IO[bytes], buffer: memoryview, entry: Entry, where: str) -> None:
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled: filled + CHUNK_BYTES])  # type: ignore[attr-defined]
        if not count:
            raise FileFormatError(f"{where}: the tensor {printable(repr(entry.name), 80)} is truncated: the file "
                                  f"ended after {filled:,} of its {len(buffer):,} bytes")
        filled += count
