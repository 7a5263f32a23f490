"""Reliability: numerical stability, checkpoints that survive SIGKILL, exact resumption,
thread safety, no reliance on assert, and documented errors."""
from __future__ import annotations

import ast
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

import lamina

# -- numerical stability -----------------------------------------------------------------------------

HUGE = np.array([[-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["Sigmoid", "Softplus", "Softmax", "LogSoftmax", "Silu", "Elu", "Gelu", "Tanh"])
def test_activations_are_finite_and_silent_at_magnitude_1e4(name, dtype):
    layer = lamina.layer(name)
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        y = layer(HUGE.astype(dtype))
        g = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(g).all() and y.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_are_finite_and_silent_for_huge_logits_and_certain_probabilities(dtype):
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype=dtype)
        certain = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
        cases = [
            (lamina.loss("CrossEntropy", from_logits=True), logits, np.array([1, 0])),
            (lamina.loss("CrossEntropy"), certain, np.array([1, 2])),
            (lamina.loss("CrossEntropy"), certain, np.array([0, 1])),
            (lamina.loss("BinaryCrossEntropy", from_logits=True), logits, (logits > 0).astype(dtype)),
            (lamina.loss("BinaryCrossEntropy"), certain, 1 - certain),
            (lamina.loss("BinaryCrossEntropy"), certain, certain),
        ]
        for loss, pred, y in cases:
            value = loss(pred, y)
            grad = loss.backward()
            assert np.isfinite(value) and np.isfinite(grad).all() and grad.dtype == dtype


def test_the_suite_turns_numpy_warnings_into_errors():
    with pytest.raises(RuntimeWarning):
        np.exp(np.array([1e4]))


# -- checkpoints and resuming ----------------------------------------------------------------------------

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


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = train(folder, "full", folder / "checkpoint.npz", folder / "final.npz")
    assert result.returncode == 0, result.stderr
    return weights(folder / "final.npz")


@pytest.mark.parametrize("mode, epochs_saved", [("kill-mid-epoch", 3), ("kill-in-save", 2)])
def test_a_killed_run_leaves_a_sound_checkpoint_and_resumes_to_the_same_weights(tmp_path, uninterrupted, mode, epochs_saved):
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
        lamina.Model([lamina.layer("Linear", 3), lamina.layer("Linear", 1)]).train(x, y, resume_from=tmp_path / "ck.npz", verbose=False)
    with pytest.raises(lamina.ArgumentError, match="the checkpoint was trained with SGD"):
        lamina.Model([lamina.layer("Linear", 1)]).train(x, y, optim="Adam", resume_from=tmp_path / "ck.npz", verbose=False)
    lamina.Model([lamina.layer("Linear", 1)]).save(tmp_path / "plain.npz")
    with pytest.raises(lamina.ArgumentError, match="a saved model, not a checkpoint"):
        lamina.Model([lamina.layer("Linear", 1)]).train(x, y, resume_from=tmp_path / "plain.npz", verbose=False)


def test_lamina_train_resume_continues_the_checkpoint(tmp_path):
    config = tmp_path / "xor.toml"
    config.write_text((ROOT / "examples" / "configs" / "xor.toml").read_text().replace("epochs = 400", "epochs = 30"))
    cli = [sys.executable, "-m", "lamina", "train", str(config), "--quiet"]
    straight = subprocess.run(cli + ["--out", str(tmp_path / "straight")], capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    first = subprocess.run(cli + ["--out", str(tmp_path / "split"), "--epochs", "12"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cli + ["--out", str(tmp_path / "split"), "--resume"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    a = lamina.load(tmp_path / "straight" / "model.npz").parameters()
    b = lamina.load(tmp_path / "split" / "model.npz").parameters()
    assert all(a[k].value.tobytes() == b[k].value.tobytes() for k in a)
    missing = subprocess.run(cli + ["--out", str(tmp_path / "none"), "--resume"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and "no checkpoint at" in missing.stderr


# -- threads ---------------------------------------------------------------------------------------------


def test_predict_from_many_threads_gives_the_results_of_one():
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Conv2D", 4, 3), "Relu", lamina.layer("MaxPool2D", 2), "Flatten",
                          lamina.layer("BatchNorm"), lamina.layer("Linear", 5)])
    inputs = [np.random.default_rng(i).normal(size=(i % 7 + 1, 1, 8, 8)) for i in range(32)]
    expected = [model.predict(x) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(5):
            results[i] = model.predict(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, x in enumerate(expected):
        np.testing.assert_array_equal(results[i], x)


# -- no assert for user input, documented errors ---------------------------------------------------------


def test_the_library_never_uses_assert():
    asserts = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for folder in ("core", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []


def test_argument_checks_work_under_python_dash_o():
    result = subprocess.run(
        [sys.executable, "-O", "-c", "import lamina\ntry:\n    lamina.layer('Linear', units=0)\nexcept lamina.ArgumentError as e:\n    print('caught', e)"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stdout.startswith("caught Linear(units=0)")


def test_every_error_type_is_exported_and_documented():
    import lamina.errors as errors

    types = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, (Exception, Warning))}
    documented = (ROOT / "docs" / "pages" / "errors.md").read_text()
    for name in types:
        assert getattr(lamina, name) is getattr(errors, name)
        assert f"`{name}`" in documented, f"{name} is not in docs/pages/errors.md"
