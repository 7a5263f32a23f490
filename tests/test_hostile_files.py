"""Opening a stranger's model file: bounded memory and time, and only lamina's documented errors.

The audit's cases, each generated here (small on disk): compression bombs, lying headers,
huge declared layers, deep or huge JSON, forged optimizer state and progress, duplicate
members, and text from the file that tries to become a command or a terminal escape.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import ROOT, capped

import lamina


@pytest.fixture
def saved(tmp_path):
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 3), "Relu", lamina.layer("Linear", 2)])
    model.train(np.ones((8, 5)), np.zeros((8, 2)), optim="Adam", epochs=2, batch_size=4, verbose=False)
    path = tmp_path / "model.npz"
    model.save(path, include_optimizer=True, progress={"epoch": 2, "history": {"loss": [1.0, 0.5]}})
    return path


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write(path, contents, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def rewrite_config(path, change):
    contents = members(path)
    config = json.loads(contents["config.json"])
    change(config)
    contents["config.json"] = json.dumps(config)
    write(path, contents)


def refused(path, expected, **kwargs):
    """Load `path`: a FileFormatError with `expected` in it, in a few seconds, allocating little."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(lamina.FileFormatError) as info:
            lamina.load(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in str(info.value), str(info.value)
    assert str(path) in str(info.value)
    assert time.perf_counter() - start < 10
    assert peak < 256 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # bz2 inflates a whole block at a time
    return str(info.value)


def npy_header(shape, dtype="<f4"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


# -- compression bombs and lying headers -------------------------------------------------------------


def bomb(path, name, compression, mebibytes, header=b""):
    """Rewrite the model file at `path` with member `name` as `header` and then `mebibytes` MiB of
    zeros, compressed with `compression` (small on disk, big inflated)."""
    contents = members(path)
    with zipfile.ZipFile(path, "w") as archive:
        for other, data in contents.items():
            if other != name:
                archive.writestr(other, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = compression
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(header)
            chunk = bytes(2**20)
            for _ in range(mebibytes):
                member.write(chunk)
    assert path.stat().st_size < 2 * 2**20  # small on disk


def test_a_deflated_member_that_inflates_past_its_header_is_refused_after_its_honest_size(saved):
    bomb(saved, "weights/0.weight.npy", zipfile.ZIP_DEFLATED, 256, npy_header((5, 3)))
    refused(saved, "holds more data than its header says")


def test_a_deflate_bomb_stays_bounded_in_a_fresh_process(saved):
    bomb(saved, "weights/0.weight.npy", zipfile.ZIP_DEFLATED, 256, npy_header((5, 3)))
    script = "import sys, lamina\ntry:\n    lamina.load(sys.argv[1])\nexcept lamina.FileFormatError as e:\n    print(e)"
    result = capped("-c", script, str(saved))
    assert result.returncode == 0, result.stderr[-2000:]  # a MemoryError over 3 GiB would be a traceback
    assert "holds more data than its header says" in result.stdout


@pytest.mark.parametrize("compression, method", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")])
@pytest.mark.parametrize("name", ["weights/0.weight.npy", "config.json"])
def test_a_member_compressed_other_than_lamina_writes_is_refused_before_it_is_read(saved, compression, method, name):
    # zipfile inflates bzip2 and lzma with no bound on one read: 4 GiB of zeros in one bzip2
    # member took 2.7 GB and 6-16 s to reach a FileFormatError. Refused from the zip directory.
    bomb(saved, name, compression, 32, npy_header((5, 3)) if name.endswith(".npy") else b"")
    refused(saved, f"the member {name!r} is compressed with {method}; lamina reads members stored or compressed "
                   "with deflate")
    result = capped("-m", "lamina", "info", str(saved))
    assert result.returncode == 1 and result.stderr.startswith("lamina: error:")
    assert f"compressed with {method}" in result.stderr and "Traceback" not in result.stderr


def test_a_header_claiming_a_huge_shape_is_refused_before_reading(saved):
    contents = members(saved)
    contents["weights/0.weight.npy"] = npy_header((10**12,)) + bytes(64)
    write(saved, contents)
    refused(saved, "has shape (1000000000000,), the layer needs (5, 3)")


def test_a_config_padded_with_gigabytes_of_whitespace_is_refused_unread(saved):
    contents = members(saved)
    with zipfile.ZipFile(saved, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            if name != "config.json":
                archive.writestr(name, data)
        with archive.open("config.json", "w", force_zip64=True) as member:
            member.write(contents["config.json"][:-1])
            chunk = b" " * 2**20
            for _ in range(80):
                member.write(chunk)
            member.write(b"}")
    refused(saved, "config.json declares more than 67,108,864 bytes")


# -- what the layers would build --------------------------------------------------------------------------


def test_a_tiny_file_describing_a_huge_embedding_is_refused_before_allocating(tmp_path):
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Embedding", 4, 2), lamina.layer("Flatten")])
    model.predict(np.zeros((1, 3), dtype=np.int64))
    path = tmp_path / "embedding.npz"
    model.save(path)
    rewrite_config(path, lambda c: c["layers"][0]["config"].update(num_embeddings=10**6, dim=10**6))
    assert path.stat().st_size < 2000
    refused(path, "would make the layers allocate more than the weights the file declares")


def test_a_linear_layer_far_larger_than_its_declared_weights_is_refused_before_allocating(saved):
    rewrite_config(saved, lambda c: c["layers"][0]["config"].update(units=300_000_000))
    refused(saved, "would make the layers allocate more than the weights the file declares")


def test_declared_weights_over_the_parameter_limit_are_refused_from_the_config_alone(saved):
    rewrite_config(saved, lambda c: c["weights"]["0.weight"].update(shape=[3 * 10**4, 10**5]))
    refused(saved, "parameters, over the loading limit of 2,147,483,648 parameters")


def test_declared_weights_over_the_byte_limit_name_the_way_to_raise_it(saved):
    rewrite_config(saved, lambda c: c["weights"]["0.weight"].update(shape=[5, 10**8]))
    message = refused(saved, "its weights and buffers declare 4,000,000,", max_bytes=2**30)
    assert "lamina.load(path, max_bytes=...)" in message and "LAMINA_MAX_LOAD_BYTES" in message


def test_the_byte_budget_is_overridable(saved, monkeypatch):
    refused(saved, "over the loading limit of 100 bytes", max_bytes=100)
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", "100")
    refused(saved, "over the loading limit of 100 bytes")
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", str(2**20))
    assert isinstance(lamina.load(saved), lamina.Model)
    with pytest.raises(lamina.ArgumentError, match="max_bytes must be a positive int"):
        lamina.load(saved, max_bytes=0)


# -- JSON, zip and .npy oddities ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, expected",
    [
        # refused as too deep for json (3.11), or as not lamina's format (3.13 parses it)
        (b'{"format": "lamina.model", "format_version": 1, "layers": ' + b"[" * 5000 + b"]" * 5000 + b"}", ""),
        (b'{"format": "lamina.model", "format_version": 1, "layers": [], "n": ' + b"9" * 5000 + b"}",
         "config.json is not valid JSON"),
        (b'{"format": "lamina.model", "format_version": 1, "layers": [], "plugins": ["x"]}',
         "'plugins' is not a table"),
        (b'{"format": "lamina.model", "format_version": true, "layers": []}', "newer than this lamina reads"),
    ],
    ids=["deep", "5000-digits", "plugins-list", "bool-version"],
)
def test_malformed_json_is_a_file_format_error(saved, config, expected):
    contents = members(saved)
    contents["config.json"] = config
    write(saved, contents)
    refused(saved, expected)


def test_an_unsupported_zip_version_is_a_file_format_error(saved):
    data = bytearray(saved.read_bytes())
    at = data.find(b"PK\x01\x02")  # the first central directory entry: "version needed" at +6
    data[at + 6 : at + 8] = (84).to_bytes(2, "little")  # 8.4
    saved.write_bytes(bytes(data))
    refused(saved, "")


def test_duplicate_members_are_refused(saved):
    contents = members(saved)
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(saved, "a") as archive:
            archive.writestr("weights/0.bias.npy", contents["weights/0.bias.npy"])
    refused(saved, "has the member 'weights/0.bias.npy' twice")


# -- optimizer state, progress and the generator --------------------------------------------------------------


def test_optimizer_state_of_the_wrong_shape_is_refused_at_load(saved):
    contents = members(saved)
    config = json.loads(contents["config.json"])
    array_name = config["optimizer"]["state"]["0.weight"]["exp_avg"]["array"]
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 2), dtype=np.float32))
    contents[array_name] = buffer.getvalue()
    write(saved, contents)
    refused(saved, "has shape (2, 2), the layer needs (5, 3)")


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["optimizer"]["state"]["0.weight"]["step"].update(value="abc"),
        lambda c: c["optimizer"].update(iterations=-3),
        lambda c: c["progress"].update(epoch="x"),
        lambda c: c["progress"].update(history={"loss": ["a"]}),
        lambda c: c.update(rng_state={"bit_generator": "PCG64", "state": {"state": -1, "inc": -1}}),
    ],
    ids=["step-text", "iterations-negative", "epoch-text", "history-text", "generator-state"],
)
def test_forged_optimizer_state_progress_or_generator_is_refused_by_load_and_resume(saved, change):
    rewrite_config(saved, change)
    refused(saved, "")
    model = lamina.Model([lamina.layer("Linear", 3), "Relu", lamina.layer("Linear", 2)])
    with pytest.raises(lamina.FileFormatError):
        model.train(np.ones((8, 5)), np.zeros((8, 2)), epochs=3, verbose=False, resume_from=saved)


def test_loading_leaves_lamina_s_generator_alone(saved):
    lamina.seed(5)
    before = lamina.rng().bit_generator.state
    lamina.load(saved)
    assert lamina.rng().bit_generator.state == before


# -- text from the file is data --------------------------------------------------------------------------------


def test_info_never_prints_a_command_or_an_escape_from_the_file(saved):
    evil = "requests-oauthlib2'; rm -rf ~; echo '"
    rewrite_config(saved,
                   lambda c: c.update(plugins={evil: ">=1.0", "\x1b[31mred": "1.0"}, lamina_version="\x1b]0;owned\x07"))
    result = subprocess.run([sys.executable, "-m", "lamina", "info", str(saved)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    out = result.stdout + result.stderr
    assert "\x1b" not in out and "\x07" not in out
    assert "pip install 'requests-oauthlib2'; rm" not in out
    assert "which is not a valid package name" in out
    assert "\\x1b[31mred" in out  # shown, escaped


def test_info_on_a_malformed_plugins_field_is_one_error_line(saved):
    rewrite_config(saved, lambda c: c.update(plugins=["lamina"]))
    result = subprocess.run([sys.executable, "-m", "lamina", "info", str(saved)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("lamina: error:") and "'plugins' is not a table" in result.stderr
    assert "Traceback" not in result.stderr


# -- under a memory cap, the fuzzer's promise holds ---------------------------------------------------------------


CAPPED = r"""
import io, os, resource, sys, zipfile, tempfile, json
import numpy as np
import lamina
soft = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024 + 1024 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (soft, soft))   # 1 GiB beyond what this process has mapped
path = sys.argv[1]
rng = np.random.default_rng(0)
original = open(path, "rb").read()
counts = {"model": 0, "error": 0}
for i in range(int(sys.argv[2])):
    data = bytearray(original)
    for _ in range(rng.integers(1, 6)):
        data[rng.integers(0, len(data))] = rng.integers(0, 256)
    with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as handle:
        handle.write(bytes(data))
    try:
        lamina.load(handle.name)
        counts["model"] += 1
    except lamina.LaminaError:
        counts["error"] += 1
    finally:
        os.unlink(handle.name)
print(json.dumps(counts))
"""


def test_byte_mutations_give_a_model_or_a_lamina_error_under_a_memory_cap(saved, tmp_path):
    script = tmp_path / "capped.py"
    script.write_text(CAPPED)
    result = subprocess.run([sys.executable, str(script), str(saved), "300"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout)
    assert counts["model"] + counts["error"] == 300
