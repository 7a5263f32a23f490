"""The output folder of `lamina train`: one run at a time, writable, no debris of old runs."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lamina.errors import ConfigError

LOCK = ".lamina-train.lock"


@contextlib.contextmanager
def output_folder(folder: Path, source: str) -> Iterator[Path]:
    """Create `folder`, check it is writable, and hold it for this run: a second run into it
    fails at once, naming the first one's process. A lock left by a run that died is taken over."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".lamina-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{source}: output: cannot write into {folder} ({err.strerror or err}); "
                          "choose another folder") from None
    lock = folder / LOCK
    _acquire(lock, folder, source)
    try:
        yield folder
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _acquire(lock: Path, folder: Path, source: str) -> None:
    for _ in range(2):  # the second try follows the removal of a dead run's lock
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _owner(lock)
            if pid is not None and _alive(pid):
                raise ConfigError(
                    f"{source}: output: {folder} is being written by another lamina train (process {pid}); "
                    "wait for it to finish, or train into another folder with --out"
                ) from None
            with contextlib.suppress(OSError):
                lock.unlink()  # stale: its run is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return
    raise ConfigError(f"{source}: output: cannot lock {folder} for this run; remove {lock} if no run is using it")


def _owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that an interrupted atomic write left (.name.*.tmp)."""
    removed = []
    for path in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
