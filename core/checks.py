"""Input validation shared by the core and by plugins; messages name the object, expected and actual."""
from __future__ import annotations

import difflib
import mmap
import re
import reprlib
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np

from lamina.errors import ArgumentError, FileFormatError, ShapeError
from lamina.protocols.schedule import Schedule

DEFAULT_DTYPE = np.dtype(np.float32)
T = TypeVar("T")
# The most lists and tables nested in one another in what lamina reads or writes: a model file's
# config.json (a composite layer inside another takes three levels: its record, its config and
# its list of layers) and a `lamina train` config. Checked before anything recurses into it.
MAX_NESTING = 100


# Containers are shown a few levels deep and a few items wide: a message about a value nested
# thousands deep must not recurse thousands deep to show it.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 3, 4, 6, 6, 6
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60


def describe(value: object) -> str:
    """`0 (int)`: the value and its type, as error messages show them."""
    try:
        text = _SHORT.repr(value) if isinstance(value, (dict, list, tuple, set, frozenset)) else repr(value)
    except Exception:  # a __repr__ that raises or recurses: the message must still be built
        text = f"<{type(value).__name__} object>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def nesting(value: object) -> tuple[int, str]:
    """How deep lists, tuples and dicts nest in `value` (a scalar 0, `[]` 1, `{"a": [1]}` 2), and the
    path to the deepest (`.a[0].b`); without recursion, so any depth can be measured."""
    parents: list[int] = []
    keys: list[object] = []
    depths: list[int] = []
    pending: list[tuple[object, int, object]] = [(value, -1, None)]
    deepest = -1
    while pending:
        item, parent, key = pending.pop()
        children: Iterable[tuple[object, object]]
        if isinstance(item, dict):
            children = item.items()
        elif isinstance(item, (list, tuple)):
            children = enumerate(item)
        else:
            continue
        node = len(depths)
        parents.append(parent)
        keys.append(key)
        depths.append(1 if parent < 0 else depths[parent] + 1)
        if deepest < 0 or depths[node] > depths[deepest]:
            deepest = node
        pending.extend((child, node, name) for name, child in children if isinstance(child, (dict, list, tuple)))
    if deepest < 0:
        return 0, ""
    path: list[str] = []
    node = deepest
    while parents[node] >= 0:
        key = keys[node]
        path.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        node = parents[node]
    return depths[deepest], "".join(reversed(path))


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))


def json_without_strings(text: bytes) -> bytes:
    """A JSON text with its strings taken out, for counting its structure before it is parsed
    (brackets, commas and digits inside strings are text)."""
    return _JSON_STRING.sub(b"", text)


def json_depth(bare: bytes) -> int:
    """How deep lists and tables nest in `json_without_strings(text)`: a few passes in C, then
    the levels a MiB at a time (not an int64 per byte of a 100 MB text)."""
    steps = bare.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS)
    deepest = level = 0
    chunk = 2**20
    for start in range(0, len(steps), chunk):
        levels = level + np.cumsum(np.frombuffer(steps[start : start + chunk], dtype=np.int8), dtype=np.int64)
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def printable(text: object, limit: int = 200) -> str:
    """`text` safe to print: control characters (terminal escapes, newlines) shown escaped, and
    cut at `limit` characters. For text that comes from files, which is data, never commands."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def positive_int(value: object, name: str, owner: str, example: int = 8) -> int:
    """Return `value` as an int, or raise ArgumentError unless it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a positive int, got {describe(value)}; "
            f"pass a whole number >= 1, e.g. {owner}({name}={example})"
        )
    return int(value)


def positive_number(value: object, name: str, owner: str, example: float = 0.01) -> float:
    """Return `value` as a float, or raise ArgumentError unless it is a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not np.isfinite(np.asarray(value))
        or value <= 0
    ):
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a positive number, got {describe(value)}; "
            f"pass e.g. {owner}({name}={example})"
        )
    return float(value)


def learning_rate(value: object, owner: str, example: float = 0.01) -> float | Schedule:
    """A learning rate as it enters an optimizer: a positive number, or a Schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, type) and issubclass(value, Schedule):
        raise ArgumentError(
            f"{owner}(lr={value.__name__}): lr is a schedule class, not an instance; "
            f"write e.g. lr=lamina.schedule({value.__name__!r}, ...)"
        )
    if (isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(np.asarray(value))
            or value <= 0):
        raise ArgumentError(
            f"{owner}(lr={value!r}): lr must be a positive number or a lamina.Schedule, got "
            f"{describe(value)}; pass e.g. {owner}(lr={example})"
        )
    return float(value)


def non_negative_number(value: object, name: str, owner: str, example: float = 0.0) -> float:
    """Return `value` as a float, or raise ArgumentError unless it is a finite number >= 0."""
    if (isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(np.asarray(value))
            or value < 0):
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a number >= 0, got {describe(value)}; "
            f"pass e.g. {owner}({name}={example})"
        )
    return float(value)


def fraction(value: object, name: str, owner: str, low_open: bool = False, high_open: bool = True) -> float:
    """Return `value` as a float in [0, 1) (or the interval the flags give), else ArgumentError."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and bool(np.isfinite(np.asarray(value)))
    if ok:
        number = np.asarray(value)  # a finite real: as a 0-d array it compares as `value` does
        ok = bool(number > 0 if low_open else number >= 0) and bool(number < 1 if high_open else number <= 1)
    if not ok or not isinstance(value, Real):  # ok implies Real; the isinstance narrows value for mypy
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be a number in {interval}, got {describe(value)}"
        )
    return float(value)


def numbers(
    value: object, name: str, owner: str, count: int | None = 2, each: Callable[..., Any] = fraction,
    example: object = (0.9, 0.999),
) -> tuple[Any, ...]:
    """Return `value` as a tuple of `count` numbers (any length >= 1 with None), each checked by
    `each(number, name, owner)` (e.g. `fraction`, `positive_number`); an ArgumentError shows the
    whole tuple: `Lion(betas=(0.9, 1.0)): betas[1] must be a number in [0, 1), got 1.0 (float)`."""
    size = "a pair of numbers" if count == 2 else f"{count} numbers" if count else "one or more numbers"
    if not isinstance(value, (tuple, list)) or (len(value) != count if count else not value):
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be {size}, got {describe(value)}; pass e.g. "
            f"{owner}({name}={example!r})"
        )
    checked = []
    for i, number in enumerate(value):
        try:
            checked.append(each(number, f"{name}[{i}]", owner))
        except ArgumentError as err:
            prefix = f"{owner}({name}[{i}]={number!r}): "
            reason = str(err)[len(prefix):] if str(err).startswith(prefix) else f"{name}[{i}]: {err}"
            raise ArgumentError(f"{owner}({name}={value!r}): {reason}") from None
    return tuple(checked)


def input_shape(x: Any, owner: str, ndim: int | None = None, last: int | None = None) -> None:
    """A ShapeError naming `owner` unless x has `ndim` axes and a last axis of size `last` (each
    checked when given): the one line a layer's forward needs for the kit's `shape_error`."""
    shape = tuple(np.shape(x))
    wanted = []
    if ndim is not None:
        wanted.append(f"{ndim} axes")
    if last is not None:
        wanted.append(f"a last axis of size {last}")
    if (ndim is not None and len(shape) != ndim) or (last is not None and (not shape or shape[-1] != last)):
        width = " (or a new layer for another width)" if last is not None else ""
        raise ShapeError(f"{owner} needs an input with {' and '.join(wanted)}, got shape {shape}; give it inputs "
                         f"of that shape{width}")


def as_numeric(x: object, name: str, owner: str) -> np.ndarray:
    """`x` as a numeric ndarray (bool, int or float; no copy when it already is one)."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged nested lists, for example
        raise ArgumentError(
            f"{owner}: {name} must be a numeric array, but numpy could not convert it ({err}); "
            "pass a rectangular list or an ndarray"
        ) from None
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind == "O":
        try:
            return arr.astype(DEFAULT_DTYPE)
        except (ValueError, TypeError):
            pass
    raise ArgumentError(
        f"{owner}: {name} must be numeric (bool, int or float), got an array of dtype "
        f"{arr.dtype}; convert it first, e.g. np.asarray({name}, dtype=np.float32)"
    )


def as_floating(x: object, name: str, owner: str, dtype: np.dtype | None = None) -> np.ndarray:
    """`x` as a floating ndarray: floats keep their dtype, bools and ints become `dtype` (float32).

    No copy is made when `x` already is a floating ndarray.
    """
    arr = as_numeric(x, name, owner)
    if arr.dtype.kind == "f":
        return arr
    return arr.astype(dtype or DEFAULT_DTYPE)


def as_integers(x: object, name: str, owner: str) -> np.ndarray:
    """`x` as an integer ndarray (integral floats are converted); for index inputs."""
    arr = as_numeric(x, name, owner)
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "b" or (arr.dtype.kind == "f" and np.all(np.isfinite(arr))
                                 and np.array_equal(arr, np.round(arr))):
        return arr.astype(np.int64)
    raise ArgumentError(
        f"{owner}: {name} must hold integer indices, got an array of dtype {arr.dtype} with "
        "non-integer values; pass token or category ids as ints"
    )


def boolean(value: object, name: str, owner: str) -> bool:
    """Return `value` unless it is not exactly True or False (1, "yes" and None are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be True or False, got {describe(value)}"
        )
    return bool(value)


def non_negative_int(value: object, name: str, owner: str, example: int = 0) -> int:
    """Return `value` as an int, or raise ArgumentError unless it is a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ArgumentError(
            f"{owner}({name}={value!r}): {name} must be an int >= 0, got {describe(value)}; "
            f"pass a whole number >= 0, e.g. {owner}({name}={example})"
        )
    return int(value)


def one_of(value: T, name: str, owner: str, choices: Iterable[object]) -> T:
    """Return `value` if it is one of `choices`, else an ArgumentError listing them (with the
    closest one for a misspelt string)."""
    options = list(choices)
    try:
        found = value in options
    except TypeError:  # an unhashable or incomparable value
        found = False
    if not found:
        hint = ""
        if isinstance(value, str):
            spelled = {str(option).lower(): option for option in options if isinstance(option, str)}
            close = difflib.get_close_matches(value.lower(), list(spelled), n=1)
            hint = f" Did you mean {spelled[close[0]]!r}?" if close else ""
        listed = ", ".join(map(repr, options[:-1])) + (" or " if len(options) > 1 else "") + repr(options[-1])
        raise ArgumentError(f"{owner}({name}={value!r}): {name} must be {listed}, got {describe(value)}.{hint}")
    return value


def distinct_layers(layers: Sequence[Any], owner: str, argument: str) -> None:
    """An ArgumentError when one layer instance appears twice among `layers` (or inside them,
    through each layer's `walk()`), where they run side by side (Parallel's branches) rather than
    as a chain or graph, which save each call's state for its backward."""
    seen: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for inner in layer.walk():
            first = seen.setdefault(id(inner), i)
            if first != i:
                raise ArgumentError(
                    f"{owner}: {argument}[{i}] uses the same {type(inner).__name__} instance as {argument}[{first}]; "
                    "here each place needs its own instance; to share weights between places, use a graph model "
                    "(lamina.Model(inputs=..., outputs=...)) or a Sequential, which save each call's state"
                )


def intact_mapping(source: object, where: str) -> None:
    """A FileFormatError if `source` is a memory map whose file is now shorter than the map
    (`where` names the reader): touching a page past the file's end kills the process with
    SIGBUS, which Python cannot catch. The size is the file's as it is now, from fstat on the
    map's own open descriptor (mmap.size()), so a truncation by another program between two
    reads shows; replacing the file by a rename does not matter (the map keeps the old file),
    and a truncation during a read still crashes. Call it before each read."""
    if not isinstance(source, np.memmap):
        return
    mapping = getattr(source, "_mmap", None)
    if mapping is None:
        return
    try:
        found = mapping.size()
    except (OSError, ValueError):  # a closed map, or one without a descriptor: nothing to check
        return
    offset = int(source.offset)
    needed = offset - offset % mmap.ALLOCATIONGRANULARITY + len(mapping)
    if found < needed:
        raise FileFormatError(
            f"{where}: the memory-mapped file {source.filename!r} is {found:,} bytes now but was {needed:,} bytes "
            "when it was mapped: another program truncated or rewrote it while lamina was reading it, and reading "
            "on would crash; leave the file alone while training (or train from a copy of it), then run again"
        )
