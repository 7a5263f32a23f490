"""The output folder's lock: one holder at a time, however runs interleave, and let go however a
run ends; and `--resume` removes only the temporary files lamina's own writes name."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, config_file

import lamina
from lamina.app import outputs, run
from lamina.app.cli import main
from lamina.app.outputs import LOCK, output_folder

BUSY = "is being written by another lamina train"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def until(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class Contenders:
    """Runs `output_folder` in named threads. A thread that gets the folder stays inside until
    `let_go()`; `inside` counts the threads in it at once, `most` the peak."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.results = folder, {}
        self.entered = collections.defaultdict(threading.Event)
        self.done = collections.defaultdict(threading.Event)
        self.leave = threading.Event()
        self.inside = self.most = 0
        self.count = threading.Lock()
        self.threads = []

    def start(self, name: str) -> None:
        thread = threading.Thread(target=self._run, args=(name,), name=name)
        self.threads.append(thread)
        thread.start()

    def _run(self, name: str) -> None:
        try:
            with output_folder(self.folder, name):
                with self.count:
                    self.inside += 1
                    self.most = max(self.most, self.inside)
                self.results[name] = "held"
                self.entered[name].set()
                self.done[name].set()
                self.leave.wait(5)
                with self.count:
                    self.inside -= 1
        except lamina.ConfigError as err:
            self.results[name] = str(err)
        finally:
            self.done[name].set()

    def let_go(self) -> None:
        self.leave.set()
        for thread in self.threads:
            thread.join(10)


# -- finding 6: a dead run's lock, two runs starting together ---------------------------------------


def test_two_runs_taking_over_a_dead_runs_lock_never_both_hold_the_folder(tmp_path, monkeypatch):
    # The finding's interleaving, made certain: the first run reads the dead run's lock and stops
    # there until the second holds the folder (the finding delayed it 0.2 s between reading the
    # dead pid and unlinking). Before the fix both then held it.
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / LOCK).write_text(f"{dead_pid()}\n")
    runs = Contenders(folder)
    paused = threading.Event()
    read_owner = outputs._owner

    def slow_owner(lock):
        pid = read_owner(lock)
        if threading.current_thread().name == "first":
            paused.set()
            runs.entered["second"].wait(2)
        return pid

    monkeypatch.setattr(outputs, "_owner", slow_owner)
    runs.start("first")
    assert until(lambda: paused.is_set() or runs.entered["first"].is_set())  # stopped after reading the pid, or holds
    runs.start("second")
    assert runs.done["second"].wait(5) and runs.done["first"].wait(5)
    runs.let_go()
    assert runs.most == 1
    (refused,) = [text for text in runs.results.values() if text != "held"]  # one held, one did not
    assert f"{folder} {BUSY} (process {os.getpid()})" in refused
    assert not (folder / LOCK).exists()


def test_a_run_that_opened_the_lock_as_its_holder_let_go_does_not_hold_it_beside_a_new_run(tmp_path, monkeypatch):
    # flock + unlink: B opens the lock file, A finishes (removing the file), C creates a new one
    # and holds it, and only then does B lock the file it opened, which no name leads to any more.
    folder = tmp_path / "out"
    runs = Contenders(folder)
    opened, go = threading.Event(), threading.Event()
    try_lock = outputs._try_lock

    def paused_try_lock(fd, *args):
        if threading.current_thread().name == "B" and not go.is_set():
            opened.set()
            go.wait(5)
        return try_lock(fd, *args)

    monkeypatch.setattr(outputs, "_try_lock", paused_try_lock)
    first = Contenders(folder)
    first.start("A")
    assert first.entered["A"].wait(5)
    runs.start("B")
    assert opened.wait(5)
    first.let_go()  # A's run ends: its lock file is removed
    assert first.results == {"A": "held"}
    runs.start("C")
    assert runs.entered["C"].wait(5)
    go.set()
    assert runs.done["B"].wait(5)
    runs.let_go()
    assert runs.results["C"] == "held" and BUSY in runs.results["B"], runs.results
    assert runs.most == 1


def test_many_runs_started_together_over_a_dead_runs_lock_have_one_holder_at_a_time(tmp_path):
    # Three processes, each told at the same moment to train into a fresh folder holding a dead
    # run's lock; a holder marks the folder with a file only one can create (O_EXCL).
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from lamina.app.outputs import output_folder
        from lamina.errors import ConfigError
        for line in sys.stdin:
            folder = Path(line.strip())
            try:
                with output_folder(folder, "trial"):
                    try:
                        marker = os.open(folder / "holder", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    except FileExistsError:
                        result = "two holders"
                    else:
                        time.sleep(0.005)
                        os.close(marker)
                        os.unlink(folder / "holder")
                        result = "held"
            except ConfigError as err:
                result = "busy" if {BUSY!r} in str(err) else "error: " + str(err)
            print(result, flush=True)
    """))
    workers = [subprocess.Popen([sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=ROOT) for _ in range(3)]
    dead = dead_pid()
    try:
        for trial in range(40):
            folder = tmp_path / f"trial{trial}"
            folder.mkdir()
            (folder / LOCK).write_text(f"{dead}\n")
            for process in workers:
                process.stdin.write(f"{folder}\n")
                process.stdin.flush()
            results = [process.stdout.readline().strip() for process in workers]
            assert "held" in results and set(results) <= {"held", "busy"}, (trial, results)
            assert not (folder / LOCK).exists()
    finally:
        for process in workers:
            process.stdin.close()
            process.wait(30)


def test_a_live_run_in_another_process_holds_the_folder_and_a_killed_one_lets_it_go(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from lamina.app.outputs import "
         f"output_folder\nwith output_folder(Path({str(folder)!r}), 'x'):\n print('in', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "in"
        with pytest.raises(lamina.ConfigError, match=f"{BUSY} \\(process {holder.pid}\\)"):
            with output_folder(folder, "run.toml"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # no finally runs: the system lets the lock go
        holder.wait()
    assert (folder / LOCK).exists()  # the dead run's file, taken over below
    with output_folder(folder, "run.toml"):
        assert (folder / LOCK).read_text() == f"{os.getpid()}\n"
    assert not (folder / LOCK).exists()


# -- the lock is let go however a run ends -----------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError("injected"), lamina.ConfigError("injected"), KeyboardInterrupt(),
                                     MemoryError(), SystemExit(3)])
def test_a_run_that_fails_in_any_way_lets_its_folder_go(tmp_path, monkeypatch, failure):
    def fail(*args, **kwargs):
        assert (tmp_path / "out" / LOCK).exists()  # it fails while holding the folder
        raise failure

    monkeypatch.setattr(run, "_train", fail)
    try:
        code = main(["train", str(config_file(tmp_path)), "--quiet", "--debug"])
    except type(failure):
        pass
    else:
        assert isinstance(failure, KeyboardInterrupt) and code == 130  # the cli's own ending
    assert not (tmp_path / "out" / LOCK).exists()
    with output_folder(tmp_path / "out", "run.toml"):  # usable again at once
        pass


def test_a_lock_file_that_is_a_symlink_is_not_written_through(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (folder / LOCK).symlink_to(target)
    with pytest.raises(lamina.ConfigError, match="is a symbolic link; remove it if no run is using the folder"):
        with output_folder(folder, "run.toml"):
            pass
    assert target.read_text() == "keep me"


def test_without_flock_a_lock_is_made_atomically_and_a_left_one_is_never_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "fcntl", None)
    folder = tmp_path / "out"
    with output_folder(folder, "run.toml"):
        assert (folder / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(lamina.ConfigError, match=f"held by a lamina train \\(process {os.getpid()}\\)"):
            with output_folder(folder, "run.toml"):
                pass
    assert not (folder / LOCK).exists()
    pid = dead_pid()
    (folder / LOCK).write_text(f"{pid}\n")  # a dead run's: guessing from the pid is what raced
    with pytest.raises(lamina.ConfigError, match="if that process is not running, remove the file"):
        with output_folder(folder, "run.toml"):
            pass
    assert (folder / LOCK).read_text() == f"{pid}\n"


# -- finding 7: --resume removes only lamina's own temporaries ---------------------------------------


def test_an_atomic_write_names_its_temporary_for_the_file_and_as_lamina_s(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    monkeypatch.setattr(os, "unlink", lambda path: None)  # as if the process died mid-write
    with pytest.raises(OSError):
        lamina.atomic_write(tmp_path / "model.npz", b"data")
    monkeypatch.undo()
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".model.npz.lamina-") and left.name.endswith(".tmp")
    assert len(left.name) == len(".model.npz.lamina-") + 12 + len(".tmp")
    assert outputs.remove_stale_temporaries([tmp_path / "metrics.json"]) == []  # another file's: kept
    assert outputs.remove_stale_temporaries([tmp_path / "model.npz"]) == [left]
    assert list(tmp_path.iterdir()) == []


def test_resume_in_a_folder_of_other_programs_files_removes_only_lamina_s_temporaries(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"  # output = a folder other programs write into
    path = config_file(tmp_path, epochs=2, output=home)
    for log in (home / "log.csv", elsewhere / "log.csv"):  # a CSVLogger writing in the folder, one outside it
        path.write_text(path.read_text() + f'[[callbacks]]\ntype = "CSVLogger"\npath = "{log}"\n')
    assert main(["train", str(path), "--quiet"]) == 0
    ours = [home / ".checkpoint.npz.lamina-0123456789ab.tmp", home / ".model.npz.lamina-fedcba987654.tmp",
            home / ".log.csv.lamina-0123456789ab.tmp"]
    theirs = [home / ".notes.tmp", home / ".checkpoint.npz.abc123.tmp", home / ".bashrc.swp.tmp",
              elsewhere / ".log.csv.lamina-0123456789ab.tmp",  # beside a file the run writes, not in its folder
              home / ".other.npz.lamina-0123456789ab.tmp", home / ".model.npz.lamina-0123.tmp",
              home / ".model.npz.lamina-0123456789AB.tmp", home / "model.npz.lamina-0123456789ab.tmp"]
    for file in ours + theirs:
        file.write_bytes(b"half written")
    (home / ".metrics.json.lamina-00112233aabb.tmp").mkdir()  # not a file: kept
    (home / ".curves.png.lamina-00112233aabb.tmp").symlink_to(home / ".notes.tmp")
    path.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    assert main(["train", str(path), "--resume", "--quiet"]) == 0
    assert not any(file.exists() for file in ours)
    assert all(file.read_bytes() == b"half written" for file in theirs)
    assert (home / ".metrics.json.lamina-00112233aabb.tmp").is_dir()
    assert (home / ".curves.png.lamina-00112233aabb.tmp").is_symlink()
