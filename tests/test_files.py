"""Datasets that stay on disk: npy (memory-mapped .npy files) and image_folder (a folder per
class), and LazyRows, the array-like both return: len, shape, dtype and row indexing that
reads only the asked rows."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT

import lamina
from lamina.app import config as runconfig
from lamina.plugins.datasets.lazy import LazyRows, read_rows


class Recording:
    """An array source that records every index it is read with."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


# -- LazyRows ---------------------------------------------------------------------------------------


def test_rows_are_read_in_increasing_order_once_each_and_put_back_in_the_asked_order():
    source = Recording(np.arange(40.0).reshape(20, 2))
    rows = np.array([9, 1, 5, 1, 17])
    np.testing.assert_array_equal(read_rows(source, rows), source.array[rows])
    (key,) = source.reads
    np.testing.assert_array_equal(key, [1, 5, 9, 17])
    source.reads.clear()
    np.testing.assert_array_equal(read_rows(source, np.array([6, 4, 5])), source.array[[6, 4, 5]])
    assert source.reads == [slice(4, 7)]  # consecutive rows: one slice read
    assert read_rows(source, np.array([], dtype=np.int64)).shape == (0, 2)


def test_a_view_has_len_shape_dtype_and_numpy_row_indexing():
    array = np.arange(60, dtype=np.float32).reshape(20, 3)
    indices = np.array([7, 3, 19, 0, 11, 4])
    source = Recording(array)
    view = LazyRows(source, indices, transform=lambda batch: batch * 2)
    assert len(view) == 6 and view.shape == (6, 3) and view.dtype == np.float32 and view.ndim == 2
    assert source.reads == []  # building a view reads nothing
    expected = array[indices] * 2
    np.testing.assert_array_equal(view[np.array([5, 0, 2])], expected[[5, 0, 2]])
    np.testing.assert_array_equal(view[[1, -1]], expected[[1, -1]])
    np.testing.assert_array_equal(view[1:5:2], expected[1:5:2])
    np.testing.assert_array_equal(view[::-1], expected[::-1])
    np.testing.assert_array_equal(view[2], expected[2])
    np.testing.assert_array_equal(view[-1], expected[-1])
    np.testing.assert_array_equal(view[np.int64(3)], expected[3])
    np.testing.assert_array_equal(view[expected[:, 0] > 20], expected[expected[:, 0] > 20])
    np.testing.assert_array_equal(view[:, 1], expected[:, 1])
    np.testing.assert_array_equal(view[0, 2], expected[0, 2])
    assert view[np.array([], dtype=np.int64)].shape == (0, 3) and view[[]].shape == (0, 3)
    for batch in (view[[0, 1]], view[:2], view[0]):
        assert type(batch) is np.ndarray and batch.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float64), expected)
    np.testing.assert_array_equal(np.stack(list(view)), expected)
    assert all(np.all(np.diff(key) > 0) for key in source.reads if isinstance(key, np.ndarray))
    np.testing.assert_array_equal(view.subset(np.array([4, 1])).subset(slice(1, None))[:], expected[[1]])
    assert "LazyRows(6 rows of shape (3,), float32" in repr(view)


def test_a_view_refuses_rows_out_of_range_and_other_keys():
    view = LazyRows(np.zeros((4, 2)))
    with pytest.raises(IndexError, match="row 4 is out of range for 4 rows"):
        view[4]
    with pytest.raises(IndexError, match=r"row indices must be in \[-4, 4\), got 0 to 9"):
        view[np.array([0, 9])]
    with pytest.raises(lamina.ArgumentError, match="index rows with an int, a slice, or a 1-D integer"):
        view[np.array([0.5])]
    with pytest.raises(lamina.ArgumentError, match="index rows with an int"):
        view["a"]
    with pytest.raises(lamina.ArgumentError, match=r"rows must be in \[0, 4\)"):
        LazyRows(np.zeros((4, 2)), np.array([1, 4]))
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(view, copy=False)


# -- npy ---------------------------------------------------------------------------------------------


@pytest.fixture
def npy_files(tmp_path):
    """50 rows: uint8 inputs whose first column is the row number, and int labels."""
    x = np.arange(50 * 4, dtype=np.uint8).reshape(50, 4)
    x[:, 0] = np.arange(50)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(50) % 3)
    return tmp_path, x


def test_npy_parts_are_lazy_memory_mapped_views_scaled_a_batch_at_a_time(npy_files):
    folder, x = npy_files
    x_train, y_train, x_test, y_test = lamina.dataset("npy", path=folder / "x.npy", target=folder / "y.npy",
                                                      test_split=0.2)
    assert all(isinstance(part, LazyRows) for part in (x_train, y_train, x_test, y_test))
    assert isinstance(x_train.source, np.memmap) and isinstance(y_train.source, np.memmap)
    assert (len(x_train), len(x_test)) == (40, 10) and x_train.shape == (40, 4) and x_test.shape == (10, 4)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64 and y_train.shape == (40,)
    rows = x_train.indices
    batch = x_train[np.array([3, 0, 7])]
    np.testing.assert_allclose(batch, x[rows[[3, 0, 7]]] / 255, rtol=1e-6)  # uint8 inputs: x / 255
    assert batch.dtype == np.float32 and 0 <= x_train[:].min() and x_train[:].max() <= 1
    np.testing.assert_array_equal(y_train[:5], rows[:5] % 3)  # targets stay aligned with their inputs
    ids = np.round(np.concatenate([x_train[:, 0], x_test[:, 0]]) * 255).astype(int)
    assert sorted(ids.tolist()) == list(range(50))  # disjoint parts that cover every row


def test_npy_splits_as_npz_does_and_is_seeded(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    y = np.arange(30) % 2
    np.save(tmp_path / "x.npy", x), np.save(tmp_path / "y.npy", y), np.savez(tmp_path / "d.npz", x=x, y=y)
    parts = lamina.dataset("npy", path=tmp_path / "x.npy", target=tmp_path / "y.npy", test_split=0.3, seed=4)
    in_memory = lamina.dataset("npz", path=tmp_path / "d.npz", test_split=0.3, seed=4)
    for lazy, array in zip(parts, in_memory):
        np.testing.assert_array_equal(np.asarray(lazy), array)
    assert parts[0].dtype == np.float32  # float inputs are left as they are
    again = lamina.dataset("npy", path=tmp_path / "x.npy", target=tmp_path / "y.npy", test_split=0.3, seed=4)
    other = lamina.dataset("npy", path=tmp_path / "x.npy", target=tmp_path / "y.npy", test_split=0.3, seed=5)
    np.testing.assert_array_equal(parts[0].indices, again[0].indices)
    assert not np.array_equal(parts[0].indices, other[0].indices)
    assert set(parts[0].indices).isdisjoint(parts[2].indices)


def test_npy_scale_dtypes_targets_and_mmap_false(tmp_path):
    np.save(tmp_path / "u8.npy", np.full((6, 2), 100, dtype=np.uint8))
    np.save(tmp_path / "i16.npy", np.full((6, 2), -300, dtype=np.int16))
    np.save(tmp_path / "f64.npy", np.full((6, 2), 0.5))
    np.save(tmp_path / "reals.npy", np.linspace(0, 1, 6))
    np.save(tmp_path / "flags.npy", np.arange(6) % 2 == 0)

    def inputs(name, **options):
        x, y = lamina.get_registry().build("dataset", "npy", path=tmp_path / name, target=tmp_path / "reals.npy",
                                           **options).arrays()
        return x, y

    x, y = inputs("u8.npy", scale=2)
    assert x.dtype == np.float32 and np.all(x[:] == 200)  # a number multiplies every batch, as float32
    assert y.shape == (6, 1) and y.dtype == np.float32  # floating targets: (n, 1) float32
    x, _ = inputs("i16.npy")
    assert x.dtype == np.int16 and np.all(x[:] == -300)  # only uint8 is scaled by default
    x, _ = inputs("f64.npy", scale=0.5)
    assert x.dtype == np.float32 and np.all(x[[0, 5]] == 0.25)
    x, _ = inputs("u8.npy", mmap=False)
    assert type(x.source) is np.ndarray and np.allclose(x[:], 100 / 255)
    _, flags = lamina.get_registry().build("dataset", "npy", path=tmp_path / "u8.npy",
                                           target=tmp_path / "flags.npy").arrays()
    assert flags.dtype == np.int64 and flags[:].tolist() == [1, 0, 1, 0, 1, 0]
    x, none = lamina.get_registry().build("dataset", "npy", path=tmp_path / "u8.npy").arrays()
    assert none is None and len(x) == 6  # inputs only, e.g. for predictions
    assert ".npy" in lamina.get_registry().get("dataset", "npy").cls.suffixes  # lamina evaluate --data FILE.npy


def test_npy_errors_name_the_file_and_the_fix(npy_files, monkeypatch):
    folder, _ = npy_files
    monkeypatch.chdir(folder)
    with pytest.raises(lamina.ArgumentError,
                       match=r"npy\(path='x.npy', target=None\): training and testing need targets"):
        lamina.dataset("npy", path="x.npy")
    with pytest.raises(lamina.ArgumentError, match=r"npy\(path='nope.npy'\): no such file \(relative paths start in"):
        lamina.dataset("npy", path="nope.npy", target="y.npy")
    with pytest.raises(lamina.ArgumentError, match=r"npy\(target='labels.npy'\): no such file"):
        lamina.dataset("npy", path="x.npy", target="labels.npy")
    with pytest.raises(lamina.ArgumentError, match="is a folder, not an .npy file"):
        lamina.dataset("npy", path=folder, target="y.npy")
    np.save("short.npy", np.zeros(49))
    with pytest.raises(lamina.ShapeError, match="the inputs have 50 rows but the targets 49"):
        lamina.dataset("npy", path="x.npy", target="short.npy")
    np.save("objects.npy", np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    for mmap in (True, False):  # pickled objects are never loaded
        with pytest.raises(lamina.ArgumentError,
                           match=r"npy\(path='objects.npy'\): cannot read it as an .npy array of numbers"):
            lamina.dataset("npy", path="objects.npy", target="y.npy", mmap=mmap)
    (folder / "text.npy").write_text("hello")
    with pytest.raises(lamina.ArgumentError, match="cannot read it as an .npy array"):
        lamina.dataset("npy", path="text.npy", target="y.npy")
    np.savez("both.npz", x=np.ones(3))
    (folder / "both.npy").write_bytes((folder / "both.npz").read_bytes())
    with pytest.raises(lamina.ArgumentError, match="an .npz archive, not one .npy array; read it with the npz dataset"):
        lamina.dataset("npy", path="both.npy", target="y.npy")
    np.save("words.npy", np.array(["a", "b"]))
    with pytest.raises(lamina.ArgumentError, match="dtype <U1, not numbers"):
        lamina.dataset("npy", path="words.npy", target="y.npy")
    np.save("empty.npy", np.zeros((0, 4)))
    with pytest.raises(lamina.ShapeError, match=r"npy\(path='empty.npy'\): the array has no rows"):
        lamina.dataset("npy", path="empty.npy", target="y.npy")
    with pytest.raises(lamina.ArgumentError, match=r"npy\(scale=0\): scale must be a positive number"):
        lamina.dataset("npy", path="x.npy", target="y.npy", scale=0)
    with pytest.raises(lamina.ArgumentError, match=r"npy\(target=3\): target must be a path"):
        lamina.dataset("npy", path="x.npy", target=3)
    with pytest.raises(lamina.ArgumentError, match="leave none for training"):
        lamina.dataset("npy", path="x.npy", target="y.npy", test_split=0.999)


# -- image_folder --------------------------------------------------------------------------------------


@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image", reason="image_folder reads images with Pillow: pip install Pillow")


def write_folder(Image, root, classes, size=(6, 5), mode="RGB"):
    """root/<class>/<i>.png with seeded random pixels (height, width = size); returns
    {class: [uint8 (channels, height, width) arrays in file order]}."""
    rng = np.random.default_rng(0)
    written = {}
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        written[name] = []
        for i in range(count):
            shape = (*size, 3) if mode == "RGB" else size
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
            written[name].append(pixels.transpose(2, 0, 1) if mode == "RGB" else pixels[None])
    return written


def test_image_folder_lists_classes_and_decodes_rgb_images_lazily(Image, tmp_path, monkeypatch):
    written = write_folder(Image, tmp_path / "pets", {"dog": 4, "cat": 6})
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")  # other files are left out
    (tmp_path / "pets" / ".cache").mkdir()  # and hidden folders
    (tmp_path / "pets" / "cat" / "more").mkdir()
    # subfolders, any case
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "pets" / "cat" / "more" / "X.JPG")
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.filename) or real_load(self))
    data = lamina.dataset("image_folder", path=tmp_path / "pets", test_split=0.25, seed=1)
    assert decoded == []  # listing and splitting decode nothing (the headers give the sizes)
    x_train, y_train, x_test, y_test = data
    assert data.metadata == {"classes": ["cat", "dog"], "inputs": {"dataset": "image_folder",
                                                            "options": {"image_size": [6, 5], "color_mode": "rgb"}}}
    assert isinstance(x_train, LazyRows) and x_train.shape == (8, 3, 6, 5) and x_train.dtype == np.float32
    assert x_test.shape == (3, 3, 6, 5) and y_train.dtype == np.int64 and type(y_train) is np.ndarray
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == [0] * 7 + [1] * 4
    dataset = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "pets")
    x, y = dataset.arrays()
    assert dataset.classes == ["cat", "dog"] and y.tolist() == [0] * 7 + [1] * 4
    expected = np.stack([*written["cat"], np.zeros((3, 6, 5), np.uint8), *written["dog"]]) / np.float32(255)
    batch = x[np.array([10, 0, 6])]
    assert batch.dtype == np.float32 and batch.shape == (3, 3, 6, 5)
    np.testing.assert_array_equal(batch, expected[[10, 0, 6]])  # png is lossless
    np.testing.assert_array_equal(x[:], expected)
    assert len(decoded) >= 11  # reading the rows decodes (what the check above counts)


def test_image_folder_grayscale_and_resizing(Image, tmp_path):
    written = write_folder(Image, tmp_path / "g", {"a": 2, "b": 2}, size=(8, 6), mode="L")
    x, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "g", color_mode="grayscale").arrays()
    assert x.shape == (4, 1, 8, 6)
    np.testing.assert_array_equal(x[:], np.stack(written["a"] + written["b"]) / np.float32(255))
    rgb, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "g").arrays()
    assert rgb.shape == (4, 3, 8, 6) and np.array_equal(rgb[0][0], rgb[0][2])  # gray as rgb: equal channels
    for size, shape in ((4, (4, 4)), ((3, 5), (3, 5)), ([5, 2], (5, 2))):  # an int, a tuple, a TOML list
        small, _ = lamina.get_registry().build(
            "dataset", "image_folder", path=tmp_path / "g", color_mode="grayscale", image_size=size
        ).arrays()
        assert small.shape == (4, 1, *shape) and small[:].shape == (4, 1, *shape)
    height, width = 3, 5
    resized = Image.open(tmp_path / "g" / "b" / "1.png").convert("L").resize((width, height), Image.Resampling.BILINEAR)
    small, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "g", color_mode="grayscale",
                                           image_size=(height, width)).arrays()
    np.testing.assert_array_equal(small[3][0], np.asarray(resized) / np.float32(255))


def test_images_of_different_sizes_need_image_size(Image, tmp_path):
    write_folder(Image, tmp_path / "m", {"a": 2})
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "m" / "a" / "2.png")
    with pytest.raises(lamina.ShapeError,
                       match=r"differ in size: '.*0.png' is 6x5 pixels and '.*2.png' is 9x7 \(height x width\).*"
                       r"set image_size = \[h, w\]"):
        # when listing, not training
        lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "m").arrays()
    x, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "m", image_size=(6, 5)).arrays()
    assert x[:].shape == (3, 3, 6, 5)


def test_a_bad_image_is_an_error_naming_it_or_left_out_with_skip_bad(Image, tmp_path):
    write_folder(Image, tmp_path / "b", {"a": 3, "b": 2})
    (tmp_path / "b" / "a" / "1.png").write_bytes(b"not an image at all")
    png = (tmp_path / "b" / "b" / "0.png").read_bytes()
    (tmp_path / "b" / "b" / "0.png").write_bytes(png[:30])  # truncated
    with pytest.raises(lamina.ArgumentError,
                       match=r"image_folder\(path=.*\): cannot read '.*1.png' as an image.*skip_bad=True"):
        # the headers are read when listing
        lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "b").arrays()
    x, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "b", image_size=(6, 5)).arrays()
    x[[0]]
    with pytest.raises(lamina.ArgumentError,
                       match=r"image_folder\(path=.*\): cannot read '.*1.png' as an image.*skip_bad=True"):
        x[[1]]  # with image_size, a file is first opened when it is read
    with pytest.warns(lamina.PluginWarning, match=r"left out 2 file\(s\) that Pillow cannot open \(skip_bad=True\)"):
        data = lamina.dataset("image_folder", path=tmp_path / "b", skip_bad=True, test_split=0.0)
    assert len(data[0]) == 3 and sorted(data[1].tolist()) == [0, 0, 1] and data[0][:].shape == (3, 3, 6, 5)
    (tmp_path / "b" / "b" / "1.png").write_bytes(b"broken too")
    with pytest.raises(lamina.ArgumentError, match="the class folder 'b' has no image files.*skip_bad=True left out"):
        lamina.dataset("image_folder", path=tmp_path / "b", skip_bad=True)


def test_the_cache_decodes_each_image_once(Image, tmp_path, monkeypatch):
    write_folder(Image, tmp_path / "c", {"a": 3, "b": 3})
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    x_train, _, x_test, _ = lamina.dataset("image_folder", path=tmp_path / "c", test_split=0.5)
    first = opened.copy()
    epoch = np.concatenate([x_train[:], x_test[:]])
    assert len(opened) - len(first) == 6  # each image decoded once
    n = len(x_train)
    np.testing.assert_array_equal(x_train[::-1], epoch[:n][::-1])
    np.testing.assert_array_equal(x_test[[1, 0, 1]], epoch[n:][[1, 0, 1]])
    assert len(opened) - len(first) == 6  # a second epoch decodes nothing
    opened.clear()
    x, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "c", cache=False,
                                       image_size=6).arrays()
    assert opened == []  # with image_size nothing is opened before reading
    x[:], x[[0, 1]]
    assert len(opened) == 8  # without the cache every read decodes


def test_the_split_is_stratified_seeded_and_disjoint(Image, tmp_path):
    write_folder(Image, tmp_path / "s", {"a": 10, "b": 5, "c": 5}, size=(2, 2))
    dataset = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "s", test_split=0.2, seed=3)
    x_train, y_train, x_test, y_test = dataset.load()
    assert np.bincount(y_test).tolist() == [2, 1, 1] and np.bincount(y_train).tolist() == [8, 4, 4]
    assert set(x_train.indices).isdisjoint(x_test.indices) and len(x_train) + len(x_test) == 20
    assert np.array_equal(y_train, dataset.arrays()[1][x_train.indices])
    assert y_train.tolist() != sorted(y_train.tolist())  # shuffled, not grouped by class
    again = lamina.dataset("image_folder", path=tmp_path / "s", test_split=0.2, seed=3)
    other = lamina.dataset("image_folder", path=tmp_path / "s", test_split=0.2, seed=4)
    assert np.array_equal(again[0].indices, x_train.indices) and not np.array_equal(other[0].indices, x_train.indices)


def test_image_folder_errors_name_the_folder_and_the_fix(Image, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(lamina.ArgumentError, match=r"image_folder\(path='missing'\): no such folder \(relative paths"):
        lamina.dataset("image_folder", path="missing")
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "flat" / "0.png")
    with pytest.raises(lamina.ArgumentError,
                       match="the folder has no subfolders; put the images of each class in a subfolder"):
        lamina.dataset("image_folder", path="flat")
    (tmp_path / "flat" / "empty").mkdir()
    with pytest.raises(lamina.ArgumentError, match="the class folder 'empty' has no image files"):
        lamina.dataset("image_folder", path="flat")
    with pytest.raises(lamina.ArgumentError, match=r"image_folder\(image_size=\(0, 4\)\): image_size must be None"):
        lamina.dataset("image_folder", path="flat", image_size=(0, 4))
    with pytest.raises(lamina.ArgumentError,
                       match=r"color_mode must be 'rgb' or 'grayscale'.*Did you mean 'grayscale'"):
        lamina.dataset("image_folder", path="flat", color_mode="greyscale")


def test_without_pillow_image_folder_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(lamina.PluginError, match=r"pip install Pillow"):
        lamina.dataset("image_folder", path=tmp_path)


def test_both_datasets_build_from_a_train_config(Image, npy_files):
    folder, _ = npy_files
    write_folder(Image, folder / "images", {"x": 2, "y": 3})
    text = f"""
epochs = 1
[dataset]
name = "image_folder"
path = "{(folder / 'images').as_posix()}"
image_size = [4, 4]
color_mode = "grayscale"
[[layers]]
type = "Flatten"
"""
    data = runconfig.load_dataset(runconfig.parse(text, "images.toml", "images"))
    assert data[0].shape[1:] == (1, 4, 4) and data.metadata["classes"] == ["x", "y"]
    assert data.metadata["inputs"]["options"] == {"image_size": [4, 4], "color_mode": "grayscale"}
    npy = text.split("[dataset]")[0] + f'[dataset]\nname = "npy"\npath = "{(folder / "x.npy").as_posix()}"\n' \
        f'target = "{(folder / "y.npy").as_posix()}"\n[[layers]]\ntype = "Flatten"\n'
    data = runconfig.load_dataset(runconfig.parse(npy, "npy.toml", "npy"))
    assert data[0].shape == (40, 4) and data.metadata == {}
    broken = text.replace('name = "image_folder"', 'name = "image_folder"\nskip_bad = "yes"')
    with pytest.raises(lamina.ConfigError,
                       match="images.toml: dataset: image_folder.skip_bad='yes'.*must be True or False"):
        runconfig.load_dataset(runconfig.parse(broken, "images.toml", "images"))


def test_the_example_writes_the_digits_folder_that_images_toml_reads(Image, tmp_path):
    from conftest import run_python

    out = tmp_path / "digits_png"
    result = run_python(str(ROOT / "examples" / "make_image_folder.py"), "--out", str(out), "--size", "16")
    assert result.returncode == 0, result.stderr
    assert "wrote 1797 PNG files of 16x16 pixels" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [str(d) for d in range(10)]
    assert Image.open(next((out / "3").iterdir())).size == (16, 16)
    config = runconfig.read(ROOT / "examples" / "configs" / "images.toml")
    assert config.data["dataset"]["name"] == "image_folder" and config.data["dataset"]["path"] == "data/digits_png"
    config.data["dataset"]["path"] = str(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x_train, y_train, x_test, y_test = runconfig.load_dataset(config)
    assert x_train.shape == (1438, 1, 16, 16) and x_test.shape == (359, 1, 16, 16)
    counts = np.bincount(np.concatenate([y_train, y_test])).tolist()
    assert sorted(counts) == sorted([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert 0.0 <= x_test[:8].min() and x_test[:8].max() <= 1.0


def test_a_model_trains_on_an_image_folder_and_lamina_predict_classifies_a_folder(tmp_path):
    pytest.importorskip("PIL", reason="image_folder needs Pillow: pip install Pillow")
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 210)):
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(level, 20, size=(6, 6)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / name / f"{i}.png")
    x_train, y_train, x_test, y_test = data = lamina.dataset("image_folder", path=str(tmp_path / "train"),
                                                              color_mode="grayscale", test_split=0.25)
    model = lamina.Model(["Flatten", lamina.layer("Linear", 2)])
    model.metadata.update(data.metadata)
    lamina.seed(0)
    model.train(x_train, y_train, optim=lamina.optimizer("Adam", lr=0.1),
                loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=30, batch_size=6, verbose=False)  # a lazy x: read and decoded a batch at a time
    assert model.evaluate(x_test, y_test, metrics=["accuracy"])["accuracy"] == 1.0
    saved = model.save(tmp_path / "model.npz")
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(np.full((6, 6), 220, np.uint8)).save(new / "bright.png")
    Image.fromarray(np.full((6, 6), 30, np.uint8)).save(new / "dim.png")
    result = subprocess.run([sys.executable, "-m", "lamina", "predict", str(saved), str(new)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(name, label) for name, label, _ in lines] == [("bright.png", "light"), ("dim.png", "dark")]
    assert all(0.5 < float(score) <= 1.0 for _, _, score in lines)
    result = subprocess.run([sys.executable, "-m", "lamina", "predict", str(saved), str(new / "bright.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "--out FILE" in result.stderr
