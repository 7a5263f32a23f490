"""Weights in and out of a model: save_weights / load_weights, `[init]` in `lamina train` configs
(start from a weights file, leave a head out, freeze by name), and `lamina export OUT.safetensors`."""
from __future__ import annotations

import json
import re
import shutil
import textwrap

import numpy as np
import pytest
from conftest import ROOT

import lamina
from lamina.app import config as runconfig
from lamina.app.cli import main

try:
    import torch
except ImportError:  # PyTorch is optional: the torch-layout checks skip without it
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
CONFIGS = ROOT / "examples" / "configs"


def mlp(units=(6, 3), seed=0, x=None):
    lamina.seed(seed)
    model = lamina.Model([lamina.layer("Linear", units[0]), "Relu", lamina.layer("Linear", units[1])])
    model.build(np.zeros((1, 4), np.float32) if x is None else x)
    return model


# -- save_weights / load_weights ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("layout", ["lamina", "torch"])
def test_weights_round_trip_through_a_file(tmp_path, suffix, layout):
    source, target = mlp(seed=0), mlp(seed=1)
    path = source.save_weights(tmp_path / f"w{suffix}", layout=layout)
    assert path == tmp_path / f"w{suffix}" and path.is_file()
    report = target.load_weights(path, layout=layout)
    assert report.ok and (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert np.array_equal(source.predict(x), target.predict(x))
    assert set(lamina.read_weights(path)) == set(source.state_dict(layout=layout))


def test_load_weights_reports_a_new_head_and_strict_refuses_it(tmp_path):
    path = mlp(units=(6, 3)).save_weights(tmp_path / "w.safetensors")
    model = mlp(units=(6, 2), seed=1)
    head = model.parameters()["2.weight"].value.copy()
    with pytest.raises(lamina.ShapeError, match=r"2\.weight.*\(6, 2\).*\(6, 3\)"):
        model.load_weights(path)
    report = model.load_weights(path, strict=False)
    assert report.mismatched == ["2.bias", "2.weight"] or sorted(report.mismatched) == ["2.bias", "2.weight"]
    assert np.array_equal(model.parameters()["2.weight"].value, head)  # the head is left as it was
    assert np.array_equal(model.parameters()["0.weight"].value, lamina.read_weights(path)["0.weight"])


def test_load_weights_needs_a_built_model_before_it_reads_the_file(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 3)])
    with pytest.raises(lamina.LaminaError, match=r"Model\.load_weights: the model is not built yet.*model\.build"):
        model.load_weights(tmp_path / "nowhere.safetensors")


def test_save_weights_keeps_metadata_in_a_safetensors_header(tmp_path):
    from lamina.files.safetensors import read_metadata

    path = mlp().save_weights(tmp_path / "w.safetensors", metadata={"task": "digits"})
    assert read_metadata(path) == {"task": "digits"}


@needs_torch
def test_a_torch_layout_file_loads_into_the_equivalent_torch_model(tmp_path):
    model = mlp(units=(5, 5))  # square layers: a forgotten transpose would not show in the shapes
    path = model.save_weights(tmp_path / "w.npz", layout="torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 5))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in lamina.read_weights(path).items()}, strict=True)
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


# -- lamina export OUT.safetensors --------------------------------------------------------------------


def test_lamina_export_writes_weights_by_suffix(tmp_path, capsys):
    model = mlp()
    model.predict(np.zeros((1, 4), np.float32))
    model.save(tmp_path / "model.npz")
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "w.safetensors"), "--layout", "torch"]) == 0
    assert "4 arrays in the torch layout" in capsys.readouterr().out
    assert lamina.read_weights(tmp_path / "w.safetensors")["0.weight"].shape == (6, 4)  # torch's (out, in)
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "w.npz")]) == 0
    assert lamina.read_weights(tmp_path / "w.npz")["0.weight"].shape == (4, 6)
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "w.bin")]) == 1
    assert "name an .onnx file (the model as a graph) or a .safetensors or .npz file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "m.onnx"), "--layout", "torch"]) == 1
    assert "--layout applies to weights files" in capsys.readouterr().err


# -- [init] in lamina train configs ------------------------------------------------------------------


RUN = """
seed = 0
epochs = 3
batch_size = 16
output = "{output}"
[dataset]
name = "spirals"
n_samples = 90
n_classes = {head}
[[layers]]
type = "Linear"
units = 8
[[layers]]
type = "Tanh"
[[layers]]
type = "Linear"
units = {head}
[loss]
type = "CrossEntropy"
from_logits = true
"""


def run_config(tmp_path, name, head=3, init=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(RUN.format(output=tmp_path / name, head=head) + textwrap.dedent(init))
    return path


def parameters(path):
    return {name: p.value for name, p in lamina.load(path).parameters().items()}


def test_init_starts_from_a_model_file_leaves_the_head_out_and_freezes_by_name(tmp_path, capsys):
    assert main(["train", str(run_config(tmp_path, "first")), "--quiet"]) == 0
    start = parameters(tmp_path / "first" / "model.npz")
    init = f"""
        [init]
        weights = "{tmp_path / 'first' / 'model.npz'}"
        exclude = ["2.*"]
        freeze = ["0.*"]
    """
    assert main(["train", str(run_config(tmp_path, "second", head=2, init=init))]) == 0
    out = capsys.readouterr().out
    assert "init: 2 of the model's 4 arrays from" in out
    assert "trained afresh: 2.bias, 2.weight" in out and "frozen: 0.weight, 0.bias" in out
    second = lamina.load(tmp_path / "second" / "model.npz")
    found = {name: p.value for name, p in second.parameters().items()}
    assert np.array_equal(found["0.weight"], start["0.weight"]) and np.array_equal(found["0.bias"], start["0.bias"])
    assert not second.parameters()["0.weight"].trainable  # the flag is in the file
    assert found["2.weight"].shape == (8, 2)


def test_init_from_a_safetensors_file_in_the_torch_layout(tmp_path):
    assert main(["train", str(run_config(tmp_path, "first")), "--quiet"]) == 0
    assert main(["export", str(tmp_path / "first" / "model.npz"), str(tmp_path / "w.safetensors"),
                 "--layout", "torch", "--quiet"]) == 0
    init = f"""
        [init]
        weights = "{tmp_path / 'w.safetensors'}"
        layout = "torch"
        freeze = ["*"]
    """
    assert main(["train", str(run_config(tmp_path, "second", init=init)), "--quiet"]) == 0
    assert all(np.array_equal(a, b) for a, b in zip(parameters(tmp_path / "first" / "model.npz").values(),
                                                  parameters(tmp_path / "second" / "model.npz").values()))


def test_init_strict_refuses_a_file_that_does_not_fit_naming_what_and_how(tmp_path, capsys):
    assert main(["train", str(run_config(tmp_path, "first")), "--quiet"]) == 0
    init = f"""
        [init]
        weights = "{tmp_path / 'first' / 'model.npz'}"
    """
    assert main(["train", str(run_config(tmp_path, "second", head=2, init=init)), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "init.weights:" in err and "does not fit the model" in err and "2.weight" in err
    assert "init.exclude" in err and "init.strict = false" in err


def test_init_must_be_a_table():
    with pytest.raises(lamina.ConfigError, match=r"init: expected a table with weights, layout, strict"):
        runconfig.parse("init = 3\n" + RUN.format(output="out", head=3), "run.toml")


@pytest.mark.parametrize("init, message", [
    ('[init]\nlayout = "torch"', r"init\.weights: expected the weights file"),
    ('[init]\nweights = "w.safetensors"\nlayout = "keras"', r"init\.layout: expected \"lamina\" \(default\) or "),
    ('[init]\nweights = "w.safetensors"\nstrict = "no"', r"init\.strict: expected true or false"),
    ('[init]\nweights = "w.safetensors"\nfreeze = "0.*"', r"init\.freeze: expected a list of parameter names"),
    ('[init]\nweights = "w.safetensors"\nfrozen = ["0.*"]', r"init\.frozen: unknown key; \[init\] takes weights"),
])
def test_init_tables_are_checked_when_the_config_is_read(init, message):
    with pytest.raises(lamina.ConfigError, match=message):
        runconfig.parse(RUN.format(output="out", head=3) + init, "run.toml")


@pytest.mark.parametrize("init, message", [
    ('weights = "{missing}"', r"init\.weights: no file at .*relative paths are from the current folder"),
    ('weights = "{model}"\nfreeze = ["9.*"]', r"init\.freeze: '9\.\*' matches no name; the names are: 0\.weight"),
    ('weights = "{model}"\nexclude = ["head.*"]', r"init\.exclude: 'head\.\*' matches no name"),
    ('weights = "{model}"\nlayout = "torch"', r"is a lamina model file: its weights have lamina's layout"),
])
def test_init_errors_when_the_run_starts(tmp_path, capsys, init, message):
    assert main(["train", str(run_config(tmp_path, "first")), "--quiet"]) == 0
    table = "[init]\n" + init.format(missing=tmp_path / "missing.safetensors", model=tmp_path / "first" / "model.npz")
    assert main(["train", str(run_config(tmp_path, "second", init=table)), "--quiet"]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_the_transfer_configs_pretrain_then_fine_tune(tmp_path):
    for name in ("digits_pretrain", "digits_finetune"):  # [init] names runs/digits_pretrain: run from tmp_path
        shutil.copy(CONFIGS / f"{name}.toml", tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert main(["train", "digits_pretrain.toml", "--quiet", "--epochs", "5"]) == 0
        assert main(["train", "digits_finetune.toml", "--quiet"]) == 0
    first = parameters(tmp_path / "runs" / "digits_pretrain" / "model.npz")
    second = parameters(tmp_path / "runs" / "digits_finetune" / "model.npz")
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):  # the frozen convolutions
        assert np.array_equal(first[name], second[name])
    assert not np.array_equal(first["7.weight"], second["7.weight"])  # loaded, then trained
    report = json.loads((tmp_path / "runs" / "digits_finetune" / "metrics.json").read_text())
    assert report["test"]["accuracy"] > 0.8  # 5-9 from 10 images each (0.89 with a full pretraining)
