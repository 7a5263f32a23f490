"""Opening a stranger's weights file: every hostile safetensors file is a FileFormatError naming
the file (and the tensor, where one is at fault), raised before anything it declares is allocated.

Each file is generated here, small; the limits that only a large file would reach are lowered
for their tests, and what could cost memory runs under `capped` (3 GiB, 20 s).
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import capped

import lamina
from lamina.files import safetensors as format_


def raw(header: bytes | str, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file of `header` (text, unpadded) and `data`; `length` forges the length."""
    text = header.encode("utf-8") if isinstance(header, str) else header
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def file_of(tensors: dict, data: bytes, **extra) -> bytes:
    return raw(json.dumps({**extra, **tensors}), data)


def refused(tmp_path, data: bytes, match: str) -> lamina.FileFormatError:
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    with pytest.raises(lamina.FileFormatError, match=match) as caught:
        lamina.read_weights(path)
    assert str(caught.value).startswith(str(path))
    return caught.value


GOOD = file_of({"a": entry()}, bytes(8))


def test_the_good_file_is_read(tmp_path):
    path = tmp_path / "good.safetensors"
    path.write_bytes(GOOD)
    np.testing.assert_array_equal(lamina.read_weights(path)["a"], np.zeros(2, np.float32))


@pytest.mark.parametrize(("data", "match"), [
    (b"", "has 0 bytes, too few for a safetensors file"),
    (b"\x10\x00\x00", "has 3 bytes, too few"),
    (raw("{}", length=2**64 - 1), "header length is 18,446,744,073,709,551,615 bytes, over the limit of 100,000,000"),
    (raw("{}", length=100_000_000), "header length is 100,000,000 bytes, but the file holds only 2"),
    (raw("[1, 2]"), "does not start with '{'"),
    (raw(' {"a": 1}'), "does not start with '{'"),
    (raw(b'{"\xff\xfe": 1}'), "not valid JSON .*utf-8"),
    (raw('{"a": '), "not valid JSON"),
    (raw('{"a": NaN}'), "not valid JSON .*NaN is not JSON"),
    (raw('{"\\udc80": {}}'), "the name or text '\\\\udc80', which is not valid Unicode"),
    (raw('{"__metadata__": {"a": "\\ud800"}}'), "not valid Unicode"),
    (raw('{"a": {}} trailing'), "not valid JSON .*Extra data"),
    (raw('{"a": 1, "a": 2}'), "not valid JSON .*the key 'a' appears twice"),
    (raw('{"a": {"dtype": "F32", "dtype": "F32", "shape": [], "data_offsets": [0, 4]}}', bytes(4)), "appears twice"),
    (raw('{"a": {"dtype": "F32", "shape": [123456789012345678901], "data_offsets": [0, 4]}}'), "more than 20 digits"),
])
def test_a_broken_header_is_refused(tmp_path, data, match):
    refused(tmp_path, data, match)


def test_deeply_nested_metadata_is_refused_before_parsing(tmp_path):
    nested = "[" * 5000 + "]" * 5000
    refused(tmp_path, raw('{"__metadata__": {"a": ' + nested + "}}"), "nests 5,002 levels .* over the limit of 100")
    refused(tmp_path, raw('{"__metadata__": {"a": {"b": "c"}}}'), "'__metadata__' is .* not a table of strings")
    refused(tmp_path, raw('{"__metadata__": ["a"]}'), "not a table of strings")
    # brackets inside strings are text, not nesting
    path = tmp_path / "brackets.safetensors"
    path.write_bytes(raw(json.dumps({"__metadata__": {"a": "[" * 500 + '\\"{'}, "t": entry()}), bytes(8)))
    assert list(lamina.read_weights(path)) == ["t"]


@pytest.mark.parametrize(("tensor", "match"), [
    ([1, 2], r"the tensor 'a' has the entry \[1, 2\] \(list\); an entry holds exactly dtype, shape, data_offsets"),
    ({"dtype": "F32", "shape": [2]}, r"the tensor 'a' has the entry \['dtype', 'shape'\]"),
    ({**entry(), "extra": 1}, "the tensor 'a' has the entry .*'extra'"),
    (entry(dtype="F8_E4M3", offsets=(0, 2)), "the tensor 'a' has dtype 'F8_E4M3' .*a dtype lamina does not read"),
    (entry(dtype="U16", offsets=(0, 4)), "the tensor 'a' has dtype 'U16' .*does not read"),
    (entry(dtype="U32"), "dtype 'U32'"),
    (entry(dtype="U64", offsets=(0, 16)), "dtype 'U64'"),
    (entry(dtype="C64", offsets=(0, 16)), "dtype 'C64'"),
    (entry(dtype="STR"), "dtype 'STR' .*not a safetensors dtype"),
    (entry(dtype=["F32"]), r"dtype \['F32'\] \(list\), not a safetensors dtype"),
    (entry(dtype=4), r"dtype 4 \(int\)"),
    (entry(shape=[-1]), r"the tensor 'a' has the shape \[-1\] \(list\), not a list of sizes"),
    (entry(shape=[2.0]), "not a list of sizes"),
    ({**entry(), "shape": [True, 2]}, "not a list of sizes"),
    ({**entry(), "shape": "2"}, "not a list of sizes"),
    (entry(shape=[1] * 33), "has 33 dimensions, over numpy's 32"),
    (entry(shape=[2**40, 2**40, 0]), "over 281,474,976,710,656 values"),
    (entry(shape=[2**20] * 30), "over 281,474,976,710,656 values"),
    (entry(offsets=[0]), r"data offsets \[0\] \(list\), not \[begin, end\]"),
    (entry(offsets=[-8, 0]), "not \\[begin, end\\]"),
    (entry(offsets=[8, 0]), r"shape \(2,\) of F32, 8 bytes, but its data offsets \[8, 0\] span -8"),
    (entry(shape=[3]), r"shape \(3,\) of F32, 12 bytes, but its data offsets \[0, 8\] span 8"),
    (entry(dtype="F64"), "F64, 16 bytes, but its data offsets"),
])
def test_a_forged_entry_is_refused_naming_the_tensor(tmp_path, tensor, match):
    refused(tmp_path, file_of({"a": tensor}, bytes(8)), match)


@pytest.mark.parametrize(("tensors", "size", "match"), [
    ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(8, 16))}, 12,
     "the tensor 'b' ends at byte 16 of the data, but the file holds only 12 bytes of data; it is truncated"),
    ({"a": entry(offsets=(2**40, 2**40 + 8))}, 8, "ends at byte 1,099,511,627,784 of the data"),
    ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, 12, "the tensor 'b' .* overlaps 'a' \\(up to 8\\)"),
    ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(0, 8))}, 8, "overlaps"),
    ({"a": entry(offsets=(0, 8)), "e": entry(shape=(0,), offsets=(4, 4))}, 8, "the tensor 'a' .* overlaps 'e'"
     "|the tensor 'e' .* overlaps 'a'"),
    ({"a": entry(offsets=(4, 12))}, 12, "4 bytes of data before the tensor 'a' belong to no tensor"),
    ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(9, 17))}, 17, "1 bytes of data before the tensor 'b'"),
    ({"a": entry(offsets=(0, 8))}, 20, "holds 12 bytes of data past its last tensor"),
    ({}, 1, "holds 1 bytes of data past its last tensor"),
])
def test_offsets_must_cover_the_data_exactly(tmp_path, tensors, size, match):
    refused(tmp_path, file_of(tensors, bytes(size)), match)


def test_empty_and_zero_dimensional_tensors_are_read(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(file_of({"e": entry(shape=(0, 5), offsets=(0, 0)), "s": entry(shape=(), offsets=(0, 4)),
                              "f": entry(shape=(5, 0), offsets=(4, 4))}, np.float32(2.5).tobytes()))
    found = lamina.read_weights(path)
    assert found["e"].shape == (0, 5) and found["f"].shape == (5, 0) and found["s"] == 2.5


def test_a_bool_tensor_holds_only_zeros_and_ones(tmp_path):
    refused(tmp_path, file_of({"m": entry("BOOL", (3,), (0, 3))}, b"\x00\x01\x02"),
            "the BOOL tensor 'm' holds bytes other than 0 and 1")


def test_every_truncation_of_a_good_file_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"a": np.ones((2, 3), np.float32), "b": np.arange(4), "c": np.ones(2, bool)},
                         metadata={"k": "v"})
    whole = path.read_bytes()
    for cut in range(len(whole)):
        path.write_bytes(whole[:cut])
        with pytest.raises(lamina.FileFormatError, match="truncated|too few|not valid JSON"):
            lamina.read_weights(path)


def test_a_file_of_another_kind_is_refused(tmp_path):
    npz = tmp_path / "w.npz"
    lamina.write_weights(npz, {"a": np.ones(3)})
    refused(tmp_path, npz.read_bytes(), "header length is .* over the limit|does not start with")
    refused(tmp_path, b"PK\x03\x04" + bytes(100), "header length")
    refused(tmp_path, raw("{}" + " " * 6) + b"\x00", "past its last tensor")


def test_a_hostile_npz_is_refused_through_the_npz_reader(tmp_path):
    path = tmp_path / "w.npz"
    lamina.write_weights(path, {"a": np.ones(30), "b": np.ones(3)})
    path.write_bytes(path.read_bytes()[:-60])
    with pytest.raises(lamina.FileFormatError, match=str(path)):
        lamina.read_weights(path)


def test_the_budget_counts_bf16_as_the_float32_it_becomes(tmp_path):
    data = file_of({"h": entry("BF16", (4,), (0, 8))}, bytes(8))
    path = tmp_path / "h.safetensors"
    path.write_bytes(data)
    assert lamina.read_weights(path, max_bytes=16)["h"].dtype == np.float32
    with pytest.raises(lamina.FileFormatError, match="16 bytes, over the loading limit of 15 bytes"):
        lamina.read_weights(path, max_bytes=15)


@pytest.mark.parametrize(("limit", "value", "header", "match"), [
    ("MAX_TENSORS", 3, {f"t{i}": entry(shape=(0,), offsets=(0, 0)) for i in range(4)},
     "declares 4 tensors, over the limit of 3"),
    ("MAX_HEADER_ITEMS", 30, {"t": entry(shape=[0] * 30, offsets=(0, 0))}, "holds 36 values, over the limit of 30"),
    ("MAX_HEADER_STRINGS", 10, {f"t{i}": entry(shape=(0,), offsets=(0, 0)) for i in range(3)},
     "holds 15 strings, over the limit of 10"),
])
def test_a_header_past_the_parsing_limits_is_refused(tmp_path, monkeypatch, limit, value, header, match):
    # The real limits (100,000 tensors, 5,000,000 values, 1,000,000 strings) need files of tens
    # of megabytes; the same checks, at lowered limits.
    monkeypatch.setattr(format_, limit, value)
    refused(tmp_path, file_of(header, b""), match)


SCRIPT = """
import sys, lamina
for path in sys.argv[1:]:
    try:
        lamina.read_weights(path)
        print("read", path)
    except lamina.FileFormatError as err:
        print("FileFormatError", str(err)[:200])
"""


def test_files_that_declare_giant_tensors_cost_no_memory(tmp_path):
    cases = {
        "huge_header_length": raw("{}", length=2**63),
        "giant_shape": file_of({"a": entry(shape=[2**24] * 3, offsets=(0, 8))}, bytes(8)),
        "giant_offsets": file_of({"a": entry("U8", shape=[2**47], offsets=(0, 2**47))}, bytes(8)),
        "past_the_end": file_of({"a": entry("F64", shape=[2**30], offsets=(0, 2**33))}, bytes(8)),
        "many_dimensions": file_of({"a": entry(shape=[2**16] * 4, offsets=(0, 2**66))}, bytes(8)),
        "deep": raw('{"__metadata__": ' + "[" * 200_000 + "]" * 200_000 + "}"),
        "many_values": raw('{"a": {"dtype": "U8", "shape": [' + "0," * 3_000_000 + '0], "data_offsets": [0, 0]}}'),
    }
    paths = []
    for name, data in cases.items():
        paths.append(tmp_path / f"{name}.safetensors")
        paths[-1].write_bytes(data)
    result = capped("-c", SCRIPT, *map(str, paths))
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(cases) and all(line.startswith("FileFormatError") for line in lines), lines


def test_a_tensor_over_the_budget_is_refused_before_it_is_allocated(tmp_path):
    path = tmp_path / "big.safetensors"
    size = 64 * 2**20
    with open(path, "wb") as stream:  # a sparse file: 64 MiB of zeros that take no disk
        stream.write(raw(json.dumps({"a": entry("U8", (size,), (0, size))})))
        stream.truncate(stream.tell() + size)
    result = capped("-c", SCRIPT, str(path), LAMINA_MAX_LOAD_BYTES=str(2**20))
    assert result.stdout.startswith("FileFormatError") and "over the loading limit of 1,048,576" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a file that shrinks while it is read: POSIX semantics")
def test_a_file_that_shrinks_while_it_is_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    lamina.write_weights(path, {"a": np.ones(100_000, np.float32)})  # more than the reader's buffer
    checked = format_._check_layout

    def then_truncate(entries, buffer, where):
        checked(entries, buffer, where)
        with open(path, "r+b") as stream:
            stream.truncate(100)

    monkeypatch.setattr(format_, "_check_layout", then_truncate)
    with pytest.raises(lamina.FileFormatError, match="the tensor 'a' is truncated: the file ended after"):
        lamina.read_weights(path)
