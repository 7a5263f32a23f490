"""State dicts: a model's parameters and buffers as named arrays, in lamina's layout or PyTorch's
(`Model.state_dict`), and loaded back into the model's own arrays in place (`Model.load_state_dict`).

lamina's names are the model's: "0.weight", "2.layers.1.bias", "3.running_mean". PyTorch's are
those of the equivalent torch.nn modules in an nn.Sequential at the same positions; each layer
converts its own entries (`Layer.to_torch` / `Layer.from_torch`), a layer made of layers after
its sublayers have converted theirs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from attrs import define, field

from lamina.checks import boolean, describe, one_of, printable
from lamina.errors import ArgumentError, LaminaError, NonFiniteError, ShapeError
from lamina.protocols.layer import Layer, named_buffers, named_parameters
from lamina.protocols.trainable import Trainable

LAYOUTS = ("lamina", "torch")
Shape = tuple[int, ...]


@define(frozen=True)
class LoadReport:
    """What `Model.load_state_dict` found, as PyTorch's `_IncompatibleKeys` plus the shapes.

    Names are in the layout loaded: `missing` the model has and the state lacked, `unexpected`
    the state had and the model has not, `mismatched` both have in different shapes;
    `mismatched_shapes[name]` is (the model's shape, the state's shape). `ok` is True when all
    three are empty. Only what is in none of them was loaded.
    """

    missing: list[str] = field(factory=list)
    unexpected: list[str] = field(factory=list)
    mismatched: list[str] = field(factory=list)
    mismatched_shapes: dict[str, tuple[Shape, Shape]] = field(factory=dict)

    @property
    def ok(self) -> bool:
        """True when every name matched, with its shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """The problems in words, one kind a line (empty when `ok`)."""
        lines = []
        if self.missing:
            lines.append(f"missing ({len(self.missing)}): {', '.join(map(repr, self.missing))}")
        if self.unexpected:
            lines.append(f"unexpected ({len(self.unexpected)}): {', '.join(map(repr, self.unexpected))}")
        if self.mismatched:
            shapes = (f"{name!r} (the model's {self.mismatched_shapes[name][0]}, the state's "
                      f"{self.mismatched_shapes[name][1]})" for name in self.mismatched)
            lines.append(f"mismatched ({len(self.mismatched)}): {', '.join(shapes)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        if self.ok:
            return "LoadReport(all names and shapes matched)"
        return (f"LoadReport(missing={self.missing!r}, unexpected={self.unexpected!r}, "
                f"mismatched={self.mismatched!r}, mismatched_shapes={self.mismatched_shapes!r})")


# -- writing ------------------------------------------------------------------------------------


def state_dict(model: Trainable, layout: str) -> dict[str, np.ndarray]:
    """`Model.state_dict`: copies of the parameters and buffers, by name, in `layout`."""
    layout = checked(model, layout, "state_dict")
    if layout == "lamina":  # layer by layer, as torch orders them
        arrays = {f"{i}.{name}": array for i, layer in enumerate(model.layers)
                  for name, array in _own_state(layer).items()}
    else:
        arrays, _ = torch_state(model.layers)
    return {name: np.array(array, order="C") for name, array in arrays.items()}  # copies, contiguous


def torch_state(layers: Sequence[Layer]) -> tuple[dict[str, np.ndarray], set[str]]:
    """The layers' state in PyTorch's layout (not copied), and the names loading ignores."""
    state: dict[str, np.ndarray] = {}
    ignored: set[str] = set()
    for i, layer in enumerate(layers):
        converted, skipped = _to_torch(layer, _own_state(layer), str(i))
        state.update({f"{i}.{name}": array for name, array in converted.items()})
        ignored.update(f"{i}.{name}" for name in skipped)
    return state, ignored


def _own_state(layer: Layer) -> dict[str, np.ndarray]:
    state = {name: param.value for name, param in layer.parameters().items()}
    state.update(layer.buffers())
    return state


def _to_torch(layer: Layer, state: dict[str, np.ndarray], where: str) -> tuple[dict[str, np.ndarray], set[str]]:
    """`layer`'s `state` (lamina names, relative to it) in torch's layout, its sublayers' first;
    and the torch names in it that loading ignores."""
    if not state:  # no parameters, no buffers: no place in the dict, as in torch
        return {}, set()
    own, parts = _split(layer, state)
    ready = dict(own)
    ignored_inside: list[np.ndarray] = []
    for name, (sublayer, entries) in parts.items():
        converted, skipped = _to_torch(sublayer, entries, f"{where}.{name}")
        ready.update({f"{name}.{key}": array for key, array in converted.items()})
        ignored_inside.extend(converted[key] for key in skipped)
    _require_hook(layer, where)
    out = _entries(layer.to_torch(ready), layer, where, "to_torch")
    # A sublayer's ignored entry keeps its array through this layer's renames: found by identity.
    inside = {id(array) for array in ignored_inside}
    return out, {key for key, array in out.items() if key in type(layer).torch_ignored or id(array) in inside}


def _from_torch(layer: Layer, state: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The reverse of `_to_torch`: `layer`'s torch-named entries by lamina name, relative to it."""
    if not state:
        return {}
    _require_hook(layer, where)
    own, parts = _split(layer, _entries(layer.from_torch(dict(state)), layer, where, "from_torch"))
    out = dict(own)
    for name, (sublayer, entries) in parts.items():
        out.update({f"{name}.{key}": array for key, array in _from_torch(sublayer, entries, f"{where}.{name}").items()})
    return out


def _split(layer: Layer, state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The layer's own entries, and its sublayers' by sublayer name (their names relative to it)."""
    sublayers = layer.sublayers()
    # the longest name first: "layers.10." is not "layers.1."
    names = sorted(sublayers, key=len, reverse=True)
    own: dict[str, np.ndarray] = {}
    parts: dict[str, Any] = {}
    for key, array in state.items():
        name = next((n for n in names if key.startswith(n + ".")), None)
        if name is None:
            own[key] = array
        else:
            parts.setdefault(name, (sublayers[name], {}))[1][key[len(name) + 1:]] = array
    return own, parts


def has_torch_layout(layer: Layer) -> bool:
    """True when the layer's class declares its PyTorch layout (`torch_layout`, or `to_torch`)."""
    return type(layer).torch_layout is not False or type(layer).to_torch is not Layer.to_torch


def _require_hook(layer: Layer, where: str) -> None:
    if not has_torch_layout(layer):
        name = type(layer).__name__
        raise ArgumentError(
            f"layout='torch': {printable(repr(layer), 80)}, the layer whose entries are named '{where}.*', has "
            "parameters or buffers but no "
            f"PyTorch layout: its class {name} declares none. Give {name} the class attribute `torch_layout = True` "
            "when its parameter names and shapes are those of the equivalent torch.nn module, a dict of renames "
            "({'lamina name': 'torch name'}), or methods to_torch(state) and from_torch(state) "
            "(help(lamina.Layer.to_torch)); or use layout='lamina'"
        )


def _entries(out: object, layer: Layer, where: str, hook: str) -> dict[str, np.ndarray]:
    if not isinstance(out, Mapping) or not all(isinstance(key, str) for key in out):
        raise LaminaError(
            f"{type(layer).__name__}.{hook} (the layer at {where}) returned {describe(out)}; it must return a dict "
            "of str names to arrays"
        )
    return {key: np.asarray(array) for key, array in out.items()}


# -- loading ------------------------------------------------------------------------------------


def load_state_dict(model: Trainable, state: object, strict: bool, layout: str) -> LoadReport:
    """`Model.load_state_dict`: check everything, then copy what fits into the model's arrays."""
    layout = checked(model, layout, "load_state_dict")
    strict = boolean(strict, "strict", "Model.load_state_dict")
    given = _given(state)
    targets = {name: param.value for name, param in named_parameters(model.layers).items()}
    targets.update(named_buffers(model.layers))
    ignored: set[str] = set()
    if layout == "lamina":
        expected = {name: array.shape for name, array in targets.items()}
    else:
        torch_arrays, ignored = torch_state(model.layers)
        expected = {name: array.shape for name, array in torch_arrays.items()}
    report = _compare(expected, given, ignored)
    if strict and not report.ok:
        raise ShapeError(
            f"Model.load_state_dict(strict=True, layout={layout!r}): the state does not fit the model, so nothing "
            f"was loaded:\n{report.describe()}\n{_hint(report, layout)}"
        )
    bad = set(report.mismatched) | ignored
    fitting = {name: _numeric(name, given[name]) for name in given if name in expected and name not in bad}
    if layout == "torch":
        fitting = _from_torch_model(model.layers, fitting)
    values = {name: _cast(name, array, targets, layout) for name, array in fitting.items()}
    for name, array in values.items():  # in place: Parameters, optimizer state and views stay valid
        targets[name][...] = array
    return report


def checked(model: Trainable, layout: str, method: str) -> str:
    """`layout`, checked for `Model.<method>`, on a model that must be built (else a LaminaError)."""
    layout = one_of(layout, "layout", f"Model.{method}", LAYOUTS)
    if model.input_shape is None and getattr(model, "graph", None) is None:  # a graph is built when made
        raise LaminaError(
            f"Model.{method}: the model is not built yet (its layers make their parameters on their first input); "
            "build it first with model.build(x) on a few rows of input (or predict or train once), then call "
            f"{method} again"
        )
    return layout


def _given(state: object) -> dict[str, Any]:
    if not isinstance(state, Mapping):
        raise ArgumentError(
            f"Model.load_state_dict(state={printable(describe(state), 80)}): state must be a dict of names to arrays, "
            "e.g. model.state_dict() or {name: tensor.numpy() for name, tensor in torch_model.state_dict().items()}"
        )
    given: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ArgumentError(f"Model.load_state_dict: the state's names must be str, got {describe(key)}")
        given[key] = value
    return given


def _shape(name: str, value: Any) -> Shape:
    shape = getattr(value, "shape", None)  # numpy and torch arrays: no conversion to know the shape
    try:
        return tuple(int(n) for n in (np.shape(value) if shape is None else shape))
    except (TypeError, ValueError) as err:  # a ragged list
        raise ArgumentError(f"Model.load_state_dict: the state's {name!r} is not an array ({err})") from None


def _compare(expected: dict[str, Shape], given: dict[str, Any], ignored: set[str]) -> LoadReport:
    missing = [name for name in expected if name not in given and name not in ignored]
    unexpected = [name for name in given if name not in expected]
    shapes = {name: (expected[name], _shape(name, given[name])) for name in given
              if name in expected and name not in ignored and _shape(name, given[name]) != expected[name]}
    return LoadReport(missing, unexpected, list(shapes), shapes)


def _hint(report: LoadReport, layout: str) -> str:
    fix = "Load with strict=False to load what fits and get this report (model.load_state_dict(state, strict=False))."
    transposed = any(len(ours) == 2 and theirs == ours[::-1] for ours, theirs in report.mismatched_shapes.values())
    torch_names = ("num_batches_tracked", "_l0", "_l0_reverse", "out_proj.weight", "self_attn.in_proj_weight")
    if layout == "lamina" and (transposed or any(name.endswith(torch_names) for name in report.unexpected)):
        fix += " The state looks like a PyTorch state dict: load it with layout='torch'."
    return fix


def _numeric(name: str, value: object) -> np.ndarray:
    """The array `value` holds, if numeric (bool, int, float; bfloat16 and float8 as float32)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as err:  # a bfloat16 torch tensor, a ragged list
        raise ArgumentError(
            f"Model.load_state_dict: the state's {name!r} is not an array numpy can read ({err}); pass numpy arrays "
            "(a torch tensor: tensor.float().numpy(), since numpy has no bfloat16)"
        ) from None
    if array.dtype.kind == "V" and array.dtype.name.startswith(("bfloat16", "float8")):  # ml_dtypes' floats
        return array.astype(np.float32)
    if array.dtype.kind not in "biuf":
        raise ArgumentError(
            f"Model.load_state_dict: the state's {name!r} has dtype {array.dtype}; weights must be numbers (bool, int "
            "or float)"
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise NonFiniteError(
            f"Model.load_state_dict: the state's {name!r} holds {np.count_nonzero(~np.isfinite(array))} NaN or "
            "infinite values, so nothing was loaded; weights must be finite numbers"
        )
    return array


def _from_torch_model(layers: Sequence[Layer], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Torch-named entries (each a name the model has in torch's layout) by lamina name."""
    per_layer: dict[int, dict[str, np.ndarray]] = {}
    for name, array in state.items():
        index, _, rest = name.partition(".")
        per_layer.setdefault(int(index), {})[rest] = array
    out: dict[str, np.ndarray] = {}
    for i, entries in per_layer.items():
        out.update({f"{i}.{key}": array for key, array in _from_torch(layers[i], entries, str(i)).items()})
    return out


def _cast(name: str, array: np.ndarray, targets: dict[str, np.ndarray], layout: str) -> np.ndarray:
    """`array` in the dtype of the model's array `name`, checked: the right shape, and finite there."""
    target = targets.get(name)
    if target is None or target.shape != array.shape:  # only a layer's from_torch can make these
        have = "which the model does not have" if target is None else f"where the model has shape {target.shape}"
        raise LaminaError(
            f"Model.load_state_dict(layout={layout!r}): converting the state gave {name!r} of shape {array.shape}, "
            f"{have}: the to_torch and from_torch of the layer at {name.partition('.')[0]} do not agree"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        cast = array.astype(target.dtype)
    if cast.dtype.kind == "f" and not np.all(np.isfinite(cast)):
        raise NonFiniteError(
            f"Model.load_state_dict: the value for the model's {name!r} goes beyond the range of its dtype "
            f"{target.dtype} (largest magnitude {np.max(np.abs(array))}), so nothing was loaded; scale the weights "
            "or use a model of a wider dtype"
        )
    return cast
