"""History: what `model.train` returns, one value per epoch for each logged quantity, and
RecordHistory, the callback every training run gets that fills it."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import overload

from lamina.protocols.callback import Callback

NAN = float("nan")


class History:
    """Per-epoch values by name: `history["loss"]`, `history["val_accuracy"]`, ...

    As a sequence it is the training loss per epoch, as the blog post's `train` returned:
    `history[-1]` is the last epoch's loss and `len(history)` the number of epochs run.
    `history.history` is the plain dict (Keras' name for it), `history.epoch` the epoch numbers.

    Every key has one value per epoch: a key missing from an epoch's logs (a callback that logs
    only now and then, or starts late) holds NaN for that epoch.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    @classmethod
    def from_dict(cls, history: dict[str, list[float]], epochs: int | None = None) -> History:
        """A History holding the given per-epoch values (e.g. a checkpoint's), epochs 0..n-1.

        n is `epochs`, or the longest list; a shorter list (a key its writer stopped logging,
        in a file from before every key was padded) gets NaN for the epochs it lacks at its end,
        and a longer one loses the values past epoch n (no epoch they could belong to was run).
        """
        made = cls()
        made.history = {key: [float(v) for v in values] for key, values in history.items()}
        count = max((len(v) for v in made.history.values()), default=0) if epochs is None else epochs
        for values in made.history.values():
            del values[count:]
            values.extend([NAN] * (count - len(values)))
        made.epoch = list(range(count))
        return made

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        """Add one epoch's logs; keys it lacks get NaN, and a new key NaN for the epochs before."""
        done = len(self.epoch)
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, [NAN] * done).append(float(value))
        for values in self.history.values():
            if len(values) == done:  # not in this epoch's logs
                values.append(NAN)

    def to_json(self) -> dict[str, list[float | None]]:
        """The per-epoch values as strict JSON data: NaN (an epoch a key was not logged) as None
        (null), since JSON has no NaN; infinities too (a logged value may be one)."""
        return {key: [v if math.isfinite(v) else None for v in values] for key, values in self.history.items()}

    @overload
    def __getitem__(self, key: str) -> list[float]: ...
    @overload
    def __getitem__(self, key: int) -> float: ...
    @overload
    def __getitem__(self, key: slice) -> list[float]: ...

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self.history[key]
            except KeyError:
                raise KeyError(
                    f"History has no {key!r}; it has {', '.join(map(repr, self.history)) or 'nothing yet'}"
                ) from None
        return self.history.get("loss", [])[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def __iter__(self) -> Iterator[float]:
        return iter(self.history.get("loss", []))

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def keys(self):
        return self.history.keys()

    def values(self):
        return self.history.values()

    def items(self):
        return self.history.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):  # NaN (an epoch without the key) equals NaN here
            return self.history.keys() == other.history.keys() and all(
                len(mine) == len(theirs) and all(a == b or (a != a and b != b) for a, b in zip(mine, theirs))
                for mine, theirs in ((self.history[k], other.history[k]) for k in self.history)
            )
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self)}, {last})"


class RecordHistory(Callback):
    """Appends each epoch's logs to `history`, after every other callback has added its own."""

    def __init__(self, history: History) -> None:
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.history.record(epoch, logs)
