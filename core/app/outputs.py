"""The output folder of `lamina train`: one run at a time, writable, no debris of old runs."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lamina.errors import ConfigError
from lamina.files.atomic import leftover_temporaries
from lamina.files.interrupts import held

try:
    import fcntl
except ImportError:  # Windows: no flock, see _hold_without_flock
    fcntl = None  # type: ignore[assignment]

LOCK = ".lamina-train.lock"

# How a run holds its folder (POSIX): an exclusive flock on the file LOCK, kept for the whole run.
# The kernel grants it to one open file at a time and drops it when its process ends, however it
# ends (SIGKILL included), so a dead run's lock file is simply locked again: a takeover needs no
# guess about whether the pid written in it is alive, and two runs cannot both win it. The pid in
# the file only names the holder in the busy message.
#
# The file is removed at the end of a run, and that is the one subtle step (flock + unlink): a run
# that opened the file just before its holder unlinked it could lock that unlinked file while a
# third run creates a new one under the name and locks that: two holders. So the holder unlinks
# while it still holds the lock, and a run counts as holding the folder only if, once locked, the
# name still leads to the very file it locked (same device and inode); otherwise it opens the name
# again. The name changes only by that unlink, done by the one holder of the file it names, so
# whoever holds a lock that the name still leads to is the only holder.


@contextlib.contextmanager
def output_folder(folder: Path, source: str) -> Iterator[Path]:
    """Create `folder`, check it is writable, and hold it for this run: a second run into it
    fails at once, naming the first one's process. A lock left by a run that died is taken over.
    The folder is let go however the block ends (an exception, Ctrl-C, SIGTERM as the cli raises
    it); if the process dies, the system lets it go."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".lamina-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{source}: output: cannot write into {folder} ({err.strerror or err}); "
                          "choose another folder") from None
    release: Callable[[], None] | None = None
    try:
        # Ctrl-C waits while the lock is taken or given back: it lands either before the lock
        # exists or after `release` is set, never between, where the lock would outlive the run.
        with held():
            release = _hold(folder / LOCK, folder, source)
        yield folder
    finally:
        if release is not None:
            with held():
                release()


def _hold(lock: Path, folder: Path, source: str) -> Callable[[], None]:
    """Take the lock; returns what gives it back."""
    if fcntl is None:
        return _hold_without_flock(lock, folder, source)
    for _ in range(100):  # another try follows a lock file unlinked between our open and our lock
        fd = _open(lock, folder, source)
        try:
            if not _try_lock(fd, lock, folder, source):
                raise _busy(lock, folder, source)
            if _same_file(fd, lock):
                _write_pid(fd)
                return lambda: _release(fd, lock)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it as it finished: the name now leads elsewhere
    raise ConfigError(f"{source}: output: cannot lock {folder} for this run: {lock} kept changing; "
                      "are many runs starting into this folder at once?")


def _open(lock: Path, folder: Path, source: str) -> int:
    # Not O_TRUNC: the file may be a live run's until we hold it. Not following a symlink: the
    # pid is written into whatever the name opens.
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as err:
        what = "is a symbolic link" if err.errno == errno.ELOOP else f"cannot be opened ({err.strerror or err})"
        raise ConfigError(f"{source}: output: cannot lock {folder} for this run: {lock} {what}; "
                          "remove it if no run is using the folder") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{source}: output: cannot lock {folder} for this run: {lock} is not a regular file; "
                          "remove it")
    return fd


def _try_lock(fd: int, lock: Path, folder: Path, source: str) -> bool:
    """Lock `fd` exclusively if no one else holds it; False if someone does."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:  # e.g. ENOLCK on a network file system without locks
        raise ConfigError(f"{source}: output: cannot lock {lock} ({err.strerror or err}); "
                          "train into a folder on a local disk with --out") from None
    return True


def _same_file(fd: int, lock: Path) -> bool:
    try:
        named = os.stat(lock, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _write_pid(fd: int) -> None:
    # For the busy message only: the lock is the flock, so a full disk here does not matter.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _release(fd: int, lock: Path) -> None:
    # Unlink first, while still holding the lock (see the top of this file). Only when the name
    # still leads to our file: someone may have removed it by hand and a new run created another.
    try:
        if _same_file(fd, lock):
            with contextlib.suppress(OSError):
                lock.unlink()
    finally:
        os.close(fd)  # gives the lock back


def _busy(lock: Path, folder: Path, source: str) -> ConfigError:
    pid = _owner(lock)
    return ConfigError(
        f"{source}: output: {folder} is being written by another lamina train "
        f"(process {pid if pid is not None else 'unknown'}); "
        "wait for it to finish, or train into another folder with --out"
    )


def _hold_without_flock(lock: Path, folder: Path, source: str) -> Callable[[], None]:
    """Where there is no flock: the lock file is created only if absent (O_EXCL, atomic), and a
    lock file already there is never taken over. Deciding from its pid whether its run is gone,
    then removing it, is what let two runs both hold a folder (one removed the lock the other had
    just made), and os.kill(pid, 0), the usual probe, sends Ctrl-C on Windows; so a person removes it."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        pid = _owner(lock)
        raise ConfigError(
            f"{source}: output: {folder} is held by a lamina train (process {pid if pid is not None else 'unknown'}) "
            f"through {lock}; on this system lamina cannot tell a finished run's lock from a live one: if that "
            "process is not running, remove the file; or train into another folder with --out"
        ) from None
    except OSError as err:
        raise ConfigError(f"{source}: output: cannot lock {folder} for this run: cannot create {lock} "
                          f"({err.strerror or err})") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")

    def release() -> None:
        with contextlib.suppress(OSError):
            lock.unlink()

    return release


def _owner(lock: Path) -> int | None:
    try:
        with open(lock, "rb") as handle:
            return int(handle.read(32).strip())  # a pid and a newline; the file may be anything
    except (OSError, ValueError):
        return None


def remove_stale_temporaries(files: Iterable[Path]) -> list[Path]:
    """Delete what interrupted atomic writes of `files` left: only lamina's own temporaries
    beside each (`.NAME.lamina-<12 hex>.tmp`), never a user's or another program's files."""
    removed = []
    for path in files:
        for leftover in leftover_temporaries(path):
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed
