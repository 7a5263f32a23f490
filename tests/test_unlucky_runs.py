"""Unlucky inputs and runs: threads, shared output folders, signals, full disks, odd files.

Each case gives a model, a result or a documented LaminaError, never a traceback.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import ROOT

import lamina
from lamina.testing import cases_for

CONFIG = """
epochs = {epochs}
batch_size = 8
output = "{output}"
[dataset]
name = "spirals"
n_samples = {samples}
[[layers]]
type = "Linear"
units = 16
[[layers]]
type = "Relu"
[[layers]]
type = "Linear"
units = 3
[loss]
type = "CrossEntropy"
from_logits = true
[optimizer]
type = "Adam"
"""


def config_file(tmp_path, epochs=3, samples=90, output=None):
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(epochs=epochs, samples=samples, output=output or (tmp_path / "out")))
    return path


def lamina_cli(*args, cwd=ROOT, **kwargs):
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, **kwargs)


def spirals():
    x, y, _, _ = lamina.dataset("spirals", n_samples=300)
    return x, y


def small_model():
    lamina.seed(0)
    return lamina.Model([lamina.layer("Linear", 16), "Relu", lamina.layer("Linear", 3)])


# -- threads -------------------------------------------------------------------------------------------


def test_a_save_during_training_waits_for_the_step_and_is_consistent(tmp_path):
    x, y = spirals()
    model = small_model()
    done = threading.Event()

    def train():
        model.train(x, y, optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=15,
                    batch_size=4, verbose=False)
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    steps = []
    while not done.is_set() and len(steps) < 30:
        if model.optimizer is not None and model.parameters():
            path = tmp_path / f"save{len(steps)}.npz"
            model.save(path, include_optimizer=True)
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
            steps.append({e["step"]["value"] for e in config["optimizer"]["state"].values()})
        time.sleep(0.005)
    thread.join()
    assert steps, "no save happened during training"
    assert all(len(counts) <= 1 for counts in steps), steps  # every parameter at the same step (or none yet)
    assert any(counts for counts in steps)


def test_summary_and_predict_from_another_thread_leave_training_intact():
    x, y = spirals()
    kwargs = dict(optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=8, batch_size=8, verbose=False)
    alone = small_model()
    alone.train(x, y, **kwargs)
    model = small_model()
    errors = []

    def meddle():
        while thread.is_alive():
            try:
                model.summary()
                model.predict(x[:5])
            except Exception as err:  # a LaminaError before the first build is fine; report others
                if not isinstance(err, lamina.LaminaError):
                    errors.append(err)

    thread = threading.Thread(target=lambda: model.train(x, y, **kwargs))
    thread.start()
    meddler = threading.Thread(target=meddle)
    meddler.start()
    thread.join()
    meddler.join()
    assert errors == []
    for a, b in zip(alone.parameters().values(), model.parameters().values()):
        np.testing.assert_array_equal(a.value, b.value)


def test_loading_in_another_thread_does_not_change_a_training_run(tmp_path):
    x, y = spirals()
    kwargs = dict(optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=6, batch_size=8, verbose=False)
    other = small_model()
    other.predict(x[:1])
    other.save(tmp_path / "other.npz")

    def run(with_loads):
        lamina.seed(1)
        model = lamina.Model([lamina.layer("Linear", 16), lamina.layer("Dropout", 0.3), lamina.layer("Linear", 3)])
        stop = threading.Event()

        def load_repeatedly():
            while not stop.is_set():
                lamina.load(tmp_path / "other.npz")

        loader = threading.Thread(target=load_repeatedly)
        if with_loads:
            loader.start()
        model.train(x, y, **kwargs)
        stop.set()
        if with_loads:
            loader.join()
        return [p.value.copy() for p in model.parameters().values()]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


# -- the output folder ---------------------------------------------------------------------------------------


def test_a_second_run_into_a_busy_output_folder_fails_fast_naming_the_first(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lamina-train.lock").write_text(f"{holder.pid}\n")
        result = lamina_cli("train", str(config_file(tmp_path)))
        assert result.returncode == 1
        assert f"is being written by another lamina train (process {holder.pid})" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    result = lamina_cli("train", str(config_file(tmp_path)), "--quiet")  # its process is gone: taken over
    assert result.returncode == 0, result.stderr
    assert not (out / ".lamina-train.lock").exists()


@pytest.mark.parametrize("output, expected", [("", "is no folder name"), ("runs/a\\u0000b", "is no folder name")])
def test_an_empty_or_nul_output_is_a_config_error(tmp_path, output, expected):
    path = config_file(tmp_path)
    path.write_text(path.read_text().replace(f'output = "{tmp_path / "out"}"', f'output = "{output}"'))
    result = lamina_cli("train", str(path), cwd=tmp_path)
    assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [path]  # nothing written into the current folder


def test_an_unwritable_output_fails_before_training(tmp_path):
    (tmp_path / "afile").write_text("")
    result = lamina_cli("train", str(config_file(tmp_path, output=tmp_path / "afile" / "out")))
    assert result.returncode == 1
    assert "output: cannot write into" in result.stderr and "epoch 1" not in result.stderr


def test_resume_removes_what_an_interrupted_save_left(tmp_path):
    path = config_file(tmp_path, epochs=2)
    assert lamina_cli("train", str(path), "--quiet").returncode == 0
    stale = tmp_path / "out" / ".checkpoint.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    path.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    result = lamina_cli("train", str(path), "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


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


def test_a_full_disk_names_the_file_and_the_step(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        lamina.atomic_write(tmp_path / "model.npz", b"data")
    assert f"cannot write {tmp_path / 'model.npz'} (syncing the temporary file to disk): No space left on device" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


# -- inputs ----------------------------------------------------------------------------------------------------


def test_deeply_nested_toml_is_a_config_error(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    result = lamina_cli("train", str(path))
    assert result.returncode == 1 and "not valid TOML" in result.stderr and "Traceback" not in result.stderr


def test_csv_encodings_delimiters_and_a_byte_order_mark(tmp_path):
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf1,2,0\n3,4,1\n5,6,0\n")
    x, y = lamina.get_registry().build("dataset", "csv", path=tmp_path / "bom.csv").arrays()
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 0]  # no row lost to the BOM
    (tmp_path / "latin.csv").write_bytes("a,b,label\n1,2,0\n3,4,1\n".encode("utf-16"))
    with pytest.raises(lamina.ArgumentError, match="is not utf-8 text .*pass its encoding, e.g. encoding='latin-1'"):
        lamina.dataset("csv", path=tmp_path / "latin.csv")
    x, _ = lamina.get_registry().build("dataset", "csv", path=tmp_path / "latin.csv", encoding="utf-16").arrays()
    assert x.shape == (2, 2)
    with pytest.raises(lamina.ArgumentError, match="the delimiter must be one character"):
        lamina.dataset("csv", path=tmp_path / "bom.csv", delimiter=5)


def test_an_encoding_problem_in_a_config_run_is_a_config_error_naming_the_option(tmp_path):
    (tmp_path / "data.csv").write_bytes("a;b;label\n1;\xe9;0\n".encode("latin-1"))
    path = tmp_path / "run.toml"
    path.write_text(f'[dataset]\nname = "csv"\npath = "{tmp_path / "data.csv"}"\n[[layers]]\ntype = "Linear"\nunits = 1\n')
    result = lamina_cli("train", str(path))
    assert result.returncode == 1
    assert f"{path}: dataset:" in result.stderr and "encoding='latin-1'" in result.stderr


@pytest.mark.parametrize(
    "labels, expected",
    [
        (np.array([True, False, True]), "y holds booleans, which are not class labels"),
        (np.array([0.0, np.nan, 1.0]), "y holds NaN or infinity where class labels belong"),
        (np.array([[0.0], [1.5], [1.0]]), "non-integer values"),
    ],
    ids=["bool", "nan", "fractional-column"],
)
def test_bad_labels_for_cross_entropy_get_messages_about_labels(labels, expected):
    model = lamina.Model([lamina.layer("Linear", 2)])
    with pytest.raises(lamina.ArgumentError, match=expected):
        model.train(np.ones((3, 2)), labels, loss="CrossEntropy", verbose=False)


def test_backward_before_forward_is_a_lamina_error_naming_the_layer_for_every_built_in():
    for info in lamina.get_registry().plugins("layer"):
        if info.package != "lamina":
            continue
        layer = info.cls(**cases_for(info.cls)[0].kwargs)
        with pytest.raises(lamina.LaminaError, match=f"{info.cls.__name__}.*backward was called before forward"):
            layer.backward(np.ones((4, 3)))


def test_predict_in_a_script_after_loading_keeps_working(tmp_path):
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, lamina
        model = lamina.Model([lamina.layer("Linear", 2)])
        model.predict(np.ones((1, 3)))
        model.save("m.npz")
        print(lamina.load("m.npz").predict(np.ones((2, 3))).shape)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.strip() == "(2, 2)", result.stderr
