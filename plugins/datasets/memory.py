"""Datasets: xor, spirals, digits, digit_pairs and moby_dick (shipped), and npz / csv / text
loaders for a user's own files.

Each returns (x_train, y_train, x_test, y_test) with float32 inputs; class labels are int64.
Splits and synthetic draws use the dataset's own `seed`, so data never depends on what else
drew from lamina's generator.
"""
from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from importlib.resources import as_file, files
from typing import cast

import numpy as np

import lamina
from lamina.checks import describe, fraction, positive_int

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def split(x: np.ndarray, y: np.ndarray, test_split: float, seed: int) -> Arrays:
    """A seeded shuffle, then the last `test_split` fraction as the test part."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_split))
    train, test = order[: len(x) - n_test], order[len(x) - n_test :]
    return x[train], y[train], x[test], y[test]


def _seed(value: object, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise lamina.ArgumentError(f"{owner}(seed={value!r}): seed must be an int >= 0")
    return value


class Xor(lamina.Dataset):
    """The four XOR samples, as float32 (4, 2) inputs and (4, 1) targets; the test part is the
    same four (XOR has nothing to hold out)."""

    def load(self) -> Arrays:
        x = np.array([[0, 1], [0, 0], [1, 1], [1, 0]], dtype=np.float32)
        y = np.array([[1], [0], [0], [1]], dtype=np.float32)
        return x, y, x.copy(), y.copy()


class Spirals(lamina.Dataset):
    """`n_classes` interleaved 2-D spirals (the CS231n toy problem); labels 0..n_classes-1."""

    def __init__(
        self, n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, test_split: float = 0.2, seed: int = 0
    ) -> None:
        self.n_samples = positive_int(n_samples, "n_samples", "spirals", example=300)
        self.n_classes = positive_int(n_classes, "n_classes", "spirals", example=3)
        self.noise = lamina.checks.non_negative_number(noise, "noise", "spirals", example=0.2)
        self.test_split = fraction(test_split, "test_split", "spirals")
        self.seed = _seed(seed, "spirals")

    def load(self) -> Arrays:
        rng = np.random.default_rng(self.seed)
        per_class = -(-self.n_samples // self.n_classes)
        xs, ys = [], []
        for k in range(self.n_classes):
            radius = np.linspace(0.0, 1.0, per_class)
            angle = np.linspace(k * 4.0, (k + 1) * 4.0, per_class) + rng.normal(scale=self.noise, size=per_class)
            xs.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
            ys.append(np.full(per_class, k))
        x = np.concatenate(xs)[: self.n_samples].astype(np.float32)
        y = np.concatenate(ys)[: self.n_samples].astype(np.int64)
        return split(x, y, self.test_split, self.seed)


class Digits(lamina.Dataset):
    """The 1,797 8x8 handwritten digits (UCI, shipped with lamina); labels 0..9.

    `flatten=True` gives (n, 64) rows, else (n, 1, 8, 8) images; `normalize` scales 0..16 to [0, 1].
    `labels=[5, 6, 7, 8, 9]` keeps only those digits, relabelled 0, 1, ... in that order (the
    model's class names say which digit each is): a task of its own, e.g. to fine-tune on.
    `train_per_class=N` keeps at most N training rows of each class (a few-shot task); the test
    part is the same whatever N.
    """

    def __init__(self, test_split: float = 0.2, seed: int = 0, flatten: bool = True, normalize: bool = True,
                 labels: list[int] | None = None, train_per_class: int | None = None) -> None:
        self.test_split = fraction(test_split, "test_split", "digits")
        self.seed = _seed(seed, "digits")
        self.flatten = bool(flatten)
        self.normalize = bool(normalize)
        if labels is not None and not (
            isinstance(labels, (list, tuple)) and labels and len(set(labels)) == len(labels)
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 9 for n in labels)
        ):
            raise lamina.ArgumentError(f"digits(labels={describe(labels)}): expected distinct digits 0..9, e.g. "
                                       "labels=[5, 6, 7, 8, 9]")
        self.labels = None if labels is None else [int(n) for n in labels]
        self.train_per_class = None if train_per_class is None else positive_int(
            train_per_class, "train_per_class", "digits", example=10)

    def load(self) -> Arrays:
        with (as_file(files("lamina.plugins") / "data" / "digits.npz") as path,
              np.load(path, allow_pickle=False) as data):
            images, labels = data["images"], data["labels"]
        x = images.astype(np.float32)
        if self.normalize:
            x /= 16.0
        x = x.reshape(len(x), -1) if self.flatten else x.reshape(len(x), 1, 8, 8)
        y = labels.astype(np.int64)
        if self.labels is not None:
            relabel = np.full(10, -1, dtype=np.int64)
            relabel[self.labels] = np.arange(len(self.labels))
            kept = relabel[y] >= 0
            x, y = x[kept], relabel[y[kept]]
        x_train, y_train, x_test, y_test = split(x, y, self.test_split, self.seed)
        if self.train_per_class is not None:  # the first N of each class in the shuffled order
            rank = np.zeros(len(y_train), dtype=np.int64)
            for label in np.unique(y_train):
                rows = np.flatnonzero(y_train == label)
                rank[rows] = np.arange(len(rows))
            kept = rank < self.train_per_class
            x_train, y_train = x_train[kept], y_train[kept]
        return x_train, y_train, x_test, y_test

    def metadata(self) -> dict[str, object]:
        """The class names: the digit each label stands for, when `labels` picks them."""
        return {} if self.labels is None else {"classes": [str(n) for n in self.labels]}


class DigitPairs(lamina.Dataset):
    """Pairs of 8x8 digits, same digit or not: x is {"left": (n, 64), "right": (n, 64)} (or
    (n, 1, 8, 8) images with `flatten=False`), y (n, 1) float32, 1.0 where both show the same
    digit; for a Siamese model (one encoder on both sides).

    The digits are split first (as `digits` splits them, by `test_split` and `seed`), so no test
    pair holds a training image. Each image is the left of `per_image` pairs of its part; half
    the pairs, in a seeded random order, pair it with another image of its digit, the other half
    with an image of another digit. `digits=True` makes y a dict for a model with several
    outputs: "same" as above, and "left_digit" and "right_digit", each image's digit (int64
    labels 0..9), for auxiliary heads.
    """

    def __init__(self, test_split: float = 0.2, seed: int = 0, per_image: int = 1, flatten: bool = True,
                 digits: bool = False) -> None:
        self.test_split = fraction(test_split, "test_split", "digit_pairs")
        self.seed = _seed(seed, "digit_pairs")
        self.per_image = positive_int(per_image, "per_image", "digit_pairs", example=2)
        self.flatten = lamina.checks.boolean(flatten, "flatten", "digit_pairs")
        self.digits = lamina.checks.boolean(digits, "digits", "digit_pairs")

    # x (and y with digits=True) are dicts by name, which Dataset.load's type (four arrays) does not say yet
    def load(self) -> tuple[dict[str, np.ndarray], object, dict[str, np.ndarray], object]:  # type: ignore[override]
        x_train, y_train, x_test, y_test = Digits(self.test_split, self.seed, flatten=self.flatten).load()
        draws = np.random.default_rng([self.seed, 1])  # apart from the split's own stream
        train, train_y = self._pairs(x_train, y_train, draws)
        test, test_y = self._pairs(x_test, y_test, draws)
        return train, train_y, test, test_y

    def _pairs(self, x: np.ndarray, y: np.ndarray, draws: np.random.Generator) -> tuple[dict[str, np.ndarray],
                                                                                       object]:
        left = np.tile(np.arange(len(x)), self.per_image)
        same = np.arange(len(left)) % 2 == 0
        draws.shuffle(same)
        right = np.empty_like(left)
        for label in np.unique(y):
            mine, others = np.flatnonzero(y == label), np.flatnonzero(y != label)
            rows = np.flatnonzero(y[left] == label)
            pick = same[rows]
            if len(mine) < 2 or not len(others):  # one image of a digit, or one digit: no true pairs to draw
                raise lamina.ArgumentError("digit_pairs: each part needs two images of every digit and two digits; "
                                           "lower test_split")
            # another image of the same digit: a random offset (not 0) in its list of images
            place = np.searchsorted(mine, left[rows[pick]])
            right[rows[pick]] = mine[(place + draws.integers(1, len(mine), size=pick.sum())) % len(mine)]
            right[rows[~pick]] = others[draws.integers(0, len(others), size=(~pick).sum())]
        target = same.astype(np.float32)[:, None]
        if self.digits:
            return {"left": x[left], "right": x[right]}, {"same": target, "left_digit": y[left],
                                                         "right_digit": y[right]}
        return {"left": x[left], "right": x[right]}, target

    def metadata(self) -> dict[str, object]:
        return {} if self.digits else {"classes": ["different", "same"]}


def _targets(y: np.ndarray, classification: bool | None) -> np.ndarray:
    """Integral targets become int64 labels (unless classification=False); others (n, 1) floats."""
    integral = y.dtype.kind in "iub" or bool(np.all(np.isfinite(y)) and np.array_equal(y, np.round(y)))
    if classification is True and not integral:
        raise lamina.ArgumentError("classification=True, but the target column has non-integer values")
    if classification is None:
        classification = integral
    if classification and y.ndim == 1:
        return y.astype(np.int64)
    y = y.astype(np.float32)
    return y.reshape(-1, 1) if y.ndim == 1 else y


class Npz(lamina.Dataset):
    """Arrays from a user's .npz file (never unpickled): `x_train`, `y_train`, `x_test`,
    `y_test` when it has them, else `x` and `target` split by `test_split`."""

    suffixes = (".npz",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        x: str = "x",
        target: str | None = "y",
        test_split: float = 0.2,
        seed: int = 0,
        classification: bool | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.x, self.target = x, target
        self.test_split = fraction(test_split, "test_split", "npz")
        self.seed = _seed(seed, "npz")
        self.classification = classification

    def _read(self) -> dict[str, np.ndarray]:
        try:
            data = np.load(self.path, allow_pickle=False)
        except ValueError as err:  # pickled object arrays, or not an npy/npz file at all
            raise lamina.ArgumentError(f"npz(path={self.path!r}): cannot read it as an .npz of numeric arrays "
                                       f"({err})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise lamina.ArgumentError(f"npz(path={self.path!r}): the file holds one array, "
                                       "not an .npz archive of named arrays")
        try:
            with data:
                arrays = {key: data[key] for key in data.files}
        except ValueError as err:  # a member that is a pickled object array
            raise lamina.ArgumentError(f"npz(path={self.path!r}): cannot read it as an .npz of numeric arrays "
                                       f"({err})") from None
        for key, array in arrays.items():  # an empty test part is allowed: it is only not scored
            if (array.ndim == 0 or len(array) == 0) and key not in ("x_test", "y_test"):
                raise lamina.ShapeError(
                    f"npz(path={self.path!r}): the array {key!r} has no rows (shape {array.shape}); "
                    "a dataset needs at least one sample"
                )
        return arrays

    def _pick(self, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
        if key not in arrays:
            raise lamina.ArgumentError(
                f"npz(path={self.path!r}): no array named {key!r}; it has {', '.join(map(repr, arrays))}. "
                "Name the arrays with x=... and target=..."
            )
        return arrays[key]

    def load(self) -> Arrays:
        arrays = self._read()
        if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
            return (
                lamina.checks.as_floating(arrays["x_train"], "x_train", "npz"),
                _targets(arrays["y_train"], self.classification),
                lamina.checks.as_floating(arrays["x_test"], "x_test", "npz"),
                _targets(arrays["y_test"], self.classification),
            )
        x, y = self.arrays(arrays)
        if y is None:
            raise lamina.ArgumentError("npz(target=None): training and testing need a target array")
        return split(x, y, self.test_split, self.seed)

    def arrays(self, arrays: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """All of (x, y); y is None with target=None (inputs only, e.g. for predictions)."""
        arrays = self._read() if arrays is None else arrays
        if self.x not in arrays and self.target is None and len(arrays) == 1:
            (only,) = arrays.values()  # an input file with a single array, whatever its name
            return lamina.checks.as_floating(only, "x", "npz").astype(np.float32, copy=False), None
        x = lamina.checks.as_floating(self._pick(arrays, self.x), "x", "npz")
        if self.target is None:
            return x.astype(np.float32, copy=False), None
        y = _targets(self._pick(arrays, self.target), self.classification)
        if len(x) != len(y):
            raise lamina.ShapeError(f"npz(path={self.path!r}): {self.x!r} has {len(x)} rows but {self.target!r} has "
                                    f"{len(y)}")
        return x.astype(np.float32, copy=False), y


# Text codecs that read the bytes as Python escapes: a file's backslash-n would become a newline.
ESCAPE_CODECS = ("unicode-escape", "raw-unicode-escape")


def text_encoding(value: object, owner: str) -> str:
    """`value` if it names a text encoding (bytes to characters, as open() takes); codecs such as
    'rot13' (str to str), 'hex' or 'zlib' (bytes to bytes) and unknown names are an ArgumentError."""
    try:
        info = codecs.lookup(value)  # type: ignore[arg-type]
    except (LookupError, TypeError):
        raise lamina.ArgumentError(
            f"{owner}(encoding={value!r}): not a known text encoding; pass the file's encoding, e.g. 'utf-8', "
            "'latin-1' or 'utf-16' (in a config: encoding = \"latin-1\" in the [dataset] table)"
        ) from None
    if not getattr(info, "_is_text_encoding", True) or info.name in ESCAPE_CODECS:
        raise lamina.ArgumentError(
            f"{owner}(encoding={value!r}): {info.name!r} is a codec but not a text encoding (it does not turn bytes "
            "into the characters they encode); pass the file's text encoding, e.g. 'utf-8', 'latin-1' or 'utf-16'"
        )
    return str(value)


FLOAT32_MAX = float(np.finfo(np.float32).max)  # a larger cell would become inf, silently


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _has_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns: all its cells are text, or one of its text
    cells heads a column of numbers (a column of class names holds text in every row)."""
    text = [j for j, cell in enumerate(rows[0]) if _number(cell) is None]
    if not text or len(text) == len(rows[0]) or len(rows) == 1:
        return bool(text)
    return any(all(j < len(row) and _number(row[j]) is not None for row in rows[1:]) for j in text)


def read_table(path: str, delimiter: str = ",", encoding: str = "utf-8") -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, rows of stripped cells) of a CSV file whose rows all have the header's
    width; blank lines are skipped. UTF-8 may start with a byte-order mark (Excel writes one);
    it is not part of the first cell."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        with open(path, newline="", encoding=codec) as handle:
            rows = [[c.strip() for c in row]
                    for row in csv.reader(handle, delimiter=delimiter) if row and any(c.strip() for c in row)]
    except UnicodeError as err:  # the decoders raise UnicodeDecodeError, and some (utf-16, punycode) plain UnicodeError
        where = (f"byte {err.object[err.start]:#04x} at offset {err.start}" if isinstance(err, UnicodeDecodeError)
                 else str(err))
        raise lamina.ArgumentError(
            f"csv(path={path!r}): the file is not {encoding} text ({where}); pass its encoding, e.g. "
            "encoding='latin-1' (in a config: encoding = \"latin-1\" in the [dataset] table)"
        ) from None
    except csv.Error as err:
        raise lamina.ArgumentError(f"csv(path={path!r}): cannot read it as CSV ({err})") from None
    if not rows:
        raise lamina.ArgumentError(f"csv(path={path!r}): the file has no rows")
    header = None
    if _has_header(rows):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise lamina.ArgumentError(f"csv(path={path!r}): the file has a header row but no data rows")
    width = len(header) if header else len(rows[0])
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise lamina.ArgumentError(f"csv(path={path!r}): line {number} has {len(row)} columns, expected {width}")
    return header, rows


class Csv(lamina.Dataset):
    """Rows of a CSV file; `target` is the label column (a name from the header or an index,
    default the last; None for inputs only); the other columns are the inputs, numbers all.

    A target column of numbers gives int64 labels when they are whole (unless
    classification=False), else float32 (n, 1) targets. A target column of text (names such as
    "setosa") gives class labels: `classes`, the names in label order, default the sorted
    distinct names (label i is classes[i]); they are kept in `metadata()["classes"]` and so in
    a trained model's file. A first row with text where the rest has numbers is a header.
    `weight`: a column (name or index) of non-negative numbers read as each row's sample weight
    instead of an input; `sample_weights()` hands them over (`lamina train` trains with them).
    """

    suffixes = (".csv",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        target: str | int | None = -1,
        delimiter: str = ",",
        test_split: float = 0.2,
        seed: int = 0,
        classification: bool | None = None,
        encoding: str = "utf-8",
        classes: list[str] | None = None,
        weight: str | int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.target = target
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (str, int))):
            raise lamina.ArgumentError(f"csv(weight={weight!r}): weight must be a column name or index, or None")
        self.weight = weight
        self._weights: np.ndarray | None = None  # the weight column, read with the rest
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
            raise lamina.ArgumentError(
                f"csv(delimiter={delimiter!r}): the delimiter must be one character other than a quote or a "
                "line break, e.g. ',' or ';' or '\\t'"
            )
        self.delimiter = delimiter
        self.encoding = text_encoding(encoding, "csv")
        self.test_split = fraction(test_split, "test_split", "csv")
        self.seed = _seed(seed, "csv")
        self.classification = classification
        if classes is not None and (
            not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)
        ):
            raise lamina.ArgumentError(
                f"csv(classes={classes!r}): classes must be None (the sorted names of the target column) or a list of "
                "distinct class names in label order, e.g. classes=['setosa', 'versicolor', 'virginica']"
            )
        self.classes = None if classes is None else list(classes)
        self._names: list[str] | None = None  # the class names the target column was read with
        self._read = False

    def _column(self, header: list[str] | None, width: int, which: str | int | None = None,
                option: str = "target") -> int:
        which = self.target if option == "target" else which
        if isinstance(which, str):
            if header is None or which not in header:
                columns = f"its columns are {', '.join(map(repr, header))}" if header else "it has no header row"
                suffix = "" if option == "target" else f" ({option})"
                raise lamina.ArgumentError(f"csv(path={self.path!r}): no column {which!r}{suffix}; {columns}")
            return header.index(which)
        if isinstance(which, int) and not isinstance(which, bool) and -width <= which < width:
            return which % width
        raise lamina.ArgumentError(f"csv({option}={which!r}): {option} must be a column name or an index below "
                                   f"{width}")

    def _weight_column(self, header: list[str] | None, rows: list[list[str]], width: int) -> int | None:
        """The weight column's index (None without one), its values kept as float64 in `_weights`."""
        if self.weight is None:
            self._weights = None
            return None
        column = self._column(header, width, self.weight, "weight")
        if self.target is not None and column == self._column(header, width):
            raise lamina.ArgumentError(f"csv(weight={self.weight!r}): the weight column is the target column; "
                                       "name another column")
        weights = self._numbers(header, rows, [column])[:, 0].astype(np.float64)
        if (weights < 0).any():
            row = int(np.flatnonzero(weights < 0)[0])
            raise lamina.ArgumentError(f"csv(path={self.path!r}): the weight column holds {weights[row]:g} on line "
                                       f"{row + (2 if header else 1)}; sample weights must be >= 0")
        self._weights = weights
        return column

    def sample_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The weight column's values for the rows of `load()`'s (train, test) parts, float64;
        None when the dataset has no `weight` column."""
        if self.weight is None:
            return None
        if not self._read:
            self.arrays()
        weights = cast(np.ndarray, self._weights)  # arrays() read the weight column
        w_train, _, w_test, _ = split(weights, weights, self.test_split, self.seed)
        return w_train, w_test

    def _numbers(self, header: list[str] | None, rows: list[list[str]], columns: list[int]) -> np.ndarray:
        """The cells of `columns` as float32 (rows, len(columns)); a cell that is no number is
        an error naming its column and line."""
        first = 2 if header else 1
        values = np.empty((len(rows), len(columns)), dtype=np.float32)
        for i, row in enumerate(rows):
            for k, j in enumerate(columns):
                number = _number(row[j])
                if number is None or not abs(number) <= FLOAT32_MAX:
                    name = f"{header[j]!r} (column {j + 1})" if header else f"{j + 1}"
                    problem = (
                        "is not a number; every input column must hold numbers (only the target column may hold "
                        "class names)" if number is None else
                        f"is not a finite float32 (at most {FLOAT32_MAX:.4g} in size): the inputs are float32"
                    )
                    raise lamina.ArgumentError(
                        f"csv(path={self.path!r}): line {i + first}, column {name}: {row[j]!r} {problem}; "
                        "fix or remove that cell, or drop the column"
                    )
                values[i, k] = number
        return values

    def _labels(self, header: list[str] | None, rows: list[list[str]], column: int) -> np.ndarray:
        """The target column: numbers as `_targets` makes them, names as int64 class labels."""
        cells = [row[column] for row in rows]
        numbers = [_number(cell) for cell in cells]
        if all(n is not None for n in numbers) and self.classes is None:
            self._names = None
            return _targets(np.array(numbers, dtype=np.float64), self.classification)
        what = f"the target column {header[column]!r}" if header else f"the target column {column + 1}"
        first = 2 if header else 1
        if self.classification is False:
            text = next((i, c) for i, c in enumerate(cells) if _number(c) is None)
            raise lamina.ArgumentError(
                f"csv(path={self.path!r}, classification=False): {what} holds text ({text[1]!r} on line "
                f"{text[0] + first}), not numbers to regress on; drop classification=False to read it as class names"
            )
        if "" in cells:
            raise lamina.ArgumentError(f"csv(path={self.path!r}): {what} is empty on line {cells.index('') + first}; "
                                       "every row needs its class")
        names = self.classes if self.classes is not None else sorted(set(cells))
        index = {name: i for i, name in enumerate(names)}
        unknown = next((i for i, cell in enumerate(cells) if cell not in index), None)
        if unknown is not None:
            raise lamina.ArgumentError(
                f"csv(path={self.path!r}): {what} holds {cells[unknown]!r} on line {unknown + first}, which is not one "
                f"of the classes {', '.join(map(repr, names))}"
            )
        self._names = list(names)
        return np.array([index[cell] for cell in cells], dtype=np.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        header, rows = read_table(self.path, self.delimiter, self.encoding)
        width = len(rows[0])
        weight = self._weight_column(header, rows, width)
        if self.target is None:
            return self._numbers(header, rows, [j for j in range(width) if j != weight]), None
        column = self._column(header, width)
        x = self._numbers(header, rows, [j for j in range(width) if j not in (column, weight)])
        y = self._labels(header, rows, column)
        self._read = True
        return x, y

    def metadata(self) -> dict[str, object]:
        """The class names when the target column holds names (label i is classes[i])."""
        if not self._read and self.target is not None:
            self.arrays()
        return {"classes": list(self._names)} if self._names is not None else {}

    def load(self) -> Arrays:
        x, y = self.arrays()
        if y is None:
            raise lamina.ArgumentError("csv(target=None): training and testing need a target column")
        return split(x, y, self.test_split, self.seed)


CHUNK_CHARS = 1 << 20  # characters decoded at a time: a few MB of transient memory, whatever the file's size


def _code_points(chunk: str) -> np.ndarray:
    """The characters of `chunk` as uint32 code points (lone surrogates included)."""
    return np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class Text(lamina.Dataset):
    """A character language-modelling set from a text file (UTF-8 unless `encoding`): x holds
    windows of `seq_len` character ids (n, seq_len) and y the next character at each position
    (n, seq_len), both int64.

    The vocabulary is the text's distinct characters in code-point order (id = position); it
    travels with the model in `metadata()` (`lamina.app.generate` encodes and decodes with it).
    The last `test_split` of the text is the test part, so no test character was seen in
    training. Windows start every `stride` characters (default `seq_len`: no overlap).

    The file is decoded in chunks twice (the vocabulary, then the ids), never held as one
    string: the data costs 8 bytes per character (one int64 id each; x and y are read-only
    views of that one array, whatever the stride).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        seq_len: int = 64,
        test_split: float = 0.1,
        stride: int | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.path = os.fspath(path)
        self.seq_len = positive_int(seq_len, "seq_len", "text", example=64)
        self.test_split = fraction(test_split, "test_split", "text")
        self.stride = None if stride is None else positive_int(stride, "stride", "text", example=self.seq_len)
        self.encoding = text_encoding(encoding, "text")
        self._read: tuple[np.ndarray, str] | None = None

    def _chunks(self) -> Iterator[str]:
        """The text, decoded (newlines translated, as open() does) a chunk at a time."""
        try:
            with open(self.path, encoding=self.encoding) as handle:
                while chunk := handle.read(CHUNK_CHARS):
                    yield chunk
        except UnicodeError as err:  # the decoders raise UnicodeDecodeError, and some (idna) plain UnicodeError
            raise lamina.ArgumentError(f"text(path={self.path!r}): not {self.encoding} text ({err}); pass the "
                                       "file's encoding, e.g. encoding='latin-1'") from None
        except OSError as err:
            raise lamina.ArgumentError(f"text(path={self.path!r}): cannot read the file ({err}); pass the path of a "
                                       "text file") from None

    def ids(self) -> tuple[np.ndarray, str]:
        """(every character's id as int64, the vocabulary), read once."""
        if self._read is None:
            seen = np.zeros(0x110000, dtype=bool)  # one flag per code point
            count = 0
            for chunk in self._chunks():
                seen[_code_points(chunk)] = True
                count += len(chunk)
            points = np.flatnonzero(seen).astype(np.uint32)
            parts = 2 if self.test_split else 1
            if count < parts * (self.seq_len + 1):
                raise lamina.ArgumentError(
                    f"text(path={self.path!r}): the text has {count} characters, too few for windows "
                    f"of seq_len={self.seq_len} in "
                    f"{'both the training and the test part' if parts == 2 else 'training'}; "
                    "use a longer text or a smaller seq_len"
                )
            try:
                ids = np.empty(count, dtype=np.int64)
            except MemoryError:
                raise lamina.ArgumentError(
                    f"text(path={self.path!r}): the text has {count:,} characters, and their ids (8 bytes each, "
                    f"{count * 8 / 2**30:.1f} GiB) do not fit in memory; train on a shorter text"
                ) from None
            done = 0
            for chunk in self._chunks():
                chunk_points = _code_points(chunk)
                found = np.searchsorted(points, chunk_points)
                if done + len(found) > count or np.any(points[np.minimum(found, len(points) - 1)] != chunk_points):
                    raise lamina.ArgumentError(f"text(path={self.path!r}): the file changed while it was read; "
                                               "read it when no other program writes it")
                ids[done : done + len(found)] = found
                done += len(found)
            if done != count:
                raise lamina.ArgumentError(f"text(path={self.path!r}): the file changed while it was read; "
                                           "read it when no other program writes it")
            self._read = ids, "".join(map(chr, points.tolist()))
        return self._read

    def text(self) -> str:
        """The whole text, as one string (built from the ids: the dataset never holds it)."""
        ids, vocabulary = self.ids()
        return "".join(vocabulary[i] for i in ids.tolist())

    def vocabulary(self) -> str:
        return self.ids()[1]

    def metadata(self) -> dict[str, object]:
        return {"vocabulary": self.vocabulary(), "seq_len": self.seq_len}

    def _windows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): read-only views of `ids`, the windows and the windows one character on."""
        stride = self.stride or self.seq_len
        count = -(-(len(ids) - self.seq_len) // stride)  # windows starting before len - seq_len
        windows = np.lib.stride_tricks.sliding_window_view(ids, self.seq_len)
        return windows[: len(windows) - 1 : stride][:count], windows[1::stride][:count]

    def load(self) -> Arrays:
        ids = self.ids()[0]
        cut = len(ids) - max(int(round(len(ids) * self.test_split)), self.seq_len + 1 if self.test_split else 0)
        if cut < self.seq_len + 1:
            raise lamina.ArgumentError(
                f"text(test_split={self.test_split}): the {len(ids)} characters leave {max(cut, 0)} for training, "
                f"fewer than one window of seq_len={self.seq_len} needs; lower test_split or seq_len"
            )
        x_train, y_train = self._windows(ids[:cut])
        if cut >= len(ids):
            empty = np.zeros((0, self.seq_len), dtype=np.int64)
            return x_train, y_train, empty, empty
        x_test, y_test = self._windows(ids[cut:])
        return x_train, y_train, x_test, y_test


class MobyDick(Text):
    """The first 39 chapters of Herman Melville's Moby-Dick (1851; public domain), 353,144
    characters, as a `text` set (plugins/data/MOBY_DICK.md has its source)."""

    def __init__(self, seq_len: int = 64, test_split: float = 0.1, stride: int | None = None) -> None:
        with as_file(files("lamina.plugins") / "data" / "moby_dick.txt") as path:
            super().__init__(path, seq_len=seq_len, test_split=test_split, stride=stride)
            self.ids()  # read now, while the path exists: it may be a temporary copy

    def get_config(self) -> dict[str, object]:
        return {"seq_len": self.seq_len, "test_split": self.test_split, "stride": self.stride}


@lamina.hookimpl
def register_datasets(register):
    register(Xor, name="xor")
    register(Spirals, name="spirals")
    register(Digits, name="digits")
    register(DigitPairs, name="digit_pairs")
    register(Npz, name="npz")
    register(Csv, name="csv")
    register(Text, name="text")
    register(MobyDick, name="moby_dick")
