"""Checkpoints and resuming: a run killed mid-epoch or mid-save leaves a sound checkpoint and
resumes to the same weights, bit for bit; in Python and with `lamina train --resume`."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, config_file, run_python

import lamina

TRAIN = '''
import os, signal, sys
import numpy as np
import lamina
from lamina.training import step as step_module

mode, checkpoint, out = sys.argv[1], sys.argv[2], sys.argv[3]
x, y, _, _ = lamina.dataset("spirals", n_samples=240)
lamina.seed(3)
model = lamina.Model([lamina.layer("Linear", 16), "Relu", lamina.layer("Dropout", 0.2), lamina.layer("Linear", 3)])

if mode == "kill-mid-epoch":  # SIGKILL at step 40 of 72 (12 a epoch): in the middle of epoch 4
    steps, original = [0], step_module.Step.__call__
    def step(self, *args):
        steps[0] += 1
        if steps[0] == 40:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args)
    step_module.Step.__call__ = step
if mode == "kill-in-save":  # SIGKILL while the third checkpoint is being written
    calls, fsync = [0], os.fsync
    def dying_fsync(fd):
        calls[0] += 1
        if calls[0] == 5:  # each save fsyncs its temporary file, then the folder
            os.kill(os.getpid(), signal.SIGKILL)
        return fsync(fd)
    os.fsync = dying_fsync

kwargs = dict(loss=lamina.loss("CrossEntropy", from_logits=True), batch_size=16, verbose=False, epochs=6)
if mode == "resume":
    model.train(x, y, resume_from=checkpoint, callbacks=[lamina.callback("Checkpoint", checkpoint)], **kwargs)
else:
    model.train(x, y, optim="Adam", callbacks=[lamina.callback("Checkpoint", checkpoint)], **kwargs)
np.savez(out, *[p.value for p in model.parameters().values()])
'''


def train(tmp_path: Path, mode: str, checkpoint: Path, out: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.run([sys.executable, str(script), mode, str(checkpoint), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[key] for key in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def lamina_cli(*args: str, cwd: Path = ROOT):
    return run_python("-m", "lamina", *args, cwd=cwd)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = train(folder, "full", folder / "checkpoint.npz", folder / "final.npz")
    assert result.returncode == 0, result.stderr
    return weights(folder / "final.npz")


@pytest.mark.parametrize("mode, epochs_saved", [("kill-mid-epoch", 3), ("kill-in-save", 2)])
def test_a_killed_run_leaves_a_sound_checkpoint_and_resumes_to_the_same_weights(
    tmp_path, uninterrupted, mode, epochs_saved
):
    checkpoint = tmp_path / "checkpoint.npz"
    killed = train(tmp_path, mode, checkpoint, tmp_path / "never.npz")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "never.npz").exists()
    saved = lamina.load(checkpoint)  # never corrupt: the last complete checkpoint
    assert saved.progress["epoch"] == epochs_saved
    assert len(saved.progress["history"]["loss"]) == epochs_saved
    resumed = train(tmp_path, "resume", checkpoint, tmp_path / "final.npz")
    assert resumed.returncode == 0, resumed.stderr
    for a, b in zip(weights(tmp_path / "final.npz"), uninterrupted):
        assert a.tobytes() == b.tobytes()  # exactly, bit for bit
    assert lamina.load(checkpoint).progress["epoch"] == 6


def test_resume_in_process_returns_the_whole_history(tmp_path):
    x, y, _, _ = lamina.dataset("xor")
    path = tmp_path / "ck.npz"

    def make():
        lamina.seed(1)
        return lamina.Model([lamina.layer("Linear", 4), "Tanh", lamina.layer("Linear", 1)])

    full = make().train(x, y, optim="SGD", epochs=5, verbose=False)
    make().train(x, y, optim="SGD", epochs=2, callbacks=[lamina.callback("Checkpoint", path)], verbose=False)
    history = make().train(x, y, epochs=5, resume_from=path, verbose=False)
    assert history["loss"] == full["loss"]
    finished = make().train(x, y, epochs=2, resume_from=path, verbose=False)
    assert finished["loss"] == full["loss"][:2]  # nothing left to do


def test_resume_errors_say_what_does_not_fit(tmp_path):
    x, y, _, _ = lamina.dataset("xor")
    lamina.Model([lamina.layer("Linear", 1)]).train(x, y, epochs=1, verbose=False,
                                                    callbacks=[lamina.callback("Checkpoint", tmp_path / "ck.npz")])
    with pytest.raises(lamina.ShapeError, match="do not fit this model's"):
        model = lamina.Model([lamina.layer("Linear", 3), lamina.layer("Linear", 1)])
        model.train(x, y, resume_from=tmp_path / "ck.npz", verbose=False)
    with pytest.raises(lamina.ArgumentError, match="the checkpoint was trained with SGD"):
        lamina.Model([lamina.layer("Linear", 1)]).train(x, y, optim="Adam", resume_from=tmp_path / "ck.npz",
                                                        verbose=False)
    lamina.Model([lamina.layer("Linear", 1)]).save(tmp_path / "plain.npz")
    with pytest.raises(lamina.ArgumentError, match="a saved model, not a checkpoint"):
        lamina.Model([lamina.layer("Linear", 1)]).train(x, y, resume_from=tmp_path / "plain.npz", verbose=False)


def test_lamina_train_resume_continues_the_checkpoint(tmp_path):
    config = tmp_path / "xor.toml"
    config.write_text((ROOT / "examples" / "configs" / "xor.toml").read_text().replace("epochs = 400", "epochs = 30"))
    cli = [sys.executable, "-m", "lamina", "train", str(config), "--quiet"]
    straight = subprocess.run(cli + ["--out", str(tmp_path / "straight")], capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    first = subprocess.run(cli + ["--out", str(tmp_path / "split"), "--epochs", "12"], capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cli + ["--out", str(tmp_path / "split"), "--resume"], capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    a = lamina.load(tmp_path / "straight" / "model.npz").parameters()
    b = lamina.load(tmp_path / "split" / "model.npz").parameters()
    assert all(a[k].value.tobytes() == b[k].value.tobytes() for k in a)
    missing = subprocess.run(cli + ["--out", str(tmp_path / "none"), "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 1 and "no checkpoint at" in missing.stderr


def test_resume_removes_what_an_interrupted_save_left_and_nothing_else(tmp_path):
    path = config_file(tmp_path, epochs=2)
    assert lamina_cli("train", str(path), "--quiet").returncode == 0
    stale = tmp_path / "out" / ".checkpoint.npz.lamina-0123456789ab.tmp"  # as lamina's atomic writes name them
    stale.write_bytes(b"half a checkpoint")
    users = tmp_path / "out" / ".notes.tmp"
    users.write_text("a user's file")
    path.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    result = lamina_cli("train", str(path), "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert users.read_text() == "a user's file"


def test_a_two_output_graph_model_resumes_to_the_same_weights_and_history(tmp_path):
    rng = np.random.default_rng(7)
    x = {"a": rng.normal(size=(24, 4)), "b": rng.normal(size=(24, 3))}
    y = {"cls": rng.integers(0, 3, size=24), "box": rng.normal(size=(24, 2))}
    path = tmp_path / "ck.npz"

    def make():
        lamina.seed(2)
        a, b = lamina.Input((4,), name="a"), lamina.Input((3,), name="b")
        enc = lamina.layer("Linear", 5)
        h = lamina.layer("Concatenate")([enc(lamina.layer("Linear", 3)(a)), enc(b)])
        h = lamina.layer("Dropout", 0.2)(lamina.layer("Tanh")(h))  # draws from the generator: resumed too
        return lamina.Model(inputs={"a": a, "b": b},
                            outputs={"cls": lamina.layer("Linear", 3)(h), "box": lamina.layer("Linear", 2)(h)})

    options = dict(loss={"cls": lamina.loss("CrossEntropy", from_logits=True), "box": "MSE"},
                   loss_weights={"cls": 1.0, "box": 0.3}, metrics={"cls": ["accuracy"]}, optim="Adam",
                   batch_size=8, verbose=False)
    whole = make()
    full = whole.train(x, y, epochs=5, **options)
    make().train(x, y, epochs=2, callbacks=[lamina.callback("Checkpoint", path)], **options)
    saved = lamina.load(path)
    assert saved.loss.loss_weights == {"cls": 1.0, "box": 0.3} and set(saved.progress["history"]) >= {
        "loss", "cls_loss", "box_loss", "cls_accuracy"}
    resumed = make()
    history = resumed.train(x, y, epochs=5, resume_from=path, **{k: v for k, v in options.items() if k != "optim"})
    assert history.history == full.history
    for name, param in whole.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name].value, param.value)
