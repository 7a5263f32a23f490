"""Signals: SIGINT and SIGTERM stop `lamina train` cleanly, with a sound checkpoint and the command
that resumes it."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, config_file

import lamina


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_the_run_cleanly_with_the_resume_command(tmp_path, sig, code, word):
    path = config_file(tmp_path, epochs=400, samples=600)
    # SIGINT at its default in the child: a shell that starts pytest in the background has it
    # ignored, and an ignored SIGINT is inherited, so Python would install no Ctrl-C handler.
    process = subprocess.Popen([sys.executable, "-m", "lamina", "train", str(path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = tmp_path / "out" / "checkpoint.npz"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-2000:]
    assert f"lamina: {word}; continue from the last checkpoint with: lamina train {path} --resume" in err
    assert "Traceback" not in err
    assert isinstance(lamina.load(checkpoint), lamina.Model)
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert not (tmp_path / "out" / ".lamina-train.lock").exists()  # the folder is let go
