"""Fuzzing `lamina predict`'s doors: the input file (.npy, .npz, .csv bytes, mutated and cut) and
the metadata a model file carries for predicting on a folder. Every outcome must be a result or
one line of lamina's error (exit 0 or 1), never another exception. Run in-process: the input
limit is set low (LAMINA_MAX_LOAD_BYTES), so no example can allocate much.

    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz_inputs.py     # 5,000 examples each
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lamina
from lamina.app.cli import main

FUZZ = settings(max_examples=settings().max_examples * 10)  # 200 in CI
LIMIT = str(2**24)  # 16 MiB: what one fuzzed input may allocate


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("x.npy", _npy(np.arange(12, dtype=np.float32).reshape(4, 3)))
        archive.writestr("y.npy", _npy(np.arange(4)))
    return buffer.getvalue()


SEEDS = {
    ".npy": _npy(np.arange(12, dtype=np.float64).reshape(4, 3)),
    ".npz": _npz(zipfile.ZIP_STORED),
    ".npz ": _npz(zipfile.ZIP_DEFLATED),  # the space keeps the key distinct; stripped for the suffix
    ".csv": b"a,b,c\n1,2,3\n4.5,5,6\n-7,8e3,9\n",
}


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A valid input file's bytes, cut, with bytes overwritten, inserted or removed."""
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "digits"]))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at: at + draw(st.integers(1, 8))]
        else:  # a shape or size grown by digits, as a lying header would
            data[at:at] = draw(st.sampled_from([b"9", b"99999", b"1" * 12]))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return suffix.strip(), bytes(data)


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> Path:
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, 3), np.float32))
    path = tmp_path_factory.mktemp("fuzz-model") / "model.npz"
    model.save(path)
    return path


@FUZZ
@given(case=mutated())
def test_predict_on_mutated_input_files_gives_a_result_or_one_line(case, linear, monkeypatch, capsys):
    suffix, data = case
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", LIMIT)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        code = main(["predict", str(linear), str(path), "--out", str(Path(folder) / "out.npy")])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert code == 0 or err.startswith("lamina: error: "), err


# -- the metadata of predict on a folder ------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["dataset", "options", "path", "image_size", "color_mode", "skip_bad", "cache"])
SIZES = st.one_of(JSON, st.lists(st.integers(-2, 10**5), min_size=0, max_size=3), st.integers(-1, 10**5))
OPTIONS = st.one_of(
    JSON,
    st.fixed_dictionaries({}, optional={"image_size": SIZES, "color_mode": st.sampled_from(["rgb", "grayscale", "L"])
                                        | JSON, "path": JSON, "cache": JSON}),
)
INPUTS = st.one_of(
    JSON,
    st.fixed_dictionaries({"dataset": st.sampled_from(["image_folder", "npz", "csv", "text", "nope"]) | JSON},
                          optional={"options": OPTIONS}),
    st.dictionaries(KEYS, JSON, max_size=3),
)
CLASSES = st.one_of(st.none(), JSON, st.lists(st.text(max_size=6), max_size=3))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    Image = pytest.importorskip("PIL.Image", reason="image_folder needs Pillow: pip install Pillow")
    folder = tmp_path_factory.mktemp("fuzz-images")
    for i in range(2):
        Image.new("RGB", (4, 4), (60 * i, 80, 120)).save(folder / f"{i}.png")
    return folder


@FUZZ
@given(inputs=INPUTS, classes=CLASSES)
def test_predict_on_a_folder_with_fuzzed_metadata_gives_a_result_or_one_line(inputs, classes, images, capsys):
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Flatten"), lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, 3, 4, 4), np.float32))
    model.metadata["inputs"] = inputs
    if classes is not None:
        model.metadata["classes"] = classes
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        try:
            model.save(path)
        except lamina.LaminaError:
            return  # metadata that model.save itself refuses never reaches predict
        code = main(["predict", str(path), str(images)])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert code == 0 or err.startswith("lamina: error: "), err
    assert "\x1b" not in out and "\x07" not in out
    if code == 0:
        assert all(len(line.split("\t")) == 3 for line in out.splitlines())
