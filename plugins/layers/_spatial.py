"""Argument and shape checks, max pooling and ONNX export shared by the image and sequence
layers (private to the built-in plugins)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import lamina

if TYPE_CHECKING:
    from lamina.export import Graph


def pair(value: object, name: str, owner: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
                              for v in items):
        raise lamina.ArgumentError(
            f"{owner}({name}={value!r}): {name} must be an int >= {minimum} or a pair of them, e.g. {name}=3"
        )
    return int(items[0]), int(items[1])


def as_given(value: object) -> object:
    """A constructor argument as stored: lists become tuples, so a config read back from JSON
    (which has no tuples) rebuilds an identical layer."""
    return tuple(value) if isinstance(value, list) else value


def check_images(x: np.ndarray, owner: str) -> None:
    if x.ndim != 4:
        raise lamina.ShapeError(
            f"{owner} expects images laid out as (batch, channels, height, width), got shape "
            f"{x.shape} ({x.ndim} dimensions); reshape flat rows with e.g. x.reshape(-1, 1, 8, 8) "
            "or a Reshape layer"
        )


def windows_out(size: int, window: int, stride: int, owner: str, axis: str) -> int:
    """How many windows of `window` fit in `size` at `stride`; a ShapeError when none does."""
    if size < window:
        raise lamina.ShapeError(
            f"{owner}: the {axis} of the (padded) input is {size}, smaller than the window of "
            f"{window}; use a smaller kernel or pool, more padding, or larger inputs"
        )
    return (size - window) // stride + 1


# -- convolution working memory ------------------------------------------------------------------

# The im2col rows of this many bytes are gathered and multiplied at a time: a block this size stays
# in the CPU's caches between the copy that fills it and the matrix product that reads it, where
# the whole batch's windows (tens of MB) would go out to memory and back. 8 MB rather than 2: a
# thread's share of a first layer's windows then fits one chunk, gathered once for forward and
# backward (Conv1D step 5.0 -> 4.3 ms on two threads; the CNN step the same).
CHUNK_BYTES = 1 << 23


def batch_chunks(n: int, item_bytes: int, parts: int = 1) -> list[slice]:
    """Slices of the batch axis (0..n), each holding about CHUNK_BYTES when one sample takes
    `item_bytes` (at least one sample a chunk; one empty chunk for an empty batch), of near-equal
    sizes and, when the work is worth splitting (lamina.parallel.splits), a multiple of
    `parts` of them where the batch allows, so that `parts` threads share it evenly."""
    if not lamina.parallel.splits(n * item_bytes):
        parts = 1
    count = max(-(-n * max(1, item_bytes) // CHUNK_BYTES), min(parts, n), 1)
    count = -(-count // parts) * parts if count > parts else count  # a multiple of the threads
    count = min(count, max(n, 1))
    bounds = [n * k // count for k in range(count + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(count)]


def scratch(layer: lamina.Layer, name: str, shape: tuple[int, ...], dtype: np.dtype,
            worker: int = 0) -> tuple[np.ndarray, bool]:
    """(the layer's working array `name` of `shape` and `dtype` for thread `worker`, whether it
    was just made), kept on the layer between steps: a fresh large array costs the kernel's page
    faults on every step, a kept one nothing. It is made (uninitialised) when missing or of
    another shape or dtype; `name` (a dict of the threads' arrays) belongs in the layer's
    `keeps`, so that release() frees it."""
    kept = vars(layer).get(name)
    if not isinstance(kept, dict):
        kept = {}
        setattr(layer, name, kept)
    found = kept.get(worker)
    if isinstance(found, np.ndarray) and found.shape == shape and found.dtype == dtype:
        return found, False
    made = kept[worker] = np.empty(shape, dtype=dtype)
    return made, True


# -- max pooling over windows, any number of spatial axes ---------------------------------------


def _at(window: tuple[slice, ...]) -> Any:
    """The index of one window position: its slices of the trailing axes."""
    return (Ellipsis, *window)


def max_windows(x: np.ndarray, windows: Sequence[tuple[slice, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """(the max over the windows, which window position won) for `windows`, the slices of the
    trailing axes that pick window position k of every output; the first maximum wins ties.
    Parts of the batch go to lamina's threads."""
    # order="K" keeps x's memory layout (a convolution's output is channel-major), so that the
    # element-wise passes below run over matching strides.
    out = np.empty_like(x[_at(windows[0])], order="K")
    winner = np.empty_like(out, dtype=np.min_scalar_type(len(windows) - 1))

    def rows(part: Sequence[int], worker: int) -> None:
        batch = slice(part[0], part[-1] + 1)
        mine, won = out[batch], winner[batch]
        mine[...] = x[batch][_at(windows[0])]
        won[...] = 0
        for k, window in enumerate(windows[1:], start=1):
            candidate = x[batch][_at(window)]
            # Positions come in increasing k, so the winner is the last k that was strictly
            # greater than the max so far (ties stay with the first): a running max of k * beat.
            beat = np.multiply(candidate > mine, k, dtype=won.dtype)
            np.maximum(won, beat, out=won)
            np.maximum(mine, candidate, out=mine)

    if len(x):
        lamina.parallel.split(range(len(x)), rows, work=x.nbytes)
    return out, winner


def max_windows_backward(
    x_like: np.ndarray, winner: np.ndarray, windows: Sequence[tuple[slice, ...]], grad: np.ndarray, overlapping: bool,
    tiles: bool = False,
) -> np.ndarray:
    """dL/dx of `max_windows`: each output's gradient goes to the position that won its window.
    `tiles`: the windows cover every input position exactly once (stride = pool size, which
    divides the input), so that every position of dL/dx is written and none needs zeroing."""
    # empty_like/zeros_like keep the input's memory layout, so the gradient flows on without a
    # copy; a gradient in another layout (from Flatten) is first copied into the output's, since
    # element-wise passes over mismatched strides are several times slower.
    dx = np.empty_like(x_like, dtype=grad.dtype)
    relaid = grad.strides != tuple(stride // winner.itemsize * grad.itemsize for stride in winner.strides)

    def rows(part: Sequence[int], worker: int) -> None:
        batch = slice(part[0], part[-1] + 1)
        into, won, given = dx[batch], winner[batch], grad[batch]
        if not tiles or overlapping:
            into[...] = 0
        if relaid:
            laid_out = np.empty_like(won, dtype=given.dtype)
            laid_out[...] = given
            given = laid_out
        for k, window in enumerate(windows):
            hit = won == k
            if overlapping:
                into[_at(window)] += given * hit
            else:  # each input position is in one window: write the product in place
                np.multiply(given, hit, out=into[_at(window)])

    if len(dx):
        lamina.parallel.split(range(len(dx)), rows, work=dx.nbytes)
    return dx


# -- ONNX export, any number of spatial axes -------------------------------------------------


def conv_to_onnx(
    graph: Graph, x: str, weight: lamina.Parameter | None, bias: lamina.Parameter | None,
    strides: Sequence[int], dilations: Sequence[int], pads: Sequence[tuple[int, int]],
) -> str:
    """An ONNX Conv of x (batch, channels, *spatial): lamina's weight layout (filters, channels,
    *kernel) is ONNX's; `pads` holds one (before, after) pair per spatial axis."""
    if weight is None or bias is None:
        raise lamina.LaminaError(f"ONNX export of {graph.scope}: the layer has no weights yet; "
                                 "call it on an input first")
    befores, afters = zip(*pads)
    return graph.op("Conv", x, graph.parameter(weight, "weight"), graph.parameter(bias, "bias"),
                    strides=list(strides), dilations=list(dilations), pads=[*befores, *afters])
