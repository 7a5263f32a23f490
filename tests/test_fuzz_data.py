"""Fuzzers over the data a user trains on: image folders (mutated and truncated image bytes, odd
modes, symbolic links in and out) and text files (random bytes, any codec name). Every outcome is
data or a LaminaError; no link out of an image folder is read unless allowed."""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lamina

FUZZ = settings(max_examples=settings().max_examples * 10)  # 200 in CI

MODES = ["L", "RGB", "RGBA", "P", "1", "LA", "I;16", "I", "F", "CMYK"]
FORMATS = {"png": "PNG", "bmp": "BMP", "gif": "GIF", "webp": "WEBP", "jpg": "JPEG"}


def image_bytes(Image, mode: str, suffix: str, size: tuple[int, int], shade: int) -> bytes | None:
    """An image of `mode` saved as `suffix`, or None where Pillow cannot write that pair."""
    image = Image.new(mode, size, shade if mode not in ("RGB", "RGBA", "CMYK") else (shade,) * len(mode))
    buffer = io.BytesIO()
    try:
        image.save(buffer, FORMATS[suffix])
    except (OSError, ValueError, KeyError):
        return None
    return buffer.getvalue()


def mutated(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for at, value in edits:
        if out:
            out[at % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


def outcome(build, **options):
    """The image folder's x (all of it) or the LaminaError it raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lamina.PluginWarning)  # the links left out, the files skip_bad leaves out
            x, y = lamina.get_registry().build("dataset", "image_folder", **options).arrays()
            pixels = np.asarray(x)
    except lamina.LaminaError as err:
        return err
    assert pixels.dtype == np.float32 and pixels.ndim == 4 and len(pixels) == len(y)
    assert np.all((pixels >= 0) & (pixels <= 1))
    return pixels


@pytest.fixture(scope="module")
def Image():
    return pytest.importorskip("PIL.Image", reason="image_folder reads images with Pillow: pip install Pillow")


@FUZZ
@given(st.sampled_from(MODES), st.sampled_from(sorted(FORMATS)), st.integers(1, 9), st.integers(1, 9),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       st.one_of(st.none(), st.integers(0, 400)), st.sampled_from([None, (5, 5)]),
       st.sampled_from(["rgb", "grayscale"]), st.booleans())
def test_mutated_images_give_pixels_or_a_lamina_error(Image, mode, suffix, height, width, edits, cut, image_size,
                                                      color_mode, skip_bad):
    data = image_bytes(Image, mode, suffix, (width, height), 120)
    if data is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for label in ("a", "b"):
            (root / label).mkdir()
            (root / label / f"good.{suffix}").write_bytes(data)
        (root / "b" / f"odd.{suffix}").write_bytes(mutated(data, edits, cut))
        result = outcome(Image, path=root, image_size=image_size, color_mode=color_mode, skip_bad=skip_bad)
        if not isinstance(result, lamina.LaminaError) and not edits and cut is None:
            assert len(result) == 3  # an untouched image of any mode reads


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["a", "a/deep", "b", "."]), st.sampled_from(
    ["inside-file", "inside-folder", "outside-file", "outside-folder", "root", "parent", "self", "missing"])),
    max_size=5), st.booleans())
def test_symbolic_links_never_read_outside_the_folder_unless_allowed(Image, links, follow):
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        root, outside = base / "data", base / "outside"
        for where in ("a", "a/deep", "b"):
            (root / where).mkdir(parents=True)
            Image.new("L", (4, 4), 40).save(root / where / "in.png")
        outside.mkdir()
        Image.new("L", (4, 4), 250).save(outside / "out.png")  # a shade no image inside has
        targets = {"inside-file": root / "a" / "in.png", "inside-folder": root / "b",
                   "outside-file": outside / "out.png", "outside-folder": outside, "root": Path("/"), "parent": base,
                   "self": root, "missing": base / "nowhere"}
        for i, (where, target) in enumerate(links):
            if follow and target == "root":  # followed, a link to / walks the whole filesystem: as asked, but slow
                continue
            name = f"link{i}.png" if target.endswith("file") else f"link{i}"
            os.symlink(targets[target], root / where / name)
        result = outcome(Image, path=root, color_mode="grayscale", follow_symlinks=follow, max_decoded_bytes=10**6)
        if not follow and not isinstance(result, lamina.LaminaError):
            assert np.all(np.abs(result - 40 / 255) < 1e-6)  # only the images inside


TEXT_CODECS = ["utf-8", "utf-16", "utf-32", "latin-1", "ascii", "cp1252", "utf-7", "utf-8-sig", "idna",
               "unicode_escape", "raw_unicode_escape", "punycode", "shift_jis", "rot13", "hex", "zlib", "base64",
               "bz2", "uu", "quopri", "klingon", "", "mbcs"]


@FUZZ
@given(st.one_of(st.binary(max_size=600), st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass"))),
       st.sampled_from(TEXT_CODECS), st.integers(1, 6), st.sampled_from([None, 1, 3]),
       st.sampled_from([0.0, 0.2]))
def test_text_files_give_windows_or_a_lamina_error(data, encoding, seq_len, stride, test_split):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "text.txt"
        path.write_bytes(data)
        try:
            dataset = lamina.dataset("text", path=str(path), seq_len=seq_len, stride=stride, test_split=test_split,
                                     encoding=encoding)
        except lamina.LaminaError:
            return
        with open(path, encoding=encoding) as handle:  # the reference: the whole file at once
            text = handle.read()
        vocabulary = dataset.metadata["vocabulary"]
        assert vocabulary == "".join(sorted(set(text)))
        x, y, x_test, y_test = dataset
        for inputs, targets in ((x, y), (x_test, y_test)):
            assert inputs.dtype == targets.dtype == np.int64 and inputs.shape == targets.shape
            assert inputs.shape[1:] == (seq_len,)
            np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
        assert "".join(vocabulary[i] for i in x[0]) == text[:seq_len]


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(TEXT_CODECS))
def test_csv_files_give_rows_or_a_lamina_error(data, encoding):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(b"a,b,label\n1,2,x\n3,4,y\n" + data)
        try:
            x, y, _, _ = lamina.dataset("csv", path=str(path), encoding=encoding, test_split=0.0)
        except lamina.LaminaError:
            return
        assert x.dtype == np.float32 and len(x) == len(y) >= 1
