"""Loss: the protocol every loss plugin implements."""
from __future__ import annotations

import numpy as np

from lamina import autodiff
from lamina.autodiff import Tape, Traced
from lamina.checks import as_numeric
from lamina.protocols.configurable import Configurable


class Loss(Configurable):
    """Base class of losses: `loss(pred, y) -> float`, then `loss.backward() -> dL/dpred`.

    `backward` returns the gradient of exactly the value the last call returned, with the
    shape and dtype of `pred`. Subclasses implement `forward(pred, y)`; `backward()` is
    optional: a loss without one gets it derived from `forward` by `lamina.autodiff` (each
    call outside model inference records the forward), so `forward` must compute in numpy and
    return the scalar itself, not a `float(...)` of it.

    >>> class MeanAbs(Loss):
    ...     def forward(self, pred, y): return np.abs(pred - y).mean()
    """

    _autodiff: bool = False  # no hand-written backward: lamina derives it from forward

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._autodiff = cls.backward is Loss.backward

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        if not self._autodiff:
            return self.forward(pred, y)
        if not autodiff.recording.get():  # evaluation records nothing
            return float(self.forward(pred, y))
        previous = self.__dict__.get("_tape")
        if previous is not None:
            previous.close()
        tape = Tape()
        leaf = tape.leaf(np.asarray(pred))
        token = autodiff.current.set(tape)
        try:
            out = self.forward(leaf, y)  # type: ignore[arg-type]
        finally:
            autodiff.current.reset(token)
        self._tape, self._out, self._leaf = tape, out, leaf
        return float(out.value) if isinstance(out, Traced) else float(out)

    def forward(self, pred: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(pred, y)")

    def backward(self) -> np.ndarray:
        """dL/dpred of the last call; derived from forward for a loss that does not write it."""
        if not self._autodiff:
            raise NotImplementedError(f"{type(self).__name__} must implement backward()")
        out, leaf = self._out, self._leaf
        if not isinstance(out, Traced):
            return np.zeros_like(leaf.value)
        found = self._tape.backward(out, np.ones((), dtype=leaf.value.dtype)).get(leaf)
        return np.zeros_like(leaf.value) if found is None else found

    def release(self) -> None:
        """Drop what the last call kept for backward (a forward-only loss's recorded graph)."""
        tape = self.__dict__.pop("_tape", None)
        if tape is not None:
            tape.close()
        for name in ("_out", "_leaf"):
            self.__dict__.pop(name, None)

    def fuses_with(self, layer: object) -> bool:
        """True when `fused_backward` can replace this loss's and `layer`'s backward together.

        The model asks this of its last layer; e.g. CrossEntropy after Softmax returns the
        gradient with respect to the softmax's input, (p - y) / n, in one stable step.
        """
        return False

    def fused_backward(self) -> np.ndarray:
        """dL/d(input of the fused layer); only called when `fuses_with` returned True."""
        raise NotImplementedError(f"{type(self).__name__} fuses with no layer")

    def prepare_target(self, y: object, dtype: np.dtype) -> np.ndarray:
        """Convert targets once before training (not per step); by default to `dtype`.

        Losses that take integer labels override this to keep them as integers.
        """
        return as_numeric(y, "y", type(self).__name__).astype(dtype, copy=False)

