"""History: what `model.train` returns, one value per epoch for each logged quantity."""
from __future__ import annotations

from collections.abc import Iterator
from typing import overload


class History:
    """Per-epoch values by name: `history["loss"]`, `history["val_accuracy"]`, ...

    As a sequence it is the training loss per epoch, as the blog post's `train` returned:
    `history[-1]` is the last epoch's loss and `len(history)` the number of epochs run.
    `history.history` is the plain dict (Keras' name for it), `history.epoch` the epoch numbers.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    @classmethod
    def from_dict(cls, history: dict[str, list[float]]) -> History:
        """A History holding the given per-epoch values (e.g. a checkpoint's), epochs 0..n-1."""
        made = cls()
        made.history = {key: [float(v) for v in values] for key, values in history.items()}
        made.epoch = list(range(max((len(v) for v in made.history.values()), default=0)))
        return made

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            # A key that appears late (e.g. from a callback) is padded so lists stay aligned.
            self.history.setdefault(key, [float("nan")] * (len(self.epoch) - 1)).append(float(value))

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
        if isinstance(other, History):
            return self.history == other.history
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self)}, {last})"
