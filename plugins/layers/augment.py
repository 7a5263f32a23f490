"""Data augmentation layers: RandomFlip, RandomCrop, RandomTranslation, GaussianNoise, RandomErasing.

Each one changes its input only while training (drawing from lamina's seeded generator, so
`lamina.seed` repeats a run) and is the identity in inference, returning its input itself;
RandomCrop alone does something in inference too: a center crop. Put them first in a model:

>>> model = lamina.Model([lamina.layer("RandomCrop", 8, padding=1), lamina.layer("RandomFlip"), "Flatten",
...                       lamina.layer("Linear", 10)])

Backward runs the gradient through the same draw as the last forward: flipped back, scattered
back into the crop's window, zeroed where the input was erased.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

import lamina
from lamina.case import Case
from lamina.plugins.layers._spatial import as_given, check_images, pair

if TYPE_CHECKING:
    from lamina.export import Graph

# What forward keeps for a crop's backward: the index of the windows in the padded input, the
# padded shape, the padding (top, left) and the input's (height, width).
Crop = tuple[tuple[Any, ...], tuple[int, ...], tuple[int, int], tuple[int, int]]


def _crop(x: np.ndarray, pads: tuple[int, int], size: tuple[int, int], top: Any, left: Any) -> tuple[np.ndarray, Crop]:
    """The (h, w) = `size` windows at rows `top`, columns `left` of x zero-padded by `pads` on
    each side: one offset per sample (int arrays, gathered by fancy indexing) or one for all
    (ints, a slice: a view when there is no padding). Returns them and what `_uncrop` needs."""
    (ph, pw), (h, w) = pads, size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    index: tuple[Any, ...]
    if isinstance(top, np.ndarray):
        n, c = x.shape[:2]
        index = (
            np.arange(n)[:, None, None, None],
            np.arange(c)[None, :, None, None],
            (top[:, None] + np.arange(h))[:, None, :, None],
            (left[:, None] + np.arange(w))[:, None, None, :],
        )
    else:
        index = (slice(None), slice(None), slice(top, top + h), slice(left, left + w))
    return xp[index], (index, xp.shape, pads, (x.shape[2], x.shape[3]))


def _uncrop(grad: np.ndarray, crop: Crop) -> np.ndarray:
    """dL/dx of `_crop`: the gradient written back into its windows, the padding dropped."""
    index, padded, (ph, pw), (height, width) = crop
    dxp = np.zeros(padded, dtype=grad.dtype)
    dxp[index] = grad  # windows of one sample never overlap, so a write (not an add) is exact
    return dxp[:, :, ph : ph + height, pw : pw + width]


class RandomFlip(lamina.Layer):
    """In training, flip each sample with probability `p`: along the width ("horizontal"), the
    height ("vertical"), or each independently ("both"). Images (batch, channels, height,
    width); "horizontal" also takes (batch, channels, length), flipping the length."""

    keeps = ("_flips",)  # what forward keeps for backward
    _flips: np.ndarray | None  # (batch, axes): which samples were flipped along which axis

    conformance_cases = [
        Case({"p": 0.5}, (4, 2, 3, 5), wrong_shape=(4, 2, 3, 5, 2)),
        Case({"mode": "both", "p": 0.7}, (5, 1, 4, 4), wrong_shape=(5, 1, 4)),
        Case({"mode": "vertical", "p": 1.0}, (2, 3, 4, 3), wrong_shape=(2, 3, 4)),
        Case({"p": 1.0}, (3, 2, 6)),
    ]

    def __init__(self, mode: str = "horizontal", p: float = 0.5) -> None:
        self.mode = lamina.checks.one_of(mode, "mode", "RandomFlip", ("horizontal", "vertical", "both"))
        self.p = lamina.checks.fraction(p, "p", "RandomFlip", high_open=False)
        self._axes = {"horizontal": (-1,), "vertical": (-2,), "both": (-2, -1)}[mode]

    def _check(self, x: np.ndarray) -> None:
        if x.ndim == 4 or (x.ndim == 3 and self.mode == "horizontal"):
            return
        expected = "(batch, channels, height, width)"
        if self.mode == "horizontal":
            expected += " or (batch, channels, length)"
        raise lamina.ShapeError(
            f"{self!r} expects {expected}, got shape {x.shape} ({x.ndim} dimensions); reshape flat rows "
            "with e.g. x.reshape(-1, 1, 8, 8) or a Reshape layer"
        )

    def _flip(self, a: np.ndarray) -> np.ndarray:
        """`a` with the drawn samples flipped; flips undo themselves, so backward calls it too."""
        if self._flips is None or not self._flips.any():
            return a
        out = a.copy()
        for k, axis in enumerate(self._axes):
            rows = self._flips[:, k]
            out[rows] = np.flip(out[rows], axis=axis)
        return out

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        if not self.training or self.p == 0.0:
            self._flips = None
            return x
        self._flips = lamina.rng().random((x.shape[0], len(self._axes))) < self.p
        return self._flip(x)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        flips = self._flips  # first: before any forward, this is the error that says so
        if not self.needs_input_grad:
            return None
        return grad if flips is None else self._flip(grad)

    def to_onnx(self, graph: Graph, x: str) -> str:
        return graph.op("Identity", x)  # exported models run in inference mode


class RandomCrop(lamina.Layer):
    """Pad height and width with `padding` zeros on each side, then cut a window of `size`
    (an int or a (height, width) pair) at a random place per sample; images (batch, channels,
    height, width). In inference: the center window of the padded input (top and left offsets
    rounded down), so RandomCrop(32, padding=4) on 32 x 32 images (the CIFAR recipe) is the
    identity there. Backward writes the gradient back into each window and drops the padding."""

    keeps = ("_window",)  # what forward keeps for backward
    _window: Crop | None

    conformance_cases = [
        Case({"size": 4, "padding": 1}, (2, 2, 5, 5), wrong_shape=(2, 2, 5)),
        Case({"size": (3, 5)}, (3, 1, 4, 6), wrong_shape=(3, 1, 2, 6)),
        Case({"size": (6, 7), "padding": (1, 2)}, (2, 2, 6, 5)),
    ]

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0) -> None:
        self._size = pair(size, "size", "RandomCrop")
        self._pads = pair(padding, "padding", "RandomCrop", minimum=0)
        self.size = as_given(size)
        self.padding = as_given(padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_images(x, repr(self))
        (h, w), (ph, pw) = self._size, self._pads
        height, width = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if height < h or width < w:
            raise lamina.ShapeError(
                f"{self!r}: the padded input is {height} x {width} (shape {x.shape} with padding {ph}, {pw}), smaller "
                f"than the crop of {h} x {w}; use a smaller size or more padding, e.g. "
                f"RandomCrop(size={(min(h, height), min(w, width))}, padding={self.padding!r})"
            )
        if self.training:
            offsets = lamina.rng().integers(0, (height - h + 1, width - w + 1), size=(x.shape[0], 2))
            y, self._window = _crop(x, (ph, pw), (h, w), offsets[:, 0], offsets[:, 1])
            return y
        top, left = (height - h) // 2 - ph, (width - w) // 2 - pw  # in the unpadded input
        if (top, left, h, w) == (0, 0, x.shape[2], x.shape[3]):
            self._window = None
            return x
        if top >= 0 and left >= 0 and top + h <= x.shape[2] and left + w <= x.shape[3]:
            y, self._window = _crop(x, (0, 0), (h, w), top, left)  # inside the input: a view
        else:
            y, self._window = _crop(x, (ph, pw), (h, w), top + ph, left + pw)
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        window = self._window  # first: before any forward, this is the error that says so
        if not self.needs_input_grad:
            return None
        return grad if window is None else _uncrop(grad, window)

    def to_onnx(self, graph: Graph, x: str) -> str:
        """The inference center crop: a Slice, after a Pad where the window reaches into the padding."""
        _, _, height, width = graph.shape(x)
        (h, w), (ph, pw) = self._size, self._pads
        top, left = (height + 2 * ph - h) // 2 - ph, (width + 2 * pw - w) // 2 - pw
        if (top, left, h, w) == (0, 0, height, width):
            return graph.op("Identity", x)
        if top < 0 or left < 0 or top + h > height or left + w > width:
            x = graph.op("Pad", x, graph.ints([0, 0, ph, pw, 0, 0, ph, pw], "pads"))
            top, left = top + ph, left + pw
        return graph.op("Slice", x, graph.ints([top, left], "starts"), graph.ints([top + h, left + w], "ends"),
                        graph.ints([2, 3], "axes"))


class RandomTranslation(lamina.Layer):
    """In training, shift each sample by a random whole number of pixels in [-max_shift,
    max_shift] along the height and along the width (`max_shift` an int or a pair), filling
    what is vacated with zeros; images (batch, channels, height, width)."""

    keeps = ("_window",)  # what forward keeps for backward
    _window: Crop | None

    conformance_cases = [
        Case({"max_shift": 2}, (2, 2, 5, 5), wrong_shape=(2, 2, 5)),
        Case({"max_shift": (1, 3)}, (3, 1, 4, 6)),
    ]

    def __init__(self, max_shift: int | tuple[int, int]) -> None:
        self._shift = pair(max_shift, "max_shift", "RandomTranslation", minimum=0)
        self.max_shift = as_given(max_shift)

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_images(x, repr(self))
        if not self.training or self._shift == (0, 0):
            self._window = None
            return x
        # A shift by s is the window at offset max_shift - s of the input padded by max_shift.
        mh, mw = self._shift
        shifts = lamina.rng().integers((-mh, -mw), (mh + 1, mw + 1), size=(x.shape[0], 2))
        y, self._window = _crop(x, (mh, mw), (x.shape[2], x.shape[3]), mh - shifts[:, 0], mw - shifts[:, 1])
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        window = self._window  # first: before any forward, this is the error that says so
        if not self.needs_input_grad:
            return None
        return grad if window is None else _uncrop(grad, window)

    def to_onnx(self, graph: Graph, x: str) -> str:
        return graph.op("Identity", x)  # exported models run in inference mode


class GaussianNoise(lamina.Layer):
    """In training, y = x + noise with noise ~ N(0, std^2) drawn anew per element; any shape.
    Backward is the identity (the noise does not depend on x)."""

    keeps = ("_noisy",)  # what forward keeps for backward

    conformance_cases = [Case({"std": 0.5}), Case({"std": 0.1}, (2, 3, 4, 4))]

    def __init__(self, std: float) -> None:
        self.std = lamina.checks.non_negative_number(std, "std", "GaussianNoise", example=0.1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._noisy = self.training and self.std > 0
        if not self._noisy:
            return x
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        drawn = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)  # what numpy draws in
        noise = lamina.rng().standard_normal(x.shape, dtype=drawn)
        noise *= self.std
        return (x + noise).astype(dtype, copy=False)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        _ = self._noisy  # first: before any forward, this is the error that says so
        return grad if self.needs_input_grad else None

    def to_onnx(self, graph: Graph, x: str) -> str:
        return graph.op("Identity", x)  # exported models run in inference mode


class RandomErasing(lamina.Layer):
    """In training, with probability `p` per sample, set a random rectangle (all channels) to
    `value`; images (batch, channels, height, width). As torchvision's RandomErasing: the
    rectangle covers a fraction of the image drawn from `scale`, with an aspect ratio drawn
    log-uniformly from [0.3, 3.3], rounded to whole pixels; of 10 such draws the first that
    fits strictly inside the image is used, and none fitting leaves the sample as it is.
    Backward zeroes the gradient on the erased pixels."""

    keeps = ("_mask",)  # what forward keeps for backward
    _mask: np.ndarray | None

    ratio = (0.3, 3.3)  # the aspect ratios (height / width) drawn from, as torchvision
    attempts = 10  # draws of a rectangle per sample before giving up on erasing it

    conformance_cases = [
        Case({"p": 1.0}, (3, 2, 6, 6), wrong_shape=(3, 2, 6)),
        Case({"scale": (0.1, 0.5), "value": 1.0}, (4, 1, 5, 7)),
    ]

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.33), value: float = 0.0) -> None:
        self.p = lamina.checks.fraction(p, "p", "RandomErasing", high_open=False)
        self._scale = self._fractions(scale)
        self.scale = as_given(scale)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise lamina.ArgumentError(
                f"RandomErasing(value={value!r}): value must be a finite number, got "
                f"{lamina.checks.describe(value)}; pass e.g. RandomErasing(value=0.0)"
            )
        self.value: float = float(value)

    @staticmethod
    def _fractions(scale: object) -> tuple[float, float]:
        example = "pass e.g. RandomErasing(scale=(0.02, 0.33))"
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise lamina.ArgumentError(
                f"RandomErasing(scale={scale!r}): scale must be a pair (low, high) of area fractions, got "
                f"{lamina.checks.describe(scale)}; {example}"
            )
        real = all(not isinstance(s, bool) and isinstance(s, numbers.Real) and math.isfinite(s) for s in scale)
        low, high = (float(s) for s in scale) if real else (math.nan, math.nan)
        if not 0 < low <= high <= 1:
            raise lamina.ArgumentError(
                f"RandomErasing(scale={scale!r}): scale must be (low, high) with 0 < low <= high <= 1, the "
                f"fractions of the image area to erase, got {lamina.checks.describe(scale)}; {example}"
            )
        return low, high

    def _draw(self, shape: tuple[int, ...]) -> np.ndarray:
        """The (batch, 1, height, width) mask of the pixels to erase, drawn for every sample at once."""
        n, _, height, width = shape
        generator = lamina.rng()
        chosen = generator.random(n) < self.p
        area = height * width * generator.uniform(*self._scale, size=(n, self.attempts))
        aspect = np.exp(generator.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(n, self.attempts)))
        h = np.round(np.sqrt(area * aspect)).astype(np.int64)
        w = np.round(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h < height) & (w < width)
        first = np.argmax(fits, axis=1)  # the first draw that fits (0 where none does)
        erase = chosen & fits.any(axis=1)
        h, w = h[np.arange(n), first], w[np.arange(n), first]
        corner = generator.random((n, 2))
        top = np.floor(corner[:, 0] * (height - h + 1)).astype(np.int64)
        left = np.floor(corner[:, 1] * (width - w + 1)).astype(np.int64)
        rows = np.arange(height)
        cols = np.arange(width)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        return (erase[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :])[:, None]

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_images(x, repr(self))
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if x.dtype.kind != "f":
            x = x.astype(lamina.DEFAULT_DTYPE)
        self._mask = self._draw(x.shape)
        return np.where(self._mask, x.dtype.type(self.value), x)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        mask = self._mask  # first: before any forward, this is the error that says so
        if not self.needs_input_grad:
            return None
        return grad if mask is None else np.where(mask, grad.dtype.type(0), grad)

    def to_onnx(self, graph: Graph, x: str) -> str:
        return graph.op("Identity", x)  # exported models run in inference mode


@lamina.hookimpl
def register_layers(register):
    register(RandomFlip)
    register(RandomCrop)
    register(RandomTranslation)
    register(GaussianNoise)
    register(RandomErasing)
