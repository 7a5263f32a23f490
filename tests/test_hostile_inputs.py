"""Hostile inputs to `lamina predict`, `evaluate` and `generate`: data files that lie, model
metadata that would be options, and strings that would drive the terminal. Each case must end
in a result or one line of lamina's error, within 3 GiB of address space and 20 s (`capped`).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import capped

import lamina
from lamina.files import arrays

# -- the files -------------------------------------------------------------------------------------


def _linear_model(path: Path, features: int = 3, classes: list[str] | None = None) -> Path:
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, features), np.float32))
    if classes is not None:
        model.metadata["classes"] = classes
    model.save(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A Linear(2) model on 3 features."""
    return _linear_model(tmp_path_factory.mktemp("model") / "model.npz")


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD = np.arange(12, dtype=np.float64).reshape(4, 3)


def _bad_crc() -> bytes:
    data = bytearray(_npz({"x.npy": _npy_bytes(GOOD)}))
    at = bytes(data).index(GOOD.tobytes()) + 20  # a byte of the stored array's data
    data[at] ^= 0xFF
    return bytes(data)


HOSTILE = {
    "empty.npy": b"",
    "empty.npz": b"",
    "truncated.npz": _npz({"x.npy": _npy_bytes(GOOD)})[:150],
    "bad-crc.npz": _bad_crc(),
    "huge-header.npy": _npy_header((10**10, 3)) + b"\0" * 64,
    "huge-header.npz": _npz({"x.npy": _npy_header((10**10, 3)) + b"\0" * 64}),
    "lying-header.npy": _npy_header((10**8, 3)) + b"\0" * 64,  # 2.4 GB claimed, 64 bytes there
    "short-data.npy": _npy_bytes(GOOD)[:-8],
    "long-data.npy": _npy_bytes(GOOD) + b"\0" * 8,
    "bzip2.npz": _npz({"x.npy": _npy_bytes(GOOD)}, zipfile.ZIP_BZIP2),
    "lzma.npz": _npz({"x.npy": _npy_bytes(GOOD)}, zipfile.ZIP_LZMA),
    "pickle.npy": _npy_header((2,), "|O") + b"\0" * 16,
    "not-numpy.npy": b"PK\x03\x04 not a zip at all",
    "null-in-header.npy": _npy_bytes(GOOD).replace(b"{", b"\0", 1),  # numpy's parser: SyntaxError, TokenError
}


def _lamina(*args: str, **env: str):
    return capped("-m", "lamina", *args, **env)


def _refused(result, *words: str) -> None:
    """One line of lamina's error, naming what the test expects; never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, (result.returncode, result.stdout[-500:], result.stderr[-500:])
    assert result.stderr.startswith("lamina: error: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# -- finding 3: predict and evaluate read data files under the model files' rules -----------------


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_predict_refuses_a_hostile_input_file_with_one_line_naming_it(name, model, tmp_path):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    result = _lamina("predict", str(model), str(path), "--out", str(tmp_path / "out.npy"))
    _refused(result, name)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_input_reader_raises_only_file_format_errors(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    read = arrays.read_npz if name.endswith(".npz") else arrays.read_npy
    with pytest.raises(lamina.FileFormatError, match=name.replace(".", r"\.")):
        read(path)
    with pytest.raises(lamina.FileFormatError, match=name.replace(".", r"\.")):
        arrays.check(path)


@pytest.mark.parametrize("name", ["empty.npz", "truncated.npz", "bad-crc.npz", "huge-header.npz", "bzip2.npz"])
def test_evaluate_refuses_a_hostile_npz(name, model, tmp_path):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    _refused(_lamina("evaluate", str(model), "--data", str(path), "--all-rows"), name)


@pytest.mark.parametrize("name", ["huge-header.npy", "lying-header.npy", "empty.npy", "short-data.npy"])
def test_evaluate_refuses_a_lying_npy_header_even_without_mmap(name, model, tmp_path):
    path, target = tmp_path / name, tmp_path / "y.npy"
    path.write_bytes(HOSTILE[name])
    np.save(target, np.zeros(4, np.int64))
    result = _lamina("evaluate", str(model), "--data", str(path), "--target", str(target),
                     "--data-option", "mmap=false", "--all-rows")
    _refused(result, name)


def test_good_npy_and_npz_inputs_still_predict(model, tmp_path):
    np.save(tmp_path / "x.npy", GOOD)
    np.savez_compressed(tmp_path / "x.npz", x=GOOD.astype(np.float32), y=np.zeros(4))
    np.save(tmp_path / "fortran.npy", np.asfortranarray(GOOD))
    expected = lamina.load(model).predict(GOOD.astype(np.float32))
    for name in ("x.npy", "x.npz", "fortran.npy"):
        result = _lamina("predict", str(model), str(tmp_path / name), "--out", str(tmp_path / "out.npy"))
        assert result.returncode == 0, result.stderr
        np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5)


def test_the_reader_fills_arrays_exactly_and_keeps_their_dtype(tmp_path):
    values = {"a": np.arange(5, dtype=">i4"), "b": np.asfortranarray(np.ones((3, 2), np.float16)),
              "c": np.zeros((0, 3)), "d": np.array([True, False])}
    np.savez_compressed(tmp_path / "all.npz", **values)
    read = arrays.read_npz(tmp_path / "all.npz")
    assert set(read) == set(values)
    for key, value in values.items():
        assert read[key].dtype == value.dtype and read[key].shape == value.shape
        np.testing.assert_array_equal(read[key], value)


def test_the_input_limit_follows_lamina_max_load_bytes(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((100, 3)))
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", "1000")
    with pytest.raises(lamina.FileFormatError, match="2,400 bytes, over the input limit of 1,000 bytes.*"
                                                     "LAMINA_MAX_LOAD_BYTES"):
        arrays.read_npy(tmp_path / "x.npy")
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", "3000")
    assert arrays.read_npy(tmp_path / "x.npy").shape == (100, 3)


def test_a_memory_error_while_reading_is_a_file_format_error(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", GOOD)

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(arrays.np, "empty", no_memory)
    with pytest.raises(lamina.FileFormatError, match="x.npy: not enough memory to read it"):
        arrays.read_npy(tmp_path / "x.npy")


ROWS = 37_500_000  # x 3 float64 = 900 MB of zeros, ~1 MB deflated


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """An .npz whose one member inflates to 900 MB of zeros (an honest header: (37.5M, 3) float64)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((ROWS, 3)))
            zeros = bytes(2**20)
            left = ROWS * 3 * 8
            while left:
                member.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
    assert path.stat().st_size < 4 * 2**20
    return path


def test_a_deflate_bomb_is_refused_over_the_input_limit_before_it_inflates(bomb, model, tmp_path):
    result = _lamina("predict", str(model), str(bomb), "--out", str(tmp_path / "out.npy"),
                     LAMINA_MAX_LOAD_BYTES=str(2**28))
    _refused(result, "bomb.npz", "declare 900,000,128 bytes, over the input limit of 268,435,456 bytes")


def test_a_deflate_bomb_under_the_limit_is_a_result_or_one_line_within_the_cap(bomb, model, tmp_path):
    out = tmp_path / "out.npy"
    result = _lamina("predict", str(model), str(bomb), "--out", str(out), "--batch-size", "1000000")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if result.returncode == 0:
        assert np.load(out, mmap_mode="r").shape == (ROWS, 2)
    else:
        assert result.returncode == 1 and result.stderr.startswith("lamina: error: "), result.stderr


# -- finding 5: a model file's metadata is data, never options --------------------------------------


def _image_model(path: Path, metadata: dict) -> Path:
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Flatten"), lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, 3, 4, 4), np.float32))
    model.metadata.update(metadata)
    model.save(path)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    Image = pytest.importorskip("PIL.Image", reason="image_folder needs Pillow: pip install Pillow")
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (4, 4), (40 * i, 80, 120)).save(folder / f"{i}.png")
    return folder


INPUTS = {"dataset": "image_folder", "options": {"image_size": [4, 4], "color_mode": "rgb"}}


@pytest.mark.parametrize("inputs, words", [
    ({"dataset": "image_folder", "options": {"path": "/"}}, ["['options']['path']", "not an option"]),
    ({"dataset": "npz"}, ["['dataset']", "'npz' does not read folders"]),
    ({"dataset": "image_folder", "options": {"image_size": [8000, 8000]}},
     ["['image_size']", "8000 x 8000 pixels, over lamina's limit"]),
    ({"dataset": "image_folder", "options": {"image_size": [8, 8]}}, ["['image_size']", "(3, 4, 4)"]),
    ({"dataset": "image_folder", "options": {"image_size": "big"}}, ["['image_size']", "'big'"]),
    ({"dataset": "image_folder", "options": {"color_mode": "cmyk"}}, ["color_mode"]),
    ({"dataset": "image_folder", "options": {"color_mode": 3}}, ["['color_mode']"]),
    ({"dataset": "image_folder", "options": {"skip_bad": True}}, ["['skip_bad']"]),
    ({"dataset": "image_folder", "options": [1]}, ["['options']"]),
    ({"dataset": "image_folder", "run": "rm -rf /"}, ["['run']", "not a key"]),
    ({"dataset": ["image_folder"]}, ["['dataset']"]),
    ({"dataset": "no_such_dataset"}, ["no_such_dataset"]),
    ("image_folder", ["metadata['inputs']"]),
])
def test_predict_on_a_folder_takes_only_the_documented_metadata(inputs, words, images, tmp_path):
    model = _image_model(tmp_path / "model.npz", {"inputs": inputs})
    result = _lamina("predict", str(model), str(images))
    _refused(result, "model.npz", *words)


def test_predict_on_a_folder_with_good_metadata_prints_each_file(images, tmp_path):
    model = _image_model(tmp_path / "model.npz", {"inputs": INPUTS, "classes": ["cat", "dog"]})
    result = _lamina("predict", str(model), str(images))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["0.png", "1.png"]
    assert all(line.split("\t")[1] in ("cat", "dog") for line in lines)


HOSTILE_CLASSES = ["bell\x07\x1b[2J", "two\nlines\ttab"]


def test_class_names_reach_the_terminal_escaped(images, tmp_path):
    model = _image_model(tmp_path / "model.npz", {"inputs": INPUTS, "classes": HOSTILE_CLASSES})
    result = _lamina("predict", str(model), str(images))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 3 for line in lines)
    assert {line.split("\t")[1] for line in lines} <= {"bell\\x07\\x1b[2J", "two\\nlines\\ttab"}


def test_unencodable_class_and_file_names_print_under_a_strict_utf8_stdout(images, tmp_path):
    os.rename(images / "1.png", os.fsencode(images) + b"/\xff.png")  # a name that is not UTF-8
    model = _image_model(tmp_path / "model.npz", {"inputs": INPUTS, "classes": ["\udcff", "\ud800"]})
    result = _lamina("predict", str(model), str(images), PYTHONIOENCODING="utf-8:strict")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == ["0.png", "\\xff.png"]
    assert {line.split("\t")[1] for line in lines} <= {"\\xff", "\\ud800"}
    # a file's class names in the rows of an input file, printed without --out, as well
    np.save(tmp_path / "x.npy", GOOD)
    classes = _linear_model(tmp_path / "classes.npz", classes=["\udcff", "\x1b"])
    rows = _lamina("predict", str(classes), str(tmp_path / "x.npy"), PYTHONIOENCODING="utf-8:strict")
    assert rows.returncode == 0, rows.stderr
    assert "\x1b" not in rows.stdout and len(rows.stdout.splitlines()) == 4


def test_class_names_that_are_not_names_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", GOOD)
    model = _linear_model(tmp_path / "model.npz", classes=[["nested"], {"a": 1}])
    result = _lamina("predict", str(model), str(tmp_path / "x.npy"))
    _refused(result, "model.npz", "metadata['classes']")


def test_generate_shows_a_vocabulary_of_controls_escaped(tmp_path):
    lamina.seed(0)
    model = lamina.Model([{"type": "Embedding", "num_embeddings": 2, "dim": 4}, {"type": "Linear", "units": 2}])
    model.predict(np.zeros((1, 4), np.int64))
    model.metadata.update({"vocabulary": "\x1b\x07", "seq_len": 4})
    model.save(tmp_path / "lm.npz")
    result = _lamina("generate", str(tmp_path / "lm.npz"), "--length", "20", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    shown = result.stdout.rstrip("\n")
    assert shown.replace("\\x1b", "").replace("\\x07", "") == "" and len(shown) == 20 * 4


def test_error_messages_quoting_a_file_are_escaped(tmp_path):
    """A message that quotes a file's text (here an image class folder's name) shows it escaped."""
    np.save(tmp_path / "x.npy", GOOD)
    model = _linear_model(tmp_path / "model.npz")
    weird = tmp_path / "bell\x07.npy"
    weird.write_bytes(b"")
    result = _lamina("predict", str(model), str(weird), "--out", str(tmp_path / "o.npy"))
    _refused(result, "bell\\x07.npy")
    assert "\x07" not in result.stderr
