"""Atomic file writes: a crash mid-write leaves the previous file intact."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import Path

from lamina.files.interrupts import held

# A temporary file is named for its target and marked as lamina's: `.model.npz.lamina-<12 hex>.tmp`.
# That name is what lets `lamina train --resume` remove what an interrupted write left while
# leaving every other file alone, a user's `.notes.tmp` or another program's temporaries included.
_MARK = "lamina-"
_TOKEN = 12  # hex digits

# The process umask, read once (reading it means setting it), so that files get the usual
# permissions instead of mkstemp's private 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    # An interrupt waits for the write to finish or to be undone: Ctrl-C between creating the
    # temporary file and removing it would leave it behind.
    with held():
        _write_through_temporary(path, payload)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def leftover_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files that interrupted `atomic_write`s of `path` left beside it: regular
    files named `.NAME.lamina-<12 hex>.tmp`, NAME being `path`'s, and nothing else."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_MARK}[0-9a-f]{{{_TOKEN}}}\.tmp")
    try:
        with os.scandir(path.parent) as entries:
            return [Path(entry.path) for entry in entries
                    if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:  # no folder, or one we may not list: nothing of ours can be in it
        return []


def _create_temporary(path: Path) -> tuple[int, str]:
    for _ in range(100):  # a name already taken is another write's: draw again
        tmp = str(path.parent / f".{path.name}.{_MARK}{secrets.token_hex(_TOKEN // 2)}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "every temporary name drawn was taken")


def _write_through_temporary(path: Path, payload: bytes) -> None:
    stage = "creating a temporary file beside it"
    try:
        fd, tmp = _create_temporary(path)
    except OSError as err:
        raise _naming(err, path, stage) from None
    try:
        try:
            mode = path.stat().st_mode & 0o777  # replacing a file keeps its permissions
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            stage = f"writing {len(payload):,} bytes to a temporary file"
            handle.write(payload)
            handle.flush()
            stage = "syncing the temporary file to disk"
            os.fsync(handle.fileno())
        stage = "renaming the temporary file into place"
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, path, stage) from None
        raise


def _naming(err: OSError, path: Path, stage: str) -> OSError:
    """The same kind of OSError, saying which file and which step of writing it failed."""
    return type(err)(err.errno, f"cannot write {path} ({stage}): {err.strerror or err}")
