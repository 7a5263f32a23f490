"""The trace wing: the table of primitives (`primitives.py`) and the two tracers that read it,
autodiff (`tape.py`) and ONNX export (`lamina.export.symbolic`). Both see numpy code through
stand-in arrays; a Parameter becomes the active trace's leaf. This module keeps which trace is active.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

# The trace being recorded into, if any: Layer, Loss and the exporter set it around a traced forward.
current: contextvars.ContextVar[Any] = contextvars.ContextVar("lamina_tape", default=None)
# False inside `no_recording()`: model inference (predict, evaluate, validation) records nothing.
recording: contextvars.ContextVar[bool] = contextvars.ContextVar("lamina_recording", default=True)


@contextlib.contextmanager
def _setting(variable: contextvars.ContextVar[Any], value: Any) -> Iterator[Any]:
    token = variable.set(value)
    try:
        yield value
    finally:
        variable.reset(token)


def tracing(trace: Any) -> contextlib.AbstractContextManager[Any]:
    """Record into `trace` inside the block: Parameters used in numpy operations become its leaves."""
    return _setting(current, trace)


def no_recording() -> contextlib.AbstractContextManager[Any]:
    """Forward-only layers and losses record nothing inside the block (inference)."""
    return _setting(recording, False)
