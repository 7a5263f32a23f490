"""Datasets that stay on disk: `npy` (memory-mapped .npy files) and `image_folder` (a folder of
images per class), read a batch at a time.

Their inputs are `LazyRows`: array-likes with len(), .shape, .dtype and indexing by an int, a
slice or an integer array, which read only the rows asked for and return numpy arrays; nothing
is read in `load()` beyond the files' headers and the folder listing.
"""
from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import lamina
from lamina.checks import boolean, describe, fraction, intact_mapping, non_negative_int, one_of, positive_int
from lamina.errors import warn

Transform = Callable[[np.ndarray], np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = {"rgb": "RGB", "grayscale": "L"}
MAX_DECODED_BYTES = 2 << 30  # image_folder's default bound on its decoded images (the cache), 2 GiB
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's 16-bit (and 32-bit int) grayscale


def read_rows(source: Any, rows: np.ndarray) -> np.ndarray:
    """`source[rows]` as a new array: the rows (int64, any order, repeats allowed) are read once
    each in increasing order, a run of consecutive rows as one slice (memory maps and HDF5 files
    read fastest so), then put back in the asked order."""
    if len(rows) == 0:
        return np.empty((0, *source.shape[1:]), dtype=source.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    first, last = int(unique[0]), int(unique[-1])
    if last - first + 1 == len(unique):
        block = np.asarray(source[first : last + 1])
        if isinstance(source, np.ndarray):  # a view (of a memory map): copy, so that no batch holds the file
            block = block.copy()
    else:
        block = np.asarray(source[unique])
    if len(unique) == len(rows) and np.array_equal(unique, rows):
        return block
    return block[inverse.reshape(-1)]


class LazyRows:
    """Rows `indices` of `source` (all of its rows with None), read only when indexed.

    `source` is anything with len(), .shape, .dtype and row indexing by a slice or an increasing
    integer array (an ndarray, a np.memmap, an h5py dataset). `view[key]`, for an int, a slice, or
    an integer or boolean array, reads those rows (see `read_rows`) and applies `transform` to the
    batch (e.g. a scaling); the result is a numpy array of `dtype`. `np.asarray(view)` reads all.
    """

    def __init__(self, source: Any, indices: np.ndarray | None = None, transform: Transform | None = None) -> None:
        self.source = source
        self.transform = transform
        if indices is not None:
            indices = np.asarray(indices)
            if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
                raise lamina.ArgumentError(
                    f"LazyRows(indices=...): indices must be a 1-D integer array of rows, got shape {indices.shape} "
                    f"and dtype {indices.dtype}"
                )
            indices = indices.astype(np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= len(source)):
                raise lamina.ArgumentError(
                    f"LazyRows(indices=...): rows must be in [0, {len(source)}), the source's rows; got "
                    f"{int(indices.min())} to {int(indices.max())}"
                )
        self.indices = indices
        empty = np.empty((0, *source.shape[1:]), dtype=source.dtype)
        probe = empty if transform is None else np.asarray(transform(empty))
        self.shape: tuple[int, ...] = (len(self), *probe.shape[1:])
        self.dtype: np.dtype = probe.dtype

    def __len__(self) -> int:
        return len(self.source) if self.indices is None else len(self.indices)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"LazyRows({len(self)} rows of shape {self.shape[1:]}, {self.dtype}, from {type(self.source).__name__})"

    def positions(self, key: object) -> np.ndarray:
        """The rows of this view that `key` (a slice, an integer or boolean array) names, as int64."""
        n = len(self)
        if isinstance(key, slice):
            picked = range(n)[key]
            return np.arange(picked.start, picked.stop, picked.step, dtype=np.int64)
        if isinstance(key, (np.ndarray, list)):
            array = np.asarray(key)
            if array.dtype.kind == "b" and array.shape == (n,):
                return np.flatnonzero(array)
            if array.ndim == 1 and (array.dtype.kind in "iu" or array.size == 0):
                array = array.astype(np.int64)
                if array.size and (array.min() < -n or array.max() >= n):
                    raise IndexError(f"{self!r}: row indices must be in [-{n}, {n}), "
                                     f"got {int(array.min())} to {int(array.max())}")
                return np.where(array < 0, array + n, array)
        raise lamina.ArgumentError(
            f"{self!r}: index rows with an int, a slice, or a 1-D integer (or length-{n} boolean) array; got "
            f"{describe(key)}"
        )

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, tuple):  # view[rows, columns...]: the rows, then numpy indexes the rest
            if not key:
                return self[:]
            rows = self[key[0]]
            return rows[key[1:]] if _is_int(key[0]) else rows[(slice(None), *key[1:])]
        if _is_int(key):
            n, i = len(self), operator.index(key)  # type: ignore[arg-type]
            if not -n <= i < n:
                raise IndexError(f"{self!r}: row {i} is out of range for {n} rows")
            return self._read(np.array([i % n], dtype=np.int64))[0]
        return self._read(self.positions(key))

    def _read(self, positions: np.ndarray) -> np.ndarray:
        rows = positions if self.indices is None else self.indices[positions]
        intact_mapping(self.source, repr(self))  # before each read: a map whose file shrank would crash
        batch = read_rows(self.source, rows)
        return batch if self.transform is None else np.asarray(self.transform(batch))

    def subset(self, key: object) -> LazyRows:
        """The rows `key` names (a slice, an integer or boolean array) as another lazy view."""
        positions = self.positions(key)
        return LazyRows(self.source, positions if self.indices is None else self.indices[positions], self.transform)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self), 256):  # one read per 256 rows, not one per row
            yield from self[start : start + 256]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError(f"{self!r}: np.asarray(copy=False) is impossible; the rows are read into a new array")
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


def _is_int(key: object) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_))


def to_unit(batch: np.ndarray) -> np.ndarray:
    """uint8 values as float32 in [0, 1] (x / 255)."""
    return batch.astype(np.float32) / np.float32(255)


def scaled(batch: np.ndarray, factor: float) -> np.ndarray:
    """The batch as float32, times `factor`."""
    return batch.astype(np.float32) * np.float32(factor)


def labels(batch: np.ndarray) -> np.ndarray:
    return batch.astype(np.int64, copy=False)


def real_targets(batch: np.ndarray) -> np.ndarray:
    batch = batch.astype(np.float32, copy=False)
    return batch.reshape(-1, 1) if batch.ndim == 1 else batch


def split_rows(n: int, test_split: float, seed: int, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: a seeded permutation of the n rows, its last `test_split` the
    test part (as the in-memory datasets split)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_split))
    if n_test == n:
        raise lamina.ArgumentError(f"{owner}(test_split={test_split}): the {n} rows leave none for training; "
                                   "lower test_split")
    return order[: n - n_test], order[n - n_test :]


def _path(value: object, name: str, owner: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise lamina.ArgumentError(f"{owner}({name}={value!r}): {name} must be a path (a str or a pathlib.Path), "
                                   f"got {describe(value)}")
    return os.fspath(value)


def _where(path: str) -> str:
    return "" if os.path.isabs(path) else f" (relative paths start in the current folder, {os.getcwd()})"


class Npy(lamina.Dataset):
    """Inputs from the .npy file `path` and targets from the .npy file `target` (row i of each
    belongs together), memory-mapped with `mmap=True` so that a batch reads only its rows; never
    unpickled. Every part is a `LazyRows` view of the files.

    `scale`: None turns uint8 inputs into float32 in [0, 1] (x / 255) and leaves other dtypes as
    they are; a number multiplies every input batch by it (float32). Integer and bool targets
    become int64 class labels, floating ones float32 ((n, 1) from a 1-D file). The split is a
    seeded shuffle of the rows, its last `test_split` the test part.
    """

    suffixes = (".npy",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        target: str | os.PathLike[str] | None = None,
        mmap: bool = True,
        scale: float | None = None,
        test_split: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.path = _path(path, "path", "npy")
        self.target = None if target is None else _path(target, "target", "npy")
        self.mmap = boolean(mmap, "mmap", "npy")
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0
        ):
            raise lamina.ArgumentError(
                f"npy(scale={scale!r}): scale must be a positive number that multiplies every input batch, or None "
                f"(uint8 inputs / 255), got {describe(scale)}; e.g. npy(scale=0.5)"
            )
        self.scale = scale
        self.test_split = fraction(test_split, "test_split", "npy")
        self.seed = non_negative_int(seed, "seed", "npy")

    def _open(self, path: str, name: str) -> np.ndarray:
        owner = f"npy({name}={path!r})"
        if not os.path.isfile(path):
            problem = "is a folder, not an .npy file" if os.path.isdir(path) else f"no such file{_where(path)}"
            raise lamina.ArgumentError(f"{owner}: {problem}; pass the path of an .npy file written by np.save")
        try:
            array = np.load(path, mmap_mode="r" if self.mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:  # pickled objects, a truncated file, not .npy at all
            raise lamina.ArgumentError(
                f"{owner}: cannot read it as an .npy array of numbers ({err}); write it with np.save(path, array) "
                "of a numeric array (pickled objects are never loaded)"
            ) from None
        if isinstance(array, np.lib.npyio.NpzFile):
            array.close()
            raise lamina.ArgumentError(f"{owner}: the file is an .npz archive, not one .npy array; "
                                       "read it with the npz dataset")
        if array.dtype.kind not in "biuf":
            raise lamina.ArgumentError(
                f"{owner}: the array has dtype {array.dtype}, not numbers (bool, int or float); "
                "save it converted, e.g. np.save(path, array.astype(np.float32))"
            )
        if array.ndim == 0 or len(array) == 0:
            raise lamina.ShapeError(f"{owner}: the array has no rows (shape {array.shape}); "
                                    "a dataset needs at least one sample")
        return array

    def arrays(self) -> tuple[LazyRows, LazyRows | None]:  # type: ignore[override]  # array-likes, not ndarrays
        """All rows of (x, y) as lazy views; y is None with target=None (inputs only)."""
        x = self._open(self.path, "path")
        if self.scale is not None:
            transform: Transform | None = functools.partial(scaled, factor=self.scale)
        else:
            transform = to_unit if x.dtype == np.uint8 else None
        inputs = LazyRows(x, transform=transform)
        if self.target is None:
            return inputs, None
        y = self._open(self.target, "target")
        if len(y) != len(x):
            raise lamina.ShapeError(
                f"npy(path={self.path!r}, target={self.target!r}): the inputs have {len(x)} rows but the targets "
                f"{len(y)}; row i of the target file must belong to row i of the inputs"
            )
        return inputs, LazyRows(y, transform=labels if y.dtype.kind in "biu" else real_targets)

    def load(self) -> tuple[LazyRows, LazyRows, LazyRows, LazyRows]:  # type: ignore[override]
        x, y = self.arrays()
        if y is None:
            raise lamina.ArgumentError(
                f"npy(path={self.path!r}, target=None): training and testing need targets; pass target=..., "
                "an .npy file with one target per row of the inputs (e.g. labels.npy)"
            )
        train, test = split_rows(len(x), self.test_split, self.seed, "npy")
        return x.subset(train), y.subset(train), x.subset(test), y.subset(test)


def pillow() -> ModuleType:
    """PIL.Image, or a lamina error that says how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise lamina.PluginError(
            "image_folder needs Pillow to read images, and it is not installed; pip install Pillow"
        ) from None
    return Image


class Images:
    """The images `files` as uint8 (n, channels, height, width), decoded when read: a source for
    `LazyRows`, indexed by a slice or an increasing integer array. With `cache`, each image is
    kept after its first decode (in one preallocated array and a mask of the decoded ones)."""

    def __init__(self, files: list[str], size: tuple[int, int], resize: bool, mode: str, cache: bool,
                 owner: str) -> None:
        self.files, self.size, self.resize, self.mode, self.owner = files, size, resize, mode, owner
        self.Image = pillow()
        self.shape = (len(files), 3 if mode == "RGB" else 1, *size)
        self.dtype = np.dtype(np.uint8)
        self.cache = np.zeros(self.shape, np.uint8) if cache else None  # pages are touched only when filled
        self.decoded = np.zeros(len(files), dtype=bool)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            picked = range(len(self))[key]
            rows = np.arange(picked.start, picked.stop, picked.step, dtype=np.int64)
        else:
            rows = np.asarray(key, dtype=np.int64)
        if self.cache is None:
            batch = np.empty((len(rows), *self.shape[1:]), np.uint8)
            for i, row in enumerate(rows):
                batch[i] = self.decode(self.files[row])
            return batch
        for row in rows[~self.decoded[rows]]:
            self.cache[row] = self.decode(self.files[row])
            self.decoded[row] = True
        return self.cache[rows]

    def decode(self, file: str) -> np.ndarray:
        """One image as uint8 (channels, height, width)."""
        Image, (height, width) = self.Image, self.size
        try:
            with Image.open(file) as image:
                if not self.resize and image.size != (width, height):
                    raise lamina.ShapeError(
                        f"{self.owner}: {file!r} is {image.size[1]}x{image.size[0]} pixels (height x width), but the "
                        f"first image is {height}x{width}; without image_size all images must be one size; "
                        "pass image_size=(height, width) to resize them all"
                    )
                converted = eight_bit(self.Image, image).convert(self.mode)
                if self.resize and converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8)
        except lamina.LaminaError:
            raise
        except Exception as err:  # Pillow's decoders raise many kinds (OSError, SyntaxError, ValueError, ...)
            raise lamina.ArgumentError(
                f"{self.owner}: cannot read {file!r} as an image ({type(err).__name__}: {err}); remove or replace "
                "the file, or pass skip_bad=True to leave out the files Pillow cannot open"
            ) from None
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def eight_bit(Image: ModuleType, image: Any) -> Any:
    """`image`, with 16-bit grayscale (Pillow's I;16 modes, and I from a 16-bit PNG) scaled to
    8-bit L (round(x / 257): 65535 -> 255), where Pillow's convert("L") would clip every value
    above 255 to white; other modes as they are."""
    if image.mode not in WIDE_MODES:
        return image
    pixels = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)  # I;16B reads big-endian, I as int32
    return Image.fromarray(((pixels + 128) // 257).astype(np.uint8), mode="L")


def inside(folder: str, path: str) -> bool:
    """Whether the real path `path` is `folder` (a real path) or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Walk:
    """Image files under a root folder, without following symbolic links that lead out of it
    (unless `follow_symlinks`); a link that does is left out and remembered in `skipped`.
    Names starting with "." are left out; each real folder is visited once (a link loop ends)."""

    def __init__(self, root: str, follow_symlinks: bool) -> None:
        self.root = os.path.realpath(root)
        self.follow_symlinks = follow_symlinks
        self.skipped: list[tuple[str, str]] = []  # (link, where it leads)
        self.visited: set[str] = set()

    def allowed(self, entry: os.DirEntry[str]) -> bool:
        """False for a symlink out of the root (when not following those), recorded in skipped."""
        if self.follow_symlinks or not entry.is_symlink():
            return True
        target = os.path.realpath(entry.path)
        if inside(self.root, target):
            return True
        self.skipped.append((entry.path, target))
        return False

    def folders(self, folder: str) -> list[str]:
        """The names of `folder`'s subfolders that may be read (not hidden, no link out), sorted."""
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return []
        return sorted(entry.name for entry in entries
                      if not entry.name.startswith(".") and _is_dir(entry) and self.allowed(entry))

    def images(self, folder: str) -> list[str]:
        """The image files under `folder` and its subfolders, sorted by their path in it."""
        found: list[tuple[tuple[str, ...], str]] = []
        stack: list[tuple[str, tuple[str, ...]]] = [(folder, ())]
        self.visited = {os.path.realpath(folder)}
        while stack:  # a stack, not recursion: a deep tree cannot exhaust Python's stack
            where, parts = stack.pop()
            try:
                entries = sorted(os.scandir(where), key=lambda entry: entry.name)
            except OSError:  # unreadable: left out, as pathlib's rglob does
                continue
            for entry in entries:
                if entry.name.startswith(".") or not self.allowed(entry):
                    continue
                if _is_dir(entry):
                    real = os.path.realpath(entry.path)
                    if real not in self.visited:
                        self.visited.add(real)
                        stack.append((entry.path, (*parts, entry.name)))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and _is_file(entry):
                    found.append(((*parts, entry.name), entry.path))
        return [path for _, path in sorted(found)]

    def warn_skipped(self, owner: str) -> None:
        if self.skipped:
            link, target = self.skipped[0]
            warn(f"{owner}: left out {len(self.skipped)} symbolic link(s) that lead out of the folder, e.g. {link!r} "
                 f"-> {target!r}; to read them, pass follow_symlinks=True (follow_symlinks = true in the [dataset] "
                 "table)")


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a broken link, a permission error
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


class ImageFolder(lamina.Dataset):
    """Images in one subfolder of `path` per class (path/cat/1.png, path/dog/7.jpg); the sorted
    subfolder names are the classes (label i is `classes[i]`, kept in `metadata()` and so in a
    trained model's file). Image files (png, jpg, jpeg, bmp, gif, webp, any case) in each class
    folder and its subfolders, in sorted order; names starting with "." are left out.

    x is a `LazyRows` of float32 (n, channels, height, width) in [0, 1], 3 channels for
    color_mode="rgb" and 1 for "grayscale", decoded with Pillow (`pip install Pillow`)
    a batch at a time; with `cache` each image is decoded once and kept (as uint8: n x channels x
    height x width bytes in all). y is int64. `image_size=(height, width)` (or an int for
    squares) resizes every image (bilinear); None requires every image to have the first one's
    size, and every file's header is read when listing to check that (a file Pillow cannot open
    is then an error at once). `skip_bad=True` opens every file when listing and leaves out,
    with one warning, those Pillow cannot read; else a bad file is an error when it is read. The split is stratified:
    a seeded shuffle within each class, its last `test_split` of every class the test part (both
    parts then shuffled).

    16-bit grayscale images are scaled to 8 bits (x / 257), not clipped. Symbolic links that lead
    out of `path` are not followed unless `follow_symlinks` (linked images are left out with a
    warning, a class folder linked from elsewhere is an error). With `cache`, the decoded images
    (n x channels x height x width bytes) may take at most `max_decoded_bytes`, checked before
    anything is decoded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        image_size: int | tuple[int, int] | None = None,
        color_mode: str = "rgb",
        test_split: float = 0.2,
        seed: int = 0,
        cache: bool = True,
        skip_bad: bool = False,
        follow_symlinks: bool = False,
        max_decoded_bytes: int = MAX_DECODED_BYTES,
    ) -> None:
        self.path = _path(path, "path", "image_folder")
        self.image_size = _image_size(image_size)
        self.color_mode = one_of(color_mode, "color_mode", "image_folder", MODES)
        self.test_split = fraction(test_split, "test_split", "image_folder")
        self.seed = non_negative_int(seed, "seed", "image_folder")
        self.cache = boolean(cache, "cache", "image_folder")
        self.skip_bad = boolean(skip_bad, "skip_bad", "image_folder")
        self.follow_symlinks = boolean(follow_symlinks, "follow_symlinks", "image_folder")
        self.max_decoded_bytes = positive_int(max_decoded_bytes, "max_decoded_bytes", "image_folder",
                                              example=MAX_DECODED_BYTES)
        self._listing: tuple[list[str], list[str], np.ndarray] | None = None
        self._images: Images | None = None

    @property
    def owner(self) -> str:
        return f"image_folder(path={self.path!r})"

    def _list(self) -> tuple[list[str], list[str], np.ndarray]:
        """(classes, files, labels), listed once; skip_bad also opens each file."""
        if self._listing is not None:
            return self._listing
        Image = pillow()
        root = Path(self.path)
        if not root.is_dir():
            problem = "is a file, not a folder" if root.exists() else f"no such folder{_where(self.path)}"
            raise lamina.ArgumentError(f"{self.owner}: {problem}; pass a folder with one subfolder of images per class")
        walk = Walk(self.path, self.follow_symlinks)
        classes = walk.folders(self.path)
        if walk.skipped:  # a class folder elsewhere: refused, not left out, so that no class goes missing quietly
            link, target = walk.skipped[0]
            raise lamina.ArgumentError(
                f"{self.owner}: the class folder {link!r} is a symbolic link out of the folder, to {target!r}; "
                "links out are not followed unless you pass follow_symlinks=True (follow_symlinks = true in the "
                "[dataset] table), or move the images into the folder"
            )
        if not classes:
            raise lamina.ArgumentError(
                f"{self.owner}: the folder has no subfolders; put the images of each class in a "
                "subfolder named after it, e.g. path/cat/1.png and path/dog/2.png"
            )
        files: list[str] = []
        label_list: list[int] = []
        bad: list[str] = []
        for label, name in enumerate(classes):
            found = names = walk.images(os.fspath(root / name))
            if self.skip_bad:
                opens = [_opens(Image, file) for file in names]
                bad += [file for file, ok in zip(names, opens) if not ok]
                names = [file for file, ok in zip(names, opens) if ok]
            if not names:
                left_out = " that Pillow can open (skip_bad=True left out the others)" if found else _links(walk)
                walk.warn_skipped(self.owner)
                raise lamina.ArgumentError(
                    f"{self.owner}: the class folder {name!r} has no image files "
                    f"({', '.join(IMAGE_SUFFIXES)}){left_out}; "
                    "add images to it or remove it"
                )
            files += names
            label_list += [label] * len(names)
        walk.warn_skipped(self.owner)
        if bad:
            warn(f"{self.owner}: left out {len(bad)} file(s) that Pillow cannot open (skip_bad=True), e.g. {bad[0]!r}")
        if self.image_size is None:
            self._same_size(files)
        self._listing = classes, files, np.array(label_list, dtype=np.int64)
        return self._listing

    @property
    def classes(self) -> list[str]:
        """The class names, sorted; label i is classes[i]."""
        return list(self._list()[0])

    reads_folders = True  # `lamina predict MODEL FOLDER` reads the images of a folder through inputs()

    def metadata(self) -> dict[str, Any]:
        """The classes, and how to read new images for a model trained on these (their size and
        color mode): `lamina predict MODEL FOLDER` reads a folder with them."""
        images = self.images()
        options = {"image_size": list(images.size), "color_mode": self.color_mode}
        return {"classes": self.classes, "inputs": {"dataset": "image_folder", "options": options}}

    def inputs(self) -> tuple[LazyRows, list[str]]:
        """Every image file under `path`, class subfolders or not (sorted), as float32 in [0, 1],
        and each file's path relative to `path`: what to predict."""
        root = Path(self.path)
        if not root.is_dir():
            raise lamina.ArgumentError(f"{self.owner}: no such folder{_where(self.path)}; pass a folder of images")
        walk = Walk(self.path, self.follow_symlinks)
        files = walk.images(self.path)
        walk.warn_skipped(self.owner)
        if not files:
            raise lamina.ArgumentError(f"{self.owner}: the folder has no image files "
                                       f"({', '.join(IMAGE_SUFFIXES)}){_links(walk)}")
        size = self.image_size or self._first_size(files[0])
        images = Images(files, size, self.image_size is not None, MODES[self.color_mode], False, self.owner)
        return LazyRows(images, transform=to_unit), [os.path.relpath(file, root) for file in files]

    def _same_size(self, files: list[str]) -> None:
        """Without image_size every image must have the first one's size: checked now, from
        the files' headers (Pillow's open decodes nothing), not when training reaches a batch."""
        first = self._first_size(files[0])
        for file in files[1:]:
            size = self._first_size(file)
            if size != first:
                raise lamina.ShapeError(
                    f"{self.owner}: the images differ in size: {files[0]!r} is {first[0]}x{first[1]} pixels and "
                    f"{file!r} is {size[0]}x{size[1]} (height x width); without image_size all images must be one "
                    f"size; set image_size = [h, w] in the [dataset] table (image_size=(h, w) in Python) to resize "
                    f"them all, e.g. image_size = [{first[0]}, {first[1]}]"
                )

    def _first_size(self, file: str) -> tuple[int, int]:
        """(height, width) of `file`, from its header (nothing is decoded)."""
        try:
            with pillow().open(file) as image:
                return image.size[1], image.size[0]
        except Exception as err:  # Pillow raises many kinds for a file it cannot identify
            raise lamina.ArgumentError(
                f"{self.owner}: cannot read {file!r} as an image ({type(err).__name__}: {err}); remove or "
                "replace the file, or pass skip_bad=True to leave out the files Pillow cannot open"
            ) from None

    def _check_decoded(self, n: int, channels: int, size: tuple[int, int]) -> None:
        """The cache keeps every image decoded (n x channels x height x width bytes): refused
        above max_decoded_bytes, before anything is decoded or allocated."""
        total = n * channels * size[0] * size[1]
        if total > self.max_decoded_bytes:
            how = "image_size" if self.image_size is not None else "their own size (no image_size)"
            raise lamina.ArgumentError(
                f"{self.owner}: the {n} images decoded at {size[0]}x{size[1]} pixels ({how}) with {channels} "
                f"channel(s) take {_size(total)}, more than max_decoded_bytes={self.max_decoded_bytes} "
                f"({_size(self.max_decoded_bytes)}) that the cache may hold; set a smaller image_size = [h, w] in the "
                "[dataset] table (image_size=(h, w) in Python), or raise max_decoded_bytes, or pass cache=False "
                "to decode each batch anew"
            )

    def images(self) -> Images:
        """All images as uint8 (n, channels, height, width), decoded when read (shared by both parts)."""
        if self._images is None:
            _, files, _ = self._list()
            size = self.image_size or self._first_size(files[0])  # the first image's size, from its header
            mode = MODES[self.color_mode]
            if self.cache:
                self._check_decoded(len(files), 3 if mode == "RGB" else 1, size)
            self._images = Images(files, size, self.image_size is not None, mode, self.cache, self.owner)
        return self._images

    def arrays(self) -> tuple[LazyRows, np.ndarray]:  # type: ignore[override]  # x is an array-like
        """All images (in listing order) and their labels."""
        return LazyRows(self.images(), transform=to_unit), self._list()[2]

    def load(self) -> tuple[LazyRows, np.ndarray, LazyRows, np.ndarray]:  # type: ignore[override]
        x, y = self.arrays()
        train, test = stratified_split(y, self.test_split, self.seed, "image_folder")
        return x.subset(train), y[train], x.subset(test), y[test]


def _links(walk: Walk) -> str:
    if not walk.skipped:
        return ""
    return (f" (left out {len(walk.skipped)} symbolic link(s) that lead out of it; follow_symlinks=True reads "
            "them)")


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _opens(Image: ModuleType, file: str) -> bool:
    """Whether Pillow can open `file` and its verify() finds no fault (cheap: nothing is decoded)."""
    try:
        with Image.open(file) as image:
            image.verify()
    except Exception:  # Pillow raises many kinds for a broken file
        return False
    return True


def _image_size(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(side) and int(side) >= 1 for side in pair)
    ):
        raise lamina.ArgumentError(
            f"image_folder(image_size={value!r}): image_size must be None (keep the images' own size), an int "
            f"for squares or (height, width), whole numbers >= 1, got {describe(value)}; e.g. image_size=(32, 32)"
        )
    return int(pair[0]), int(pair[1])


def stratified_split(y: np.ndarray, test_split: float, seed: int, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: within each class a seeded shuffle, its last `test_split` the
    test part; each part then shuffled, so that no part is ordered by class."""
    rng = np.random.default_rng(seed)
    by_class = np.split(np.argsort(y, kind="stable"), np.cumsum(np.bincount(y))[:-1])
    train, test = [], []
    for rows in by_class:
        rows = rng.permutation(rows)
        n_test = int(round(len(rows) * test_split))
        train.append(rows[: len(rows) - n_test])
        test.append(rows[len(rows) - n_test :])
    train_rows, test_rows = np.concatenate(train), np.concatenate(test)
    if len(train_rows) == 0:
        raise lamina.ArgumentError(f"{owner}(test_split={test_split}): the {len(y)} images leave none for training; "
                                   "lower test_split")
    return rng.permutation(train_rows), rng.permutation(test_rows)


@lamina.hookimpl
def register_datasets(register):
    register(Npy, name="npy")
    register(ImageFolder, name="image_folder")
