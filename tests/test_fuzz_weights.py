"""Fuzzing `lamina.read_weights` on safetensors bytes: mutated, truncated and forged files and
headers. Every outcome is the tensors or a FileFormatError, never another exception; and what
lamina reads, the reference implementation (the `safetensors` package, where installed) reads
the same.

    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz_weights.py     # 5,000 examples each
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import lamina
from lamina.files.safetensors import DTYPES, ORDER

try:
    import safetensors.numpy as reference
except ImportError:  # only a test reference: without it, the fuzzers check lamina alone
    reference = None

FUZZ = settings(max_examples=settings().max_examples * 10)  # 200 in CI


def _valid_bytes() -> bytes:
    tensors = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.array([-1, 2], np.int64),
               "mask": np.array([True, False]), "half": np.ones((2, 2), np.float16), "scalar": np.array(7, np.int8),
               "empty": np.zeros((0, 3), np.float64)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.safetensors"
        lamina.write_weights(path, tensors, metadata={"format": "np"})
        return path.read_bytes()


VALID = _valid_bytes()
LENGTH = int.from_bytes(VALID[:8], "little")
HEADER = json.loads(VALID[8: 8 + LENGTH])
DATA = VALID[8 + LENGTH:]


def read(data: bytes) -> dict[str, np.ndarray] | None:
    """The tensors lamina reads from `data`, or None for a FileFormatError; anything else fails
    the test. What lamina reads without BF16, the reference reads, to the same arrays."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.safetensors"
        path.write_bytes(data)
        try:
            tensors = lamina.read_weights(path, max_bytes=2**24)
        except lamina.FileFormatError as err:
            assert str(err).startswith(str(path))
            return None
        if reference is not None and '"BF16"' not in data[8: 8 + int.from_bytes(data[:8], "little")].decode():
            theirs = reference.load(data)
            assert sorted(theirs) == sorted(tensors)
            for name, array in tensors.items():
                assert array.dtype == theirs[name].dtype and array.shape == theirs[name].shape
                np.testing.assert_array_equal(array, theirs[name])
    return tensors


def with_header(header: object, data: bytes = DATA, pad: int = 0) -> bytes:
    text = json.dumps(header).encode() + b" " * pad
    return len(text).to_bytes(8, "little") + text + data


def test_the_unmutated_file_is_read():
    # The baseline of every fuzzer below: were the valid file refused, so would every mutation.
    tensors = read(VALID)
    assert tensors is not None and sorted(tensors) == sorted(HEADER.keys() - {"__metadata__"})
    assert tensors["0.weight"].tolist() == [[0, 1, 2], [3, 4, 5]]


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data):
    read(data)


@FUZZ
@given(st.binary(max_size=64), st.integers(0, len(VALID)))
def test_random_bytes_after_a_cut(tail, cut):
    read(VALID[:cut] + tail)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(1, len(VALID)))
def test_flipped_and_truncated_bytes(flips, length):
    data = bytearray(VALID[:length])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    read(bytes(data))


@FUZZ
@given(st.integers(0, 2**64 - 1))
def test_a_forged_header_length(length):
    read(length.to_bytes(8, "little") + VALID[8:])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SIZES = st.integers(0, 4) | st.integers(0, 2**64) | st.integers(-3, -1)
ENTRIES = st.fixed_dictionaries({
    "dtype": st.sampled_from([*ORDER, "F128", "f32", ""]) | JSON_VALUES,
    "shape": st.lists(SIZES, max_size=4) | JSON_VALUES,
    "data_offsets": st.lists(SIZES | st.integers(0, len(DATA)), min_size=2, max_size=2) | JSON_VALUES,
}) | st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]), JSON_VALUES)


@FUZZ
@given(st.dictionaries(st.text(max_size=6), ENTRIES, max_size=4), st.binary(max_size=64),
       st.none() | JSON_VALUES, st.integers(0, 9))
def test_forged_headers(entries, data, metadata, pad):
    header = dict(entries) if metadata is None else {"__metadata__": metadata, **entries}
    read(with_header(header, data, pad))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(list(DTYPES)), st.lists(st.integers(0, 3), max_size=3)), max_size=5),
       st.randoms(use_true_random=False), st.integers(-2, 2))
def test_consistent_headers_with_shuffled_or_shifted_offsets(specs, random, shift):
    # Headers that are almost right: real sizes laid out in some order, perhaps one byte off.
    entries, offset = {}, 0
    order = list(range(len(specs)))
    random.shuffle(order)
    for index in order:
        dtype, shape = specs[index]
        size = int(np.prod(shape)) * (2 if dtype == "BF16" else DTYPES[dtype].itemsize)
        entries[f"t{index}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if entries and shift:
        name = random.choice(sorted(entries))
        entries[name]["data_offsets"][random.randrange(2)] += shift
    data = bytes(random.randrange(2) for _ in range(max(offset, 0)))  # 0 and 1: valid for every dtype
    tensors = read(with_header(entries, data))
    if not shift:
        assert tensors is not None and sorted(tensors) == sorted(entries)


@FUZZ
@given(st.sampled_from(sorted(HEADER)), st.sampled_from(["dtype", "shape", "data_offsets", None]), JSON_VALUES)
def test_mutated_header_values(name, key, value):
    header = json.loads(json.dumps(HEADER))
    if key is None or not isinstance(header[name], dict) or name == "__metadata__":
        header[name] = value
    else:
        header[name][key] = value
    read(with_header(header))
