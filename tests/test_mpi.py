"""Data-parallel training over MPI: `mpiexec -n 2` and `-n 3` reach the weights of one process.

These tests need the `mpi` extra (mpi4py and MPICH); .ci/run installs it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, reference

import lamina

try:
    import mpi4py  # noqa: F401

    MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
except ImportError:
    MPIEXEC = None

needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs the mpi extra: pip install -e '.[mpi]'")

SCRIPT = '''
import os, sys
import numpy as np
import lamina

strategy, dtype, out = sys.argv[1], sys.argv[2], sys.argv[3]
fail = os.environ.get("FAIL", "")
x, y, _, _ = lamina.dataset("spirals", n_samples=int(os.environ.get("ROWS", "240")))
x = x.astype(dtype)
if os.environ.get("MEMMAP"):  # read a batch at a time from a file: each process only its own rows
    np.save(f"x-{os.getpid()}.npy", x)
    x = np.load(f"x-{os.getpid()}.npy", mmap_mode="r")
lamina.seed(5)
width = 16 + (lamina.strategy(strategy).rank if fail == "shapes" else 0)
# A skip connection around BatchNorm: nested layers train over MPI like flat ones.
model = lamina.Model([
    lamina.layer("Linear", width), "Relu",
    {"type": "Residual", "layers": [{"type": "BatchNorm"}, {"type": "Linear", "units": width}, "Tanh"]},
    lamina.layer("Linear", 3),
])


class Trouble(lamina.Callback):
    def on_epoch_end(self, epoch, logs):
        rank = lamina.active_strategy().rank
        if fail == "raise" and rank == 1 and epoch == 1:
            raise RuntimeError("rank 1 gives up")
        if fail == "kill" and rank == 1 and epoch == 1:
            os.kill(os.getpid(), 9)


history = model.train(
    x, y, optim=lamina.optimizer("Adam", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
    epochs=3, batch_size=int(os.environ.get("BATCH", "16")), metrics=["accuracy"], validation_split=0.2,
    callbacks=[Trouble()], verbose=True, strategy=strategy,
)
if lamina.active_strategy().is_main:
    np.savez(out, *[p.value for p in model.parameters().values()], *model.buffers().values(),
             **{key: np.array(values) for key, values in history.items()})
'''


def run(tmp_path, ranks, dtype="float64", env=None, timeout=180):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"out-{ranks}-{dtype}.npz"
    command = [sys.executable, str(script), "local" if ranks == 0 else "mpi", dtype, str(out)]
    if ranks:  # -prepend-rank marks each output line with its process, e.g. "[1] ..."
        command = [MPIEXEC, "-prepend-rank", "-n", str(ranks), *command]
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {}))
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=tmp_path)
    return result, out, time.monotonic() - start


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    outputs = {}
    for dtype in ("float64", "float32"):
        result, out, _ = run(folder, 0, dtype)
        assert result.returncode == 0, result.stderr
        outputs[dtype] = dict(np.load(out))
    return outputs


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-10), ("float32", 1e-5)])
def test_mpi_reaches_the_weights_and_history_of_one_process(tmp_path, local_runs, ranks, dtype, tolerance):
    result, out, _ = run(tmp_path, ranks, dtype)
    assert result.returncode == 0, result.stderr
    expected, got = local_runs[dtype], dict(np.load(out))
    assert set(got) == set(expected)
    for key, value in expected.items():
        scale = max(float(np.max(np.abs(value))), 1e-30)
        assert float(np.max(np.abs(got[key] - value))) / scale < tolerance, key
    # only rank 0 showed progress; the others wrote nothing at all
    assert "epoch 3/3" in result.stderr
    assert set(re.findall(r"\[(\d+)\] ", result.stderr)) == {"0"}, result.stderr


SEQUENCE_SCRIPT = '''
import sys
import numpy as np
import lamina

strategy, out = sys.argv[1], sys.argv[2]
generator = np.random.default_rng(0)
x = generator.normal(size=(96, 6, 4))
y = (x[:, :, 0].cumsum(axis=1) > 0).astype(np.int64)  # a label per time step
lamina.seed(2)
model = lamina.Model([
    {"type": "GRU", "units": 8, "return_sequences": True, "bidirectional": True},
    {"type": "TransformerBlock", "num_heads": 2, "ff_units": 12, "dropout": 0.0, "causal": True},
    {"type": "Linear", "units": 2},
])
model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
            epochs=2, batch_size=16, verbose=False, strategy=strategy)
if lamina.active_strategy().is_main:
    np.savez(out, *[p.value for p in model.parameters().values()])
'''


@needs_mpi
def test_sequence_layers_train_over_mpi_as_in_one_process(tmp_path):
    script = tmp_path / "seq.py"
    script.write_text(SEQUENCE_SCRIPT)
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    runs = {}
    for ranks in (0, 2):
        out = tmp_path / f"seq-{ranks}.npz"
        command = [sys.executable, str(script), "local" if ranks == 0 else "mpi", str(out)]
        if ranks:
            command = [MPIEXEC, "-n", str(ranks), *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        with np.load(out) as data:
            runs[ranks] = [data[key] for key in sorted(data.files, key=lambda k: int(k.split("_")[1]))]
    # float64 sums over two shards round differently from one sum, and Adam divides the
    # gradients by their own size: 12 steps take a few elements to ~1e-10 of their parameter.
    for local, parallel in zip(runs[0], runs[2]):
        scale = max(float(np.abs(local).max()), 1e-30)
        assert float(np.abs(local - parallel).max()) / scale < 1e-9


@needs_mpi
def test_mpi_training_from_a_memmap_reaches_the_weights_of_one_process_in_memory(tmp_path, local_runs):
    result, out, _ = run(tmp_path, 2, "float64", env={"MEMMAP": "1"})
    assert result.returncode == 0, result.stderr
    expected, got = local_runs["float64"], dict(np.load(out))
    for key, value in expected.items():
        scale = max(float(np.max(np.abs(value))), 1e-30)
        assert float(np.max(np.abs(got[key] - value))) / scale < 1e-10, key


@needs_mpi
def test_a_killed_rank_stops_the_others_quickly(tmp_path):
    result, out, elapsed = run(tmp_path, 2, env={"FAIL": "kill"}, timeout=120)
    assert result.returncode != 0 and not out.exists(), result.stderr
    assert elapsed < 60, result.stderr


@needs_mpi
def test_an_error_on_one_rank_stops_every_rank_with_the_error(tmp_path):
    result, out, elapsed = run(tmp_path, 3, env={"FAIL": "raise"}, timeout=120)
    assert result.returncode != 0 and not out.exists(), result.stderr
    assert "process 1 of 3 failed" in result.stderr and "rank 1 gives up" in result.stderr, result.stderr
    assert elapsed < 60, result.stderr


@needs_mpi
def test_ranks_that_build_different_models_get_a_clear_error(tmp_path):
    result, _, _ = run(tmp_path, 2, env={"FAIL": "shapes"}, timeout=120)
    assert result.returncode != 0
    assert "the 2 processes built models with different parameters" in result.stderr


@needs_mpi
def test_batches_smaller_than_the_number_of_ranks_are_refused(tmp_path):
    result, _, _ = run(tmp_path, 3, env={"BATCH": "2"}, timeout=120)
    assert result.returncode != 0
    assert "with 3 processes every batch needs at least 3 rows" in result.stderr


def test_mpi_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(lamina.ArgumentError, match=r"pip install mpi4py mpich"):
        lamina.strategy("mpi")


def test_the_local_strategy_is_the_default_and_changes_nothing():
    x, y, _, _ = lamina.dataset("xor")
    histories = []
    for strategy in (None, "local", lamina.strategy("local")):
        lamina.seed(0)
        model = lamina.Model([lamina.layer("Linear", 4), "Tanh", lamina.layer("Linear", 1)])
        histories.append(model.train(x, y, epochs=5, verbose=False, strategy=strategy)["loss"])
    assert histories[0] == histories[1] == histories[2]


@needs_mpi
def test_lamina_train_with_strategy_mpi_writes_once_and_matches_one_process(tmp_path):
    config = tmp_path / "spirals.toml"
    text = (ROOT / "examples" / "configs" / "spirals.toml").read_text().replace("epochs = 150", "epochs = 4")
    config.write_text('strategy = "mpi"\n' + text)
    local = tmp_path / "local.toml"
    local.write_text(text)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "lamina", "train", str(local), "--out", str(tmp_path / "one"),
                          "--quiet"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "lamina", "train", str(config),
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("trained 4 epochs") == 1  # only rank 0 prints
    a = lamina.load(tmp_path / "one" / "model.npz").parameters()
    b = lamina.load(tmp_path / "two" / "model.npz").parameters()
    for key in a:
        assert np.allclose(a[key].value, b[key].value, rtol=1e-5, atol=1e-6), key


FROZEN_SCRIPT = '''
import sys
import numpy as np
import lamina

strategy, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
x, y, _, _ = lamina.dataset("spirals", n_samples=160)
x = x.astype(np.float64)  # float64: two shards' sums round like one sum to ~1e-10
lamina.seed(3)
model = lamina.Model([
    lamina.layer("Linear", 12), "Relu",
    {"type": "Residual", "layers": [{"type": "BatchNorm"}, {"type": "Linear", "units": 12}, "Tanh"]},
    lamina.layer("Linear", 3),
])
model.build(x)
rank = lamina.strategy(strategy).rank
model.layers[0].trainable = mode == "differ" and rank == 1  # the others freeze it alike
model.layers[2].layers[0].trainable = False  # a BatchNorm inside a Residual: inference mode
arrays = {f"before {k}": p.value.copy() for k, p in model.parameters().items()}
arrays.update({f"before {k}": b.copy() for k, b in model.buffers().items()})
model.train(x, y, optim=lamina.optimizer("AdamW", lr=0.01, weight_decay=0.1),
            loss=lamina.loss("CrossEntropy", from_logits=True), epochs=2, batch_size=16, verbose=False,
            strategy=strategy)
if lamina.active_strategy().is_main:
    arrays.update({f"after {k}": p.value for k, p in model.parameters().items()})
    arrays.update({f"after {k}": b for k, b in model.buffers().items()})
    np.savez(out, **arrays)
'''


def _run_frozen(tmp_path, ranks, mode="same"):
    script = tmp_path / "frozen.py"
    script.write_text(FROZEN_SCRIPT)
    out = tmp_path / f"frozen-{ranks}.npz"
    command = [sys.executable, str(script), "local" if ranks == 0 else "mpi", str(out), mode]
    if ranks:
        command = [MPIEXEC, "-n", str(ranks), *command]
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=tmp_path)
    return result, out


@needs_mpi
def test_frozen_layers_stay_bit_identical_over_mpi_while_the_rest_matches_one_process(tmp_path):
    runs = {}
    for ranks in (0, 2):
        result, out = _run_frozen(tmp_path, ranks)
        assert result.returncode == 0, result.stderr
        with np.load(out) as data:
            runs[ranks] = dict(data)
    frozen = ("0.", "2.layers.0.")
    parallel = runs[2]
    names = [key.split(" ", 1)[1] for key in parallel if key.startswith("after ")]
    assert {"0.weight", "2.layers.0.weight", "2.layers.0.running_mean"} <= set(names)
    for name in names:
        before, after = parallel[f"before {name}"], parallel[f"after {name}"]
        if name.startswith(frozen):  # weights, and the frozen BatchNorm's statistics
            assert np.array_equal(after, before), name
        else:
            assert not np.array_equal(after, before), name
            local = runs[0][f"after {name}"]
            scale = max(float(np.abs(local).max()), 1e-30)
            assert float(np.abs(local - after).max()) / scale < 1e-9, name


@needs_mpi
def test_ranks_that_freeze_different_layers_get_a_clear_error(tmp_path):
    result, _ = _run_frozen(tmp_path, 2, mode="differ")
    assert result.returncode != 0
    assert "the 2 processes built models with different parameters" in result.stderr
    assert "freeze the same layers" in result.stderr


# -- metrics over the whole set: the state of every process summed --------------------------------

METRICS_SCRIPT = '''
import sys
import numpy as np
import lamina

out = sys.argv[2]
x, y, _, _ = lamina.dataset("spirals", n_samples=150)
lamina.seed(3)
model = lamina.Model([lamina.layer("Linear", 8), "Tanh", lamina.layer("Linear", 3), "Softmax"])
metrics = ["f1", lamina.metric("recall", average="weighted", name="recall_weighted"),
           lamina.metric("top_k_accuracy", k=2), "auc", lamina.metric("auc", curve="pr", name="auc_pr"),
           "confusion_matrix", "accuracy"]
model.layers[0].trainable = False  # fixed predictions: every epoch's metrics are those of the same outputs
model.layers[2].trainable = False
history = model.train(x, y, loss="CrossEntropy", epochs=2, batch_size=8, metrics=metrics, validation_split=0.2,
                      verbose=False, strategy=sys.argv[1])
if lamina.active_strategy().is_main:
    np.savez(out, pred=model.predict(x), y=y, **{key: np.array(values) for key, values in history.items()})
'''


@needs_mpi
def test_metrics_over_mpi_equal_one_process_and_sklearn(tmp_path):
    metrics = reference("sklearn.metrics", "pip install scikit-learn")
    script = tmp_path / "metrics.py"
    script.write_text(METRICS_SCRIPT)
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    outputs = {}
    for ranks in (0, 2):
        out = tmp_path / f"metrics-{ranks}.npz"
        command = [sys.executable, str(script), "local" if ranks == 0 else "mpi", str(out)]
        if ranks:
            command = [MPIEXEC, "-n", str(ranks), *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs[ranks] = dict(np.load(out))
    one, two = outputs[0], outputs[2]
    assert "confusion_matrix" not in two
    for key in ("f1", "recall_weighted", "top_k_accuracy", "auc", "auc_pr", "accuracy"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(two[f"val_{key}"], one[f"val_{key}"], rtol=1e-12, err_msg=key)
    split = int(len(one["y"]) * 0.8)
    p, y = one["pred"][:split], one["y"][:split]
    assert two["f1"][-1] == pytest.approx(metrics.f1_score(y, p.argmax(1), average="macro"), rel=1e-12)
    assert two["auc"][-1] == pytest.approx(metrics.roc_auc_score(y, p, multi_class="ovr"), rel=1e-12)
    assert two["auc_pr"][-1] == pytest.approx(metrics.average_precision_score(y, p), rel=1e-12)
    assert two["top_k_accuracy"][-1] == pytest.approx(metrics.top_k_accuracy_score(y, p, k=2), rel=1e-12)


GRAPH_SCRIPT = '''
import sys
import numpy as np
import lamina

strategy, out = sys.argv[1], sys.argv[2]
generator = np.random.default_rng(3)
x = {"a": generator.normal(size=(96, 5)), "b": generator.normal(size=(96, 3))}
y = {"cls": generator.integers(0, 3, size=96), "box": generator.normal(size=(96, 2))}
# rows weigh differently per output: each process's share of every output's weights differs
weights = {"cls": generator.uniform(0.0, 2.0, size=96), "box": (np.arange(96) % 3 != 0) * 1.0}
lamina.seed(4)
a, b = lamina.Input((5,), name="a", dtype="float64"), lamina.Input((3,), name="b", dtype="float64")
enc = lamina.layer("Linear", 6)
h = lamina.layer("Concatenate")([lamina.layer("Tanh")(enc(lamina.layer("Linear", 3)(a))), enc(b)])
h = lamina.layer("BatchNorm")(h)
model = lamina.Model(inputs={"a": a, "b": b},
                     outputs={"cls": lamina.layer("Linear", 3)(h), "box": lamina.layer("Linear", 2)(h)})
history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01),
                      loss={"cls": lamina.loss("CrossEntropy", from_logits=True), "box": "MSE"},
                      loss_weights={"cls": 1.0, "box": 0.5}, metrics={"cls": ["accuracy"]}, sample_weight=weights,
                      epochs=3, batch_size=16, validation_split=0.25, verbose=False, strategy=strategy)
if lamina.active_strategy().is_main:
    np.savez(out, *[p.value for p in model.parameters().values()], *model.buffers().values(),
             **{key: np.array(values) for key, values in history.items()})
'''


@needs_mpi
def test_a_two_output_graph_model_trains_over_mpi_as_in_one_process(tmp_path):
    script = tmp_path / "graph.py"
    script.write_text(GRAPH_SCRIPT)
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    runs = {}
    for ranks in (0, 2, 3):
        out = tmp_path / f"graph-{ranks}.npz"
        command = [sys.executable, str(script), "local" if ranks == 0 else "mpi", str(out)]
        if ranks:
            command = [MPIEXEC, "-n", str(ranks), *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs[ranks] = dict(np.load(out))
    assert {"loss", "cls_loss", "box_loss", "cls_accuracy", "val_box_loss"} <= set(runs[0])
    for ranks in (2, 3):
        assert set(runs[ranks]) == set(runs[0])
        for key, value in runs[0].items():  # float64: the shards sum in another order, to ~1e-16
            scale = max(float(np.max(np.abs(value))), 1e-30)
            assert float(np.max(np.abs(runs[ranks][key] - value))) / scale < 1e-10, (ranks, key)
