"""The load-time pass: loading runs one sample of the file's input shape through the layers, and
that pass is bounded like the weights (a limit of its own, a sixteenth of max_bytes, and a clock).

Each case of the audit is a small file generated here, whose declared input shape would make the
pass slow or huge; `lamina info`, `lamina export` and `lamina.load` give a model or a
FileFormatError within 3 GiB of address space and 20 s (conftest.capped).
"""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from conftest import capped

import lamina


def forged(tmp_path, layers, small, input_shape, input_dtype="float32", records=None, name="model.npz"):
    """A model of `layers` built on an input of shape (1, *small), saved, its config then claiming
    `input_shape` (and `input_dtype`; `records` replace its layers' records)."""
    model = lamina.Model(layers)
    model.predict(np.zeros((1, *small), dtype=input_dtype))
    path = tmp_path / name
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        contents = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(contents["config.json"])
    config["input_shape"], config["input_dtype"] = list(input_shape), input_dtype
    if records is not None:
        config["layers"] = records
    contents["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
    return path


LOAD = "import sys, lamina\ntry:\n    lamina.load(sys.argv[1])\nexcept lamina.FileFormatError as err:\n" \
       "    print(err)\n    sys.exit(3)\nprint('loaded')\n"


def refused(path, *expected):
    """Load `path` in a capped process: refused with a FileFormatError holding each of `expected`."""
    result = capped("-c", LOAD, str(path))
    assert result.returncode == 3, (result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    for text in (str(path), "load-time pass", "max_bytes=", *expected):
        assert text in result.stdout, result.stdout
    return result.stdout


def works(*args):
    result = capped("-m", "lamina", *map(str, args))
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_a_recurrent_file_declaring_ten_million_steps_builds_without_the_loop(tmp_path, kind):
    # 1.7 KB; the loop through time took 111 s: building needs only the output's shape
    path = forged(tmp_path, [lamina.layer(kind, 1)], (3, 1), (10**7, 1))
    assert path.stat().st_size < 4000
    assert "LSTM" in works("info", path) or kind != "LSTM"


def test_a_recurrent_layer_whose_sequences_pass_the_limit_is_refused(tmp_path):
    path = forged(tmp_path, [lamina.layer("LSTM", 4, return_sequences=True)], (3, 1), (10**8, 1))
    refused(path, "layers[0] LSTM(", "the output of LSTM(", "(1, 100000000, 4)", "1,073,741,824 bytes")


def test_parallel_fan_out_is_refused_by_its_charges(tmp_path):
    # three concat layers of 1,000 Relu branches on one value: 10^9 values at the third
    relu = {"__lamina_plugin__": "layer", "type": "Relu", "config": {}}
    parallel = {"__lamina_plugin__": "layer", "type": "Parallel",
                "config": {"branches": [[relu]] * 1000, "merge": "concat", "axis": -1}}
    path = forged(tmp_path, ["Relu"], (1,), (1,), records=[parallel] * 3)
    assert path.stat().st_size < 10_000
    message = refused(path, "layers[2] Parallel(", "the output of Relu()")
    assert len(message) < 800  # a thousand branches are not spelled out


def test_a_long_attention_file_loads_and_exports_without_its_scores(tmp_path):
    path = forged(tmp_path, [lamina.layer("MultiHeadAttention", 1, causal=True)], (3, 2), (24000, 2))
    assert "MultiHeadAttention" in works("info", path)
    pytest.importorskip("onnx", reason="ONNX export needs onnx, an optional extra (pip install onnx)")
    out = tmp_path / "model.onnx"
    works("export", path, out)
    assert out.stat().st_size < 2**20  # the causal mask (2.3 GB) is made by the graph, not stored


def test_an_embedding_file_declaring_a_huge_output_is_refused_before_it(tmp_path):
    path = forged(tmp_path, [lamina.layer("Embedding", 5, 4)], (3,), (10**8,), input_dtype="int64")
    refused(path, "layers[0] Embedding(", "the output of Embedding(", "(1, 100000000, 4)")


def test_a_padding_of_ten_million_is_refused_before_its_output(tmp_path):
    path = forged(tmp_path, [lamina.layer("Conv1D", 16, 3, padding=10**7)], (1, 1), (1, 1))
    refused(path, "layers[0] Conv1D(", "the output of Conv1D(")


def test_a_float128_sample_at_the_input_bound_is_refused_before_it_exists(tmp_path):
    path = forged(tmp_path, [lamina.layer("Conv2D", 1, 3, padding=1)], (1, 3, 3), (1, 10**4, 10**4),
                  input_dtype="float128")
    refused(path, "the sample input of shape (1, 1, 10000, 10000) (float128)")


def test_the_pass_limit_follows_max_bytes(tmp_path):
    path = forged(tmp_path, ["Relu", "Relu"], (20_000,), (20_000,))
    assert lamina.load(path).input_shape == (20_000,)  # 80 KB a layer: far under 1 GiB
    with pytest.raises(lamina.FileFormatError, match=r"layers\[0\] Relu\(\).*over its limit of 131,072 bytes"):
        lamina.load(path, max_bytes=2**21)  # the pass may hold 128 KiB: the input and Relu's output are 160 KB


def test_the_pass_stops_between_layers_past_its_time():
    from lamina.files.budget import Pass

    meter = Pass("model.npz", 2**20, 0.0, "raise it", started=0.0)
    with pytest.raises(lamina.FileFormatError, match=r"model.npz: the load-time pass through layers\[3\] X has run"):
        meter.begin("layers[3] X", 0)


class Big(lamina.Layer):
    """A plugin layer that reserves a temporary of 8 MB before making it."""

    def forward(self, x):
        self.reserve((x.shape[0], 2**20), np.float64, "the temporary")
        return x * 0 if self.only_building else x

    def backward(self, grad):
        return grad


def test_a_plugin_layer_reserves_and_knows_it_is_only_building():
    from lamina.files.budget import Pass
    from lamina.protocols.layer import building, metering

    layer, x = Big(), np.ones((2, 3))
    assert not layer.only_building
    layer(x)  # outside a metered pass: nothing charged, nothing refused
    meter = Pass("file", 2**24, 10.0, "raise it")
    with metering(meter), building():
        assert layer.only_building
        layer(x)
        assert meter.used == 2 * 2**20 * 8
        with pytest.raises(lamina.FileFormatError, match=r"the temporary of Big\(\), of shape \(2, 1048576\)"):
            layer(x)
