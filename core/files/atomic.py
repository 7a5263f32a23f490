"""Atomic file writes: a crash mid-write leaves the previous file intact."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from lamina.files.interrupts import held

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


def _write_through_temporary(path: Path, payload: bytes) -> None:
    stage = "creating a temporary file beside it"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
