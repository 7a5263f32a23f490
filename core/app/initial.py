"""`[init]` in a `lamina train` config: a run that starts from a weights file, not from scratch.

    [init]
    weights = "runs/pretrain/model.npz"   # a .safetensors or .npz weights file, or a lamina model file
    layout = "lamina"                     # or "torch": the names and shapes torch.nn uses
    strict = true                         # every weight the model has must be in the file, and fit
    exclude = ["6.*"]                     # names not to load (a head to train afresh)
    freeze = ["0.*", "2.*"]               # parameter names to freeze (glob patterns)

The table is checked when the config is read (`config.check_init`, before any data loads);
the weights are loaded once the model is built, before training starts. A resumed run takes
its weights and flags from its checkpoint instead.
"""
from __future__ import annotations

import fnmatch
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lamina.app.config import RunConfig
from lamina.errors import ConfigError, LaminaError
from lamina.files.weights import read_weights
from lamina.model import Model, load_model


def start_from_weights(config: RunConfig, model: Model, x: Any) -> list[str]:
    """Build the model on a row of `x`, load [init]'s weights into it and freeze what [init] names;
    returns lines that say what was loaded, for the run's output."""
    table = config.get("init")
    if table is None:
        return []
    path, layout = Path(table["weights"]), table.get("layout", "lamina")
    model.build(x)
    state = _weights(config, path, layout)
    excluded = [name for name in state if _matches(name, table.get("exclude", []))]
    _unused(config, "exclude", table.get("exclude", []), state)
    state = {name: value for name, value in state.items() if name not in excluded}
    try:
        report = model.load_state_dict(state, strict=False, layout=layout)
    except LaminaError as err:
        raise config.error("init.weights", f"{path}: {err}") from None
    missing = [name for name in report.missing if not _matches(name, table.get("exclude", []))]
    if table.get("strict", True) and (missing or report.unexpected or report.mismatched):
        raise config.error("init.weights", f"{path} does not fit the model: {report.describe()}; name what not "
                           "to load in init.exclude (e.g. a new head), or set init.strict = false to load what fits")
    frozen = _freeze(config, model, table.get("freeze", []))
    loaded = len(state) - len(report.unexpected) - len(report.mismatched)
    lines = [f"init: {loaded} of the model's {len(model.state_dict(layout=layout))} arrays from {path}"
             + (f" ({layout} layout)" if layout != "lamina" else "")]
    if excluded or report.missing:
        lines.append(f"  trained afresh: {', '.join(sorted(set(report.missing)))}")
    if report.unexpected or report.mismatched:
        lines.append(f"  not loaded: {report.describe()}")
    if frozen:
        lines.append(f"  frozen: {', '.join(frozen)}")
    return lines


def _weights(config: RunConfig, path: Path, layout: str) -> dict[str, np.ndarray]:
    """The arrays of a weights file, or of a lamina model file's weights and buffers."""
    if not path.is_file():
        raise config.error("init.weights", f"no file at {str(path)!r} (relative paths are from the current folder)")
    try:
        if _is_model_file(path):
            if layout != "lamina":
                raise ConfigError(f"{path} is a lamina model file: its weights have lamina's layout; drop init.layout")
            return load_model(path).state_dict()
        return read_weights(path)
    except LaminaError as err:
        raise config.error("init.weights", str(err)) from None


def _is_model_file(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _freeze(config: RunConfig, model: Model, patterns: list[str]) -> list[str]:
    """Freeze the parameters whose names match; a pattern that matches none is a ConfigError."""
    parameters = model.parameters()
    _unused(config, "freeze", patterns, parameters)
    frozen = [name for name in parameters if _matches(name, patterns)]
    for name in frozen:
        parameters[name].trainable = False
    return frozen


def _unused(config: RunConfig, key: str, patterns: list[str], names: Any) -> None:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            shown = ", ".join(list(names)[:12]) + (", ..." if len(names) > 12 else "")
            raise config.error(f"init.{key}", f"{pattern!r} matches no name; the names are: {shown}")


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
