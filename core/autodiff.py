"""Automatic differentiation of plain numpy code, for layers and losses without a backward.

Inside a traced forward, the input is a `Traced` array: numpy's operators, ufuncs and
functions see it through the `__array_ufunc__` / `__array_function__` protocols and look up
their row in the table of primitives (lamina/trace/primitives.py), which computes the value on
the plain arrays and records one node with its vector-Jacobian product. `Tape.backward` then
runs them in reverse. What has no rule, or would drop the trace (np.asarray, in-place writes),
raises a LaminaError instead of a wrong gradient. `SUPPORTED`: what is covered, for training
and for ONNX export (name -> (training, export)).
"""
from __future__ import annotations

from lamina import ops  # noqa: F401  (its rows join the table before SUPPORTED is read)
from lamina.trace import current, families, no_recording, recording, tracing  # noqa: F401  (families: its rows join the table)
from lamina.trace.primitives import Operand, supported, unbroadcast
from lamina.trace.tape import WAYS_OUT, Tape, Traced

__all__ = ["SUPPORTED", "WAYS_OUT", "Operand", "Tape", "Traced", "active_tape", "current", "no_recording", "recording",
           "tracing", "unbroadcast"]

SUPPORTED = supported()


active_tape = current.get  # the tape being recorded into, if any
