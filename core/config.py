"""Constructor configs: how layers, losses and optimizers describe the arguments that rebuild them."""
from __future__ import annotations

import inspect
from typing import Any


def constructor_config(obj: object) -> dict[str, Any]:
    """The constructor arguments of `obj`, read back from attributes of the same names.

    This is the scikit-learn convention: `Linear(units=8)` stores `self.units`.
    Arguments without a matching attribute are left out.
    """
    signature = inspect.signature(type(obj).__init__)
    config = {}
    for name, param in list(signature.parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if hasattr(obj, name):
            config[name] = getattr(obj, name)
    return config


def config_repr(obj: object, config: dict[str, Any]) -> str:
    """`Linear(units=8)`: the class name and its config."""
    args = ", ".join(f"{key}={value!r}" for key, value in config.items())
    return f"{type(obj).__name__}({args})"
