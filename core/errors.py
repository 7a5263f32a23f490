"""lamina's public error types; every one derives from LaminaError."""
from __future__ import annotations

import sys
import warnings
from types import FrameType


class LaminaError(Exception):
    """Base class of every error lamina raises on purpose."""


class ArgumentError(LaminaError, ValueError, TypeError):
    """A bad argument: wrong type or out of range (e.g. `Linear(units=0)`).

    It is both a ValueError and a TypeError, so callers may catch either.
    """


class ShapeError(LaminaError, ValueError):
    """An array whose shape does not fit: the message names the object and both shapes."""


class NonFiniteError(LaminaError, FloatingPointError):
    """Training produced NaN or infinity; the message names the epoch, the batch and the layer."""


class FileFormatError(LaminaError, ValueError):
    """A file that is not a lamina model file, or is truncated or corrupted; the message says which."""


class ConfigError(LaminaError, ValueError):
    """A bad `lamina train` config: the message names the file, the key and the problem."""


class PluginError(LaminaError):
    """A plugin that cannot be loaded or that registers something invalid."""


class UnknownPluginError(LaminaError, LookupError):
    """A name that no installed plugin registered; the message suggests close matches."""


class AmbiguousPluginError(LaminaError, LookupError):
    """A name registered by more than one package; pick one with 'package:Name'."""


class MissingPluginError(LaminaError, LookupError):
    """A model file needs a plugin that is not installed; the message says what to install."""


class PluginWarning(UserWarning):
    """An installed plugin failed to load (lamina stays usable), or a model file was written
    with a newer version of a plugin than the one installed."""


def warn(message: str, category: type[Warning] = PluginWarning) -> None:
    """Warn, pointing at the first caller outside lamina (the user's line, not lamina's own).

    Python 3.12's `skip_file_prefixes` does this by path; module names also cover
    lamina.plugins wherever it is installed.
    """
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _inside_lamina(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)


def _inside_lamina(module: str) -> bool:
    return module == "lamina" or module.startswith("lamina.")
