"""Constructor configs: how layers, losses and optimizers describe the arguments that rebuild them."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
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
    """`Linear(units=8)`: the class name and the arguments that differ from their defaults."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(type(obj).__init__).parameters
    except (TypeError, ValueError):
        params = {}
    shown = []
    for key, value in config.items():
        default = params[key].default if key in params else inspect.Parameter.empty
        try:
            if default is not inspect.Parameter.empty and bool(default == value):
                continue
        except (TypeError, ValueError):  # arrays and other values without a plain ==
            pass
        shown.append(f"{key}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


class Configurable:
    """`get_config()` and a repr from the constructor arguments, for every kind of plugin.

    Subclasses store each constructor argument under an attribute of the same name, or
    override `get_config()`; either way `type(obj)(**obj.get_config())` rebuilds the object.
    """

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this object."""
        return constructor_config(self)

    def __repr__(self) -> str:
        return config_repr(self, self.get_config())
