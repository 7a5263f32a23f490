"""Weights files (`lamina.read_weights`, `lamina.write_weights`): safetensors and .npz by suffix,
round trips of every dtype, and the `safetensors` package as the reference both ways."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import lamina
from lamina.files.atomic import leftover_temporaries
from lamina.files.safetensors import read_metadata

try:
    import safetensors
    import safetensors.numpy as reference
except ImportError:  # only a test reference, never a dependency of lamina
    safetensors = reference = None

needs_reference = pytest.mark.skipif(reference is None, reason="the reference implementation: pip install safetensors")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SUFFIXES = [".safetensors", ".npz"]


def sample(dtype, shape=(2, 3)):
    values = np.arange(int(np.prod(shape))).reshape(shape) % (2 if dtype == "bool" else 100)
    return np.asarray(values - 3 * (np.dtype(dtype).kind in "if")).astype(dtype)


def header(path):
    data = path.read_bytes()
    return json.loads(data[8: 8 + int.from_bytes(data[:8], "little")])


def assert_same(found, expected):
    assert list(found) == list(expected) or sorted(found) == sorted(expected)
    for name, array in expected.items():
        assert found[name].dtype == array.dtype.newbyteorder("="), name
        assert found[name].shape == array.shape, name
        np.testing.assert_array_equal(found[name], array)


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips(tmp_path, suffix, dtype):
    tensors = {"0.weight": sample(dtype), "scalar": sample(dtype, ()), "empty": sample(dtype, (0, 4)),
               "row": sample(dtype, (5,))}
    path = tmp_path / f"w{suffix}"
    lamina.write_weights(path, tensors)
    found = lamina.read_weights(path)
    assert_same(found, tensors)
    assert found["scalar"].shape == () and found["empty"].shape == (0, 4)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_big_endian_and_non_contiguous_arrays_are_written_as_their_values(tmp_path, suffix):
    base = np.arange(24, dtype=">f8").reshape(4, 6)
    tensors = {"transposed": base.T, "strided": base[::2, 1::2], "big": np.arange(5, dtype=">i4")}
    path = tmp_path / f"w{suffix}"
    lamina.write_weights(path, tensors)
    found = lamina.read_weights(path)
    assert_same(found, tensors)
    assert all(array.dtype.isnative for array in found.values())


def test_read_tensors_are_writable_arrays_of_their_own(tmp_path):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"a": np.ones((3, 2), np.float32), "b": np.zeros(4, np.int64)})
    found = lamina.read_weights(path)
    for array in found.values():
        assert array.flags.owndata and array.flags.writeable and array.flags.c_contiguous
    found["a"][0, 0] = 5.0
    assert lamina.read_weights(path)["a"][0, 0] == 1.0


def test_metadata_round_trips_in_the_header(tmp_path):
    path = tmp_path / "w.safetensors"
    metadata = {"format": "pt", "note": 'quotes " and \\ and \n and é and \x00'}
    lamina.write_weights(path, {"a": np.ones(2, np.float32)}, metadata=metadata)
    assert read_metadata(path) == metadata
    assert header(path)["__metadata__"] == metadata
    assert list(lamina.read_weights(path)) == ["a"]


def test_an_empty_table_round_trips_as_safetensors(tmp_path):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {})
    assert lamina.read_weights(path) == {}
    assert path.read_bytes() == (8).to_bytes(8, "little") + b"{}      "


def test_the_header_is_padded_to_eight_bytes_and_sorted_widest_dtype_first(tmp_path):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"z": np.ones(1, bool), "b": np.ones(1, np.float32), "a": np.ones(1, np.float32),
                                "m": np.ones(1, np.int64), "h": np.ones(1, np.float16)})
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    assert length % 8 == 0 and data[8 + length - 1: 8 + length] in (b" ", b"}")
    assert list(header(path)) == ["m", "a", "b", "h", "z"]  # I64, F32 by name, F16, BOOL


def test_a_weights_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"a": np.ones(2, np.float32)})
    before = path.read_bytes()
    with pytest.raises(lamina.ArgumentError):
        lamina.write_weights(path, {"a": np.ones(2, np.float32), "b": np.ones(2, np.complex64)})
    assert path.read_bytes() == before and leftover_temporaries(path) == []
    lamina.write_weights(path, {"b": np.zeros(3, np.float64)})
    assert list(lamina.read_weights(path)) == ["b"] and leftover_temporaries(path) == []


def test_npz_names_that_are_np_savez_keywords_round_trip(tmp_path):
    tensors = {"file": np.ones(2, np.float32), "allow_pickle": np.zeros(1, np.int8), "a/b.c": np.ones(3, bool)}
    path = tmp_path / "w.npz"
    lamina.write_weights(path, tensors)
    assert_same(lamina.read_weights(path), tensors)
    with np.load(path, allow_pickle=False) as archive:  # numpy reads it as any .npz
        assert sorted(archive.files) == sorted(tensors)


def test_the_suffix_is_read_whatever_its_case(tmp_path):
    path = tmp_path / "W.SafeTensors"
    lamina.write_weights(path, {"a": np.ones(2, np.float32)})
    assert path.read_bytes()[8:9] == b"{"
    assert list(lamina.read_weights(path)) == ["a"]


def test_the_loading_budget_bounds_reading(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"a": np.ones(100, np.float32), "b": np.ones(100, np.float32)})
    assert len(lamina.read_weights(path, max_bytes=800)) == 2
    with pytest.raises(lamina.FileFormatError, match=r"800 bytes, over the loading limit of 799 bytes.*max_bytes"):
        lamina.read_weights(path, max_bytes=799)
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", "500")
    with pytest.raises(lamina.FileFormatError, match="LAMINA_MAX_LOAD_BYTES"):
        lamina.read_weights(path)
    npz = tmp_path / "w.npz"
    lamina.write_weights(npz, {"a": np.ones(100, np.float32), "b": np.ones(100, np.float32)})
    with pytest.raises(lamina.FileFormatError, match="over the input limit"):
        lamina.read_weights(npz)
    with pytest.raises(lamina.ArgumentError, match="max_bytes must be a positive int"):
        lamina.read_weights(path, max_bytes=0)


def _bf16_file(path, values):
    """A safetensors file of one BF16 tensor: the upper halves of the float32 `values`."""
    halves = (np.asarray(values, "<f4").view("<u4") >> 16).astype("<u2")
    text = json.dumps({"h": {"dtype": "BF16", "shape": list(halves.shape), "data_offsets": [0, halves.nbytes]}})
    text = text.encode() + b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + halves.tobytes())


def test_bf16_is_read_as_float32(tmp_path):
    values = np.array([[1.0, -2.5, 0.0, 3.140625], [np.inf, -np.inf, 65280.0, 2.0**-130]], np.float32)
    path = tmp_path / "w.safetensors"
    _bf16_file(path, values)
    found = lamina.read_weights(path)["h"]
    assert found.dtype == np.float32 and found.shape == (2, 4)
    np.testing.assert_array_equal(found, values)  # each value is exactly a bfloat16


def test_bf16_larger_than_a_read_chunk_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("lamina.files.safetensors.CHUNK_BYTES", 64)
    values = (np.arange(1000) % 256 - 128).astype(np.float32).reshape(10, 100)  # 8-bit integers: exact in bf16
    path = tmp_path / "w.safetensors"
    _bf16_file(path, values)
    np.testing.assert_array_equal(lamina.read_weights(path)["h"], values)


# -- what write_weights refuses -----------------------------------------------------------------------


@pytest.mark.parametrize("function", [lamina.read_weights, lamina.write_weights])
@pytest.mark.parametrize("name", ["model.pt", "weights", "model.npy", "model.safetensor"])
def test_an_unknown_suffix_is_refused_naming_the_accepted_two(tmp_path, function, name):
    arguments = (tmp_path / name,) if function is lamina.read_weights else (tmp_path / name, {})
    with pytest.raises(lamina.ArgumentError, match=r"not a weights file's; use \.safetensors or \.npz"):
        function(*arguments)


@pytest.mark.parametrize(("tensors", "message"), [
    ([np.ones(2)], "tensors must be a dict of names and numpy arrays"),
    ({"a": [1.0, 2.0]}, r"the tensor 'a' is \[1.0, 2.0\] \(list\), not a numpy array"),
    ({1: np.ones(2)}, "the tensor name is 1 \\(int\\), not a str"),
    ({"a\udc80": np.ones(2)}, "not valid Unicode"),
    ({"__metadata__": np.ones(2)}, "reserved for a safetensors file's metadata"),
    ({"a": np.ones(2, np.complex64)}, "dtype complex64, which a weights file does not hold"),
    ({"a": np.ones(2, np.uint16)}, "dtype uint16, which a weights file does not hold"),
    ({"a": np.array(["x"])}, "dtype <U1, which a weights file does not hold"),
    ({"a": np.array([object()])}, "dtype object, which a weights file does not hold"),
    ({"a": np.ones(2, np.float128 if hasattr(np, "float128") else np.longdouble)}, "which a weights file does not"),
])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_write_weights_refuses_what_it_cannot_write(tmp_path, tensors, message, suffix):
    path = tmp_path / f"w{suffix}"
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.write_weights(path, tensors)
    assert not path.exists()


def test_write_weights_refuses_bfloat16_which_numpy_cannot_convert_alone(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(lamina.ArgumentError, match="dtype bfloat16, which a weights file does not hold.*float32"):
        lamina.write_weights(tmp_path / "w.safetensors", {"a": np.ones(2, ml_dtypes.bfloat16)})


@pytest.mark.parametrize(("metadata", "message"), [
    ([("a", "b")], "metadata must be a dict of str to str"),
    ({"a": 1}, "the metadata 'a' is 1 \\(int\\), not a str"),
    ({1: "a"}, "a metadata key is 1 \\(int\\), not a str"),
    ({"a": {"b": "c"}}, "not a str"),
    ({"a": "\udc80"}, "not valid Unicode"),
])
def test_write_weights_refuses_metadata_that_is_not_text(tmp_path, metadata, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.write_weights(tmp_path / "w.safetensors", {"a": np.ones(2)}, metadata=metadata)


def test_npz_refuses_metadata_an_empty_table_and_null_characters(tmp_path):
    path = tmp_path / "w.npz"
    with pytest.raises(lamina.ArgumentError, match="an .npz weights file has no place for metadata"):
        lamina.write_weights(path, {"a": np.ones(2)}, metadata={"format": "pt"})
    with pytest.raises(lamina.ArgumentError, match="an .npz of no arrays"):
        lamina.write_weights(path, {})
    with pytest.raises(lamina.ArgumentError, match="null character"):
        lamina.write_weights(path, {"a\x00b": np.ones(2)})
    assert not path.exists()
    lamina.write_weights(path, {"a": np.ones(2)}, metadata={})  # nothing to keep: written
    assert list(lamina.read_weights(path)) == ["a"]


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lamina.read_weights(tmp_path / "none.safetensors")
    with pytest.raises(FileNotFoundError):
        lamina.write_weights(tmp_path / "no" / "w.safetensors", {})


# -- the reference implementation, both ways ---------------------------------------------------------


@needs_reference
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_reference_reads_lamina_files_and_lamina_reads_the_references(tmp_path, dtype):
    tensors = {"0.weight": sample(dtype), "scalar": sample(dtype, ()), "empty": sample(dtype, (3, 0)),
               "1.bias": sample(dtype, (4,))}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    lamina.write_weights(ours, tensors, metadata={"format": "np"})
    reference.save_file(tensors, theirs, metadata={"format": "np"})
    assert ours.read_bytes() == theirs.read_bytes()
    assert_same(reference.load_file(ours), tensors)
    assert_same(lamina.read_weights(theirs), tensors)
    with safetensors.safe_open(ours, framework="np") as opened:
        assert opened.metadata() == {"format": "np"}


@needs_reference
def test_lamina_reads_bf16_as_torch_writes_it(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    values = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    save_file({"w": values, "n": torch.arange(4)}, tmp_path / "t.safetensors")
    found = lamina.read_weights(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(found["w"], values.float().numpy())
    np.testing.assert_array_equal(found["n"], np.arange(4))


NAMES = st.text(st.characters(codec="utf-8"), max_size=12).filter(lambda name: name != "__metadata__")
ARRAYS = st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3)).map(
    lambda spec: sample(spec[0], tuple(spec[1])))


@needs_reference
@given(st.dictionaries(NAMES, ARRAYS, max_size=6),
       st.none() | st.dictionaries(NAMES, st.text(st.characters(codec="utf-8"), max_size=8), max_size=1))
def test_lamina_writes_the_bytes_the_reference_writes(tensors, metadata):
    # The reference keeps metadata in a hash map: only a table of at most one key has one order.
    # With no tensors, an empty metadata table comes out as broken JSON ('{},"__metadata__":{}}').
    assume(tensors or metadata != {})
    assert lamina_bytes(tensors, metadata) == reference.save(tensors, metadata=metadata)


def lamina_bytes(tensors, metadata):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.safetensors"
        lamina.write_weights(path, tensors, metadata=metadata)
        assert_same(lamina.read_weights(path), tensors)
        return path.read_bytes()
