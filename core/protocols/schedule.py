"""Schedule: the protocol of learning-rate schedules, `schedule(step) -> lr`."""
from __future__ import annotations

from lamina.protocols.configurable import Configurable


class Schedule(Configurable):
    """Base class of learning-rate schedules: `schedule(step) -> lr`.

    `step` counts the optimizer's updates from 0. Any optimizer's `lr` takes a schedule in
    place of a number and asks it for the rate once per step. Subclasses implement `__call__`.
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

