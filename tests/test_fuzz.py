"""Fuzzing the two doors through which outside data comes in: model files (`lamina.load`) and
`lamina train` configs. Every outcome must be a result or one of lamina's documented errors:
never another exception, a hang, or code run from the file (files hold no pickle at all).

    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py     # 5,000 examples each
"""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lamina
from lamina.app import config as runconfig

FUZZ = settings(max_examples=settings().max_examples * 10)  # 200 in CI


def _valid_model_bytes() -> bytes:
    lamina.seed(0)
    model = lamina.Model([
        lamina.layer("Linear", 4, bias_init=lamina.initializer("normal", std=0.1)), lamina.layer("BatchNorm"),
        "Relu", lamina.layer("Dropout", 0.1), lamina.layer("Linear", 2), "Softmax",
    ])
    x = np.random.default_rng(0).normal(size=(8, 3))
    model.train(x, np.arange(8) % 2, optim="Adam", loss="CrossEntropy", metrics=["accuracy"], epochs=2, verbose=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.npz"
        model.save(path, include_optimizer=True, progress={"epoch": 2, "history": {"loss": [1.0, 0.5]}})
        return path.read_bytes()


VALID = _valid_model_bytes()
with zipfile.ZipFile(io.BytesIO(VALID)) as _archive:
    MEMBERS = {name: _archive.read(name) for name in _archive.namelist()}
CONFIG = json.loads(MEMBERS["config.json"])


def load(data: bytes) -> lamina.Model:
    """Load `data` as a model file, leaving lamina's generator as it was."""
    state = lamina.rng().bit_generator.state  # a checkpoint restores the generator; keep ours
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.npz"
        path.write_bytes(data)
        try:
            return lamina.load(path)
        finally:
            lamina.rng().bit_generator.state = state


def load_bytes(data: bytes) -> None:
    """Load `data` as a model file: a Model, or a LaminaError; anything else fails the test."""
    try:
        model = load(data)
    except lamina.LaminaError:
        return
    assert isinstance(model, lamina.Model)


def test_the_unmutated_file_loads():
    # The baseline of every fuzzer below: were the valid file refused, each mutation of it
    # would be refused too, and every fuzzer would pass without testing anything.
    try:
        model = load(VALID)
    except lamina.LaminaError as err:
        pytest.fail(f"the unmutated model file is refused: {type(err).__name__}: {err}")
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "BatchNorm", "Relu", "Dropout", "Linear",
                                                                "Softmax"]
    assert model.progress == {"epoch": 2, "history": {"loss": [1.0, 0.5]}}
    assert model.predict(np.ones((2, 3))).shape == (2, 2)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    load_bytes(data)


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, len(VALID)))
def test_random_bytes_after_a_zip_header(tail, cut):
    load_bytes(VALID[:cut] + tail)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(1, len(VALID)))
def test_flipped_and_truncated_bytes(flips, length):
    data = bytearray(VALID[:length])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    load_bytes(bytes(data))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every key path in a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


PATHS = [p for p in _paths(CONFIG) if p]


def _rewrite(config: dict | list | None = None, members: dict[str, bytes] | None = None) -> bytes:
    members = dict(MEMBERS if members is None else members)
    if config is not None:
        members["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=3))
def test_mutated_config_values(changes):
    config = json.loads(MEMBERS["config.json"])
    for path, value in changes:
        target = config
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    load_bytes(_rewrite(config))


@FUZZ
@given(st.sampled_from(sorted(MEMBERS)), st.binary(max_size=256))
def test_a_replaced_member(name, data):
    load_bytes(_rewrite(members={**MEMBERS, name: data}))


ARRAYS = sorted(name for name in MEMBERS if name.endswith(".npy"))
COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def _compressed(members: dict[str, bytes], compression: dict[str, int]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data, compress_type=compression.get(name, zipfile.ZIP_STORED))
    return buffer.getvalue()


@FUZZ
@given(st.sampled_from(ARRAYS), st.lists(st.integers(0, 10**7), max_size=4),
       st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "<U3"]),
       st.integers(0, 2**16), st.sampled_from(COMPRESSIONS))
def test_a_lying_npy_header_in_a_compressed_member(name, shape, descr, padding, compression):
    """A header that claims any shape and dtype, over zeros that may be longer or shorter than it says."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    load_bytes(_compressed({**MEMBERS, name: header.getvalue() + bytes(padding)}, {name: compression}))


@FUZZ
@given(st.sampled_from(sorted(MEMBERS)), st.binary(max_size=512), st.sampled_from(COMPRESSIONS))
def test_a_replaced_compressed_member(name, data, compression):
    load_bytes(_compressed({**MEMBERS, name: data}, {name: compression}))


# -- lamina train configs ------------------------------------------------------------------------------

DIGITS_TOML = (Path(__file__).resolve().parent.parent / "examples" / "configs" / "digits.toml").read_text()


def build(text: str) -> list[object]:
    """Parse a config and build what it describes (not the training): the layers, the loss,
    the optimizer, the metrics and the callbacks."""
    config = runconfig.parse(text, "fuzzed.toml")
    layers = [runconfig.build(config, "layer", spec, f"layers[{i}]") for i, spec in enumerate(config.get("layers"))]
    return [
        layers,
        runconfig.build(config, "loss", config.get("loss", "MSE"), "loss"),
        runconfig.build_optimizer(config),
        runconfig.build_list(config, "metric", "metrics"),
        runconfig.build_list(config, "callback", "callbacks"),
    ]


def parse_and_build(text: str) -> None:
    """Parse a config and build what it describes: a result or a ConfigError."""
    try:
        build(text)
    except lamina.ConfigError:
        return


def test_the_unmutated_config_builds():
    # The baseline of the config fuzzers: a refused digits.toml would make them all vacuous.
    try:
        layers, loss, optim, metrics, _ = build(DIGITS_TOML)
    except lamina.ConfigError as err:
        pytest.fail(f"the unmutated config examples/configs/digits.toml is refused: {err}")
    assert layers and all(isinstance(layer, lamina.Layer) for layer in layers)
    assert isinstance(loss, lamina.Loss) and isinstance(optim, lamina.Optimizer)
    assert all(isinstance(metric, lamina.Metric) for metric in metrics)


@FUZZ
@given(st.text(max_size=400))
def test_random_text_as_a_config(text):
    parse_and_build(text)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(DIGITS_TOML)), st.integers(0, 6), st.text(max_size=6)), min_size=1,
                max_size=5))
def test_mutated_configs(edits):
    text = DIGITS_TOML
    for position, removed, inserted in edits:
        position = min(position, len(text))
        text = text[:position] + inserted + text[position + removed :]
    parse_and_build(text)


@FUZZ
@given(st.sampled_from(["epochs", "batch_size", "seed", "validation_split", "metrics", "output", "shuffle",
                        "clip_grad_norm"]),
       st.sampled_from(["0", "-1", "1.5", "'x'", "[]", "[1, 2]", "true", "{a = 1}", "1e400", "nan", "inf",
                        "9999999999999999999"]))
def test_top_level_values_of_every_type(key, value):
    parse_and_build(f"{key} = {value}\n" + DIGITS_TOML.replace(f"\n{key} =", "\n_removed_" + key + " ="))


# -- nesting: deep keys in configs, deep metadata in model files ----------------------------------------


def _nested(shape: list[str], leaf: object) -> object:
    """`leaf` inside tables ("t") and lists ("l"), outermost first, built without recursion."""
    value = leaf
    for kind in reversed(shape):
        value = {"k": value} if kind == "t" else [value]
    return value


NESTED_CONFIG = """epochs = 1
{top}
[dataset]
name = "spirals"
{dataset}
[[layers]]
type = "Linear"
units = 3
{layers}
[optimizer]
type = "SGD"
{optimizer}
"""


@FUZZ
@given(st.sampled_from(["top:seed", "top:shuffle", "top:extra", "dataset:n_samples", "layers:units", "layers:extra",
                        "optimizer:lr"]),
       st.one_of(st.integers(1, 3000), st.sampled_from([97, 98, 99, 100, 101, 3000])),
       st.sampled_from(["1", "'x'", "[]", "{}", "[[1]]"]), st.one_of(st.integers(0, 400), st.just(0)))
def test_deep_dotted_keys_and_arrays_in_configs(where, dots, value, brackets):
    """A key of up to 3,000 dots, holding arrays up to 400 deep, anywhere: a result or a ConfigError."""
    table, key = where.split(":")
    parts = dict.fromkeys(["top", "dataset", "layers", "optimizer"], "")
    parts[table] = f"{key}{'.x' * dots} = {'[' * brackets}{value}{']' * brackets}"
    parse_and_build(NESTED_CONFIG.format(**parts))


@FUZZ
@given(st.one_of(st.integers(0, 700), st.sampled_from([96, 97, 98, 99, 600]))
       .flatmap(lambda n: st.lists(st.sampled_from("tl"), min_size=n, max_size=n)),
       st.sampled_from([1, "x", None, 1.5, [], {}]))
def test_nested_metadata_saves_and_loads_alike(shape, leaf):
    """Metadata of any nesting: saved and loaded back unchanged, or refused by both save (an
    ArgumentError) and a forged file's load (a FileFormatError), at the same limit."""
    metadata = {"m": _nested(shape, leaf)}
    model = load(VALID)
    model.metadata.clear()
    model.metadata.update(metadata)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.npz"
        try:
            model.save(path)
        except lamina.ArgumentError:
            saved = False
        else:
            saved = True
            assert load(path.read_bytes()).metadata == metadata
    forged = {**CONFIG, "metadata": metadata}
    try:
        load(_rewrite(forged))
    except lamina.FileFormatError:
        assert not saved
    else:
        assert saved
