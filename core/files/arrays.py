"""A user's .npy and .npz files (the inputs of `lamina predict` and `lamina evaluate`), read
under the rules model files are read by: only lamina's errors, and memory bounded before it
is allocated.

Every claim is checked before it is believed: a .npy header's shape x itemsize must be exactly
the bytes the file (or the zip member, as its directory declares it) holds after the header,
and all arrays together at most the loading budget's byte limit (`LAMINA_MAX_LOAD_BYTES`,
default 16 GiB). Only then is each array allocated, and filled from the file a chunk at a
time (no second copy). Zip members must be stored or deflated: CPython's zipfile inflates
bzip2 and lzma without a bound on one read. A file that is truncated, corrupted (a bad
CRC-32, a broken deflate stream) or not an array file at all is a FileFormatError naming it,
what is wrong, and how to write a good one; so is a MemoryError while reading.
"""
from __future__ import annotations

import contextlib
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

import numpy as np

from lamina.errors import FileFormatError, LaminaError
from lamina.files.budget import ENVIRONMENT, max_load_bytes

CHUNK_BYTES = 2**20  # one read from a file or a zip member
NUMBER_KINDS = "biuf"
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
_HOW = "write it with np.save(path, array) (np.savez(path, x=array) for .npz) of a numeric array"


def max_input_bytes(max_bytes: int | None = None) -> int:
    """What one input file's arrays may allocate: `max_bytes`, else LAMINA_MAX_LOAD_BYTES, else
    the loading budget's default (16 GiB)."""
    return max_load_bytes(max_bytes)


def read_npy(path: str | os.PathLike[str], max_bytes: int | None = None) -> np.ndarray:
    """The numeric array of the .npy file `path`, read in chunks once its header is checked."""
    limit = max_input_bytes(max_bytes)
    where = os.fspath(path)
    with reading(where), open(path, "rb") as stream:
        dtype, shape, fortran = _npy_header(stream, where, limit, "an .npy array")
        return _fill(stream, where, "the file", dtype, shape, fortran)


def read_npz(path: str | os.PathLike[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """{name: array} of the .npz archive `path` (np.savez's names, without ".npy"); every
    member's header and declared size are checked before any array is allocated."""
    limit = max_input_bytes(max_bytes)
    where = os.fspath(path)
    with reading(where), _archive(where) as archive:
        members = _members(archive, where, limit)
        arrays: dict[str, np.ndarray] = {}
        for info, (dtype, shape, fortran) in members.items():
            what = f"the array {info.filename!r}"
            with archive.open(info) as stream:
                _header(stream, where, what)
                arrays[info.filename[: -len(".npy")]] = _fill(stream, where, what, dtype, shape, fortran)
        return arrays


def check(path: str | os.PathLike[str], max_bytes: int | None = None) -> None:
    """Check a .npy or .npz file as `read_npy`/`read_npz` would, without reading its data:
    for a file that another reader (a dataset plugin's np.load) reads next, so that what it
    allocates is what the file holds, within the limit."""
    limit = max_input_bytes(max_bytes)
    where = os.fspath(path)
    with reading(where):
        if _magic(where) == ZIP_MAGIC:
            with _archive(where) as archive:
                _members(archive, where, limit)
            return
        with open(path, "rb") as stream:
            _npy_header(stream, where, limit, "an .npy or .npz file")


def is_npz(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts as a zip archive (an .npz) rather than as an .npy array."""
    with reading(os.fspath(path)):
        return _magic(os.fspath(path)) == ZIP_MAGIC


# -- the pieces --------------------------------------------------------------------------------------


@contextlib.contextmanager
def reading(where: str, how: str = _HOW) -> Iterator[None]:
    """Every failure while reading `where` as a FileFormatError naming it and saying `how` to
    write a good one (a missing file stays a FileNotFoundError, and lamina's own errors pass):
    also around another reader of a user's file, such as a dataset plugin."""
    try:
        yield
    except (LaminaError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except MemoryError:
        raise FileFormatError(
            f"{where}: not enough memory to read it (MemoryError); free memory, or split the file into smaller "
            f"ones ({ENVIRONMENT} bounds what one .npy or .npz file may allocate)"
        ) from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
            NotImplementedError, RuntimeError, OverflowError, KeyError, UnicodeError) as err:
        raise FileFormatError(f"{where}: the file is corrupted or truncated ({type(err).__name__}: {err}); {how}") \
            from None


def _magic(where: str) -> bytes:
    with open(where, "rb") as stream:
        start = stream.read(len(NPY_MAGIC))
    if not start:
        raise FileFormatError(f"{where}: the file is empty (0 bytes), not an .npy or .npz file; {_HOW}")
    if start.startswith(ZIP_MAGIC):
        return ZIP_MAGIC
    if start == NPY_MAGIC:
        return NPY_MAGIC
    raise FileFormatError(f"{where}: not an .npy or .npz file (it starts with {start!r}); {_HOW}")


@contextlib.contextmanager
def _archive(where: str) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(where)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise FileFormatError(
            f"{where}: not an .npz archive ({type(err).__name__}: {err}); is it truncated, or a file of another "
            f"kind? {_HOW}"
        ) from None
    with archive:
        yield archive


def _members(archive: zipfile.ZipFile, where: str, limit: int) -> dict[zipfile.ZipInfo, tuple[np.dtype, tuple, bool]]:
    """Each member's (dtype, shape, Fortran order) from its header, once its compression, its
    declared size and the total are checked; nothing past a header is inflated."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FileFormatError(f"{where}: the archive has the member {repeated[0]!r} twice; it is corrupted or forged")
    if not infos:
        raise FileFormatError(f"{where}: the .npz archive holds no arrays; {_HOW}")
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise FileFormatError(f"{where}: the member {info.filename!r} is not an .npy array; an .npz holds only "
                                  f"arrays; {_HOW}")
        if info.compress_type not in COMPRESSIONS:
            raise FileFormatError(
                f"{where}: the array {info.filename!r} is compressed with method {info.compress_type} (lamina reads "
                "stored or deflate members only, as np.savez and np.savez_compressed write them); save it again "
                "with np.savez_compressed"
            )
    declared = sum(info.file_size for info in infos)
    _check_limit(where, declared, limit, what="its members declare")
    found: dict[zipfile.ZipInfo, tuple[np.dtype, tuple, bool]] = {}
    total = 0
    for info in infos:
        what = f"the array {info.filename!r}"
        with archive.open(info) as stream:
            dtype, shape, fortran = _header(stream, where, what)
            offset = stream.tell()
        needed = _nbytes(shape, dtype)
        total += needed
        _check_limit(where, total, limit)
        _check_size(where, what, needed, info.file_size - offset)
        found[info] = (dtype, shape, fortran)
    return found


def _npy_header(stream: IO[bytes], where: str, limit: int, kind: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """The checked header of the .npy file open in `stream` (not empty, a numeric header, its
    data within `limit` and exactly what follows the header); the stream is left at the data."""
    size = os.fstat(stream.fileno()).st_size
    if size == 0:
        raise FileFormatError(f"{where}: the file is empty (0 bytes), not {kind}; {_HOW}")
    dtype, shape, fortran = _header(stream, where, "the file")
    needed = _nbytes(shape, dtype)
    _check_limit(where, needed, limit)
    _check_size(where, "the file", needed, size - stream.tell())
    return dtype, shape, fortran


def _header(stream: IO[bytes], where: str, what: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """(dtype, shape, Fortran order) of the .npy header at the stream's position, checked."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (numpy writes 1.0, 2.0 and 3.0)")
    except Exception as err:  # numpy parses the header as Python literals: SyntaxError, tokenize's TokenError, ...
        raise FileFormatError(f"{where}: {what} has no valid .npy header ({type(err).__name__}: {err}); {_HOW}") \
            from None
    if dtype.hasobject or dtype.kind not in NUMBER_KINDS or dtype.itemsize == 0:
        raise FileFormatError(
            f"{where}: {what} has dtype {dtype}, not numbers (bool, int or float; pickled objects are never read); "
            "save it converted, e.g. np.save(path, array.astype(np.float32))"
        )
    return dtype, tuple(int(n) for n in shape), bool(fortran)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _check_limit(where: str, size: int, limit: int, what: str = "its arrays would take") -> None:
    if size > limit:
        raise FileFormatError(
            f"{where}: {what} {size:,} bytes, over the input limit of {limit:,} bytes. If you trust the file, raise "
            f"the limit with the environment variable {ENVIRONMENT}, or split the file"
        )


def _check_size(where: str, what: str, needed: int, holds: int) -> None:
    """A header's claim against the bytes there are: a file of fewer is truncated (or lies),
    one of more is corrupted; neither is allocated."""
    if holds < needed:
        raise FileFormatError(
            f"{where}: {what} is truncated: its header's shape needs {needed:,} bytes of data, the file holds "
            f"{max(holds, 0):,}; {_HOW}"
        )
    if holds > needed:
        raise FileFormatError(
            f"{where}: {what} holds {holds:,} bytes of data, more than the {needed:,} its header's shape needs; "
            f"it is corrupted or forged; {_HOW}"
        )


def _fill(
    stream: IO[bytes], where: str, what: str, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
) -> np.ndarray:
    """A new array of (dtype, shape), filled from the stream a chunk at a time; exactly its
    bytes must be there (the last read also has zipfile check the member's CRC-32)."""
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    buffer = array.reshape(-1, order="A").view(np.uint8).data
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled: filled + CHUNK_BYTES])  # type: ignore[attr-defined]
        if not count:
            raise FileFormatError(f"{where}: {what} is truncated: {filled:,} of {len(buffer):,} bytes; {_HOW}")
        filled += count
    if stream.read(1):
        raise FileFormatError(f"{where}: {what} holds more data than its header says; it is corrupted or forged")
    return array
