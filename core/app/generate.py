"""`lamina.app.generate`: sample text from a character language model, one character at a time."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from lamina.checks import non_negative_int, non_negative_number
from lamina.errors import ArgumentError

if TYPE_CHECKING:
    from lamina.model import Model


def vocabulary_of(model: Model, owner: str = "lamina.app.generate") -> str:
    """The characters the model's ids stand for (id = position), from `model.metadata`."""
    vocabulary = model.metadata.get("vocabulary")
    if isinstance(vocabulary, str) and vocabulary and not _sound(vocabulary):
        raise ArgumentError(
            f"{owner}: the model's vocabulary (model.metadata['vocabulary']) repeats a character or holds one "
            "that is not valid text; the file is corrupted, or the metadata was set by hand: set it from the "
            "dataset (model.metadata.update(data.metadata))"
        )
    if not isinstance(vocabulary, str) or not vocabulary:
        raise ArgumentError(
            f"{owner}: the model has no vocabulary in model.metadata['vocabulary'], so its ids mean no "
            "characters; train it on a text dataset (lamina train with [dataset] name = \"text\" or "
            "\"moby_dick\"), or set model.metadata.update(data.metadata) from lamina.dataset(...)"
        )
    return vocabulary


def _sound(vocabulary: str) -> bool:
    """Distinct characters that can be printed (no lone surrogates)."""
    try:
        vocabulary.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(set(vocabulary)) == len(vocabulary)


def encode(text: str, vocabulary: str, owner: str = "lamina.app.generate") -> np.ndarray:
    """Character ids of `text`; a character outside the vocabulary is an ArgumentError naming it."""
    lookup = {char: i for i, char in enumerate(vocabulary)}
    unknown = sorted({char for char in text if char not in lookup})
    if unknown:
        raise ArgumentError(
            f"{owner}: the prompt has characters the model never saw ({', '.join(map(repr, unknown[:10]))}); "
            "use only characters of its training text"
        )
    return np.array([lookup[char] for char in text], dtype=np.int64)


def generate(
    model: Model, prompt: str = "", length: int = 200, temperature: float = 1.0, seed: int | None = None
) -> str:
    """`prompt` followed by `length` characters sampled from `model`, a character language model
    trained on a text dataset (its vocabulary is in `model.metadata`): ids (batch, time) ->
    next-character scores (batch, time, vocabulary), logits, or probabilities when it was
    trained with CrossEntropy(from_logits=False).

    Each character is drawn from softmax(scores / temperature) at the last position of the
    last `seq_len` characters (the training window); temperature 0 takes the likeliest. `seed`
    makes the sample repeatable; sampling never draws from lamina's generator.
    """
    owner = "lamina.app.generate"
    vocabulary = vocabulary_of(model, owner)
    length = non_negative_int(length, "length", owner, example=200)
    temperature = non_negative_number(temperature, "temperature", owner, example=0.8)
    if not isinstance(prompt, str):
        raise ArgumentError(f"{owner}(prompt={prompt!r}): the prompt must be a string")
    window = _window(model)
    draws = np.random.default_rng(seed)
    ids = [int(i) for i in encode(prompt, vocabulary, owner)]
    start, steps = len(ids), length
    if not ids and length:  # no prompt: the first character is drawn uniformly, and counts
        ids, steps = [int(draws.integers(len(vocabulary)))], length - 1
    # What the scores are: the loss it was trained with says (CrossEntropy(from_logits=...));
    # without one, scores that are non-negative and sum to 1 are taken as probabilities.
    from_logits = getattr(model.loss, "from_logits", None)
    for _ in range(steps):
        last = _next_scores(model, ids[-window:], window, len(vocabulary), owner)
        if not np.isfinite(last).all():
            raise ArgumentError(
                f"{owner}: the model gives scores that are not finite (NaN or infinity) for the context "
                f"{''.join(vocabulary[i] for i in ids[-window:])!r}; its weights diverged or the file is corrupted: "
                "retrain it (a lower learning rate, clip_grad_norm)"
            )
        probabilities = (not from_logits) if isinstance(from_logits, bool) else bool(
            last.min() >= 0 and math.isclose(float(last.sum()), 1.0, rel_tol=1e-4))
        ids.append(_draw(last, probabilities, temperature, draws))
    return prompt + "".join(vocabulary[i] for i in ids[start:])


def _next_scores(model: Model, context: list[int], window: int, size: int, owner: str) -> np.ndarray:
    """The model's scores for the character after `context`. A graph model's Input has a fixed
    length: a shorter context is padded after its end, which the scores at its last position
    never read in a causal model (a language model's)."""
    padded = context + [0] * (window - len(context)) if model.graph is not None else context
    row = np.array(padded, dtype=np.int64)[None]
    scores = np.asarray(model.predict(row), dtype=np.float64)
    if scores.ndim != 3 or scores.shape[1:] != (row.shape[1], size):
        raise ArgumentError(
            f"{owner}: the model maps (1, {row.shape[1]}) ids to shape {scores.shape}, not to scores over its "
            f"{size} characters per position (1, {row.shape[1]}, {size})"
        )
    return scores[0, len(context) - 1]


def _window(model: Model) -> int:
    if model.graph is not None and model.input_shape:  # its Input's length, whatever it was trained on
        return int(model.input_shape[0])
    seq_len: Any = model.metadata.get("seq_len")
    if isinstance(seq_len, int) and not isinstance(seq_len, bool) and seq_len > 0:
        return seq_len
    if model.input_shape:
        return int(model.input_shape[0])
    return 64


def _draw(scores: np.ndarray, probabilities: bool, temperature: float, draws: np.random.Generator) -> int:
    """One id from logits, or from probabilities (a model ending in Softmax)."""
    logits = np.log(np.maximum(scores, 1e-30)) if probabilities else scores
    if temperature == 0:
        return int(np.argmax(logits))
    logits = (logits - logits.max()) / temperature
    weights = np.exp(logits)
    return int(draws.choice(len(weights), p=weights / weights.sum()))
