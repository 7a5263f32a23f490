"""Layer: the protocol every layer plugin implements."""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from lamina import trace
from lamina.checks import boolean, printable
from lamina.errors import ArgumentError, LaminaError, ShapeError
from lamina.graph.symbolic import Symbol, record
from lamina.parameter import Parameter
from lamina.protocols.configurable import Configurable
from lamina.trace.primitives import Operand
from lamina.trace.tape import Tape, Traced


class Layer(Configurable):
    """Base class of layers: `forward(x) -> y`, `backward(grad) -> grad_x`, `layer(x)` calls forward.

    Subclasses need not call `super().__init__()`. A layer with parameters returns them from
    `parameters()`; `backward` receives dL/dy, *adds* dL/dparam into each `Parameter.grad`
    and returns dL/dx. `training` is set by the model: True while training, else False.
    State that is saved but not trained (BatchNorm's running statistics) comes from
    `buffers()`. A layer whose input is integer indices sets `integer_input = True`; the
    model then passes integers through, and its `backward` returns None.
    `needs_input_grad` is False while the layer is the first of a model in training: its
    input gradient is thrown away, so `backward` may skip computing it and return None.
    `keeps` names the attributes forward stores for backward (e.g. `("_x",)`); `release()`
    drops them after inference. `build(x)`, if a layer defines it, is called once by the base
    class before the first forward, with the first input: the place to create weights whose
    shape depends on the input. A ShapeError from `build` or the first forward leaves the layer
    as it was before, unbuilt. `parameters()` by default finds the Parameter attributes and
    those of sublayer attributes (a Layer, or a list or tuple of Layers) by name.

    `trainable = False` freezes the layer: its parameters and its sublayers' (recursively),
    including those it builds later; the input gradient still flows through it, so the layers
    before it may train. A hand-written `backward` skips the gradient of a parameter whose
    `trainable` is False (its `.grad` stays zero); a derived one does so by itself.

    A layer that learns something from the data before training (Normalization's mean and
    variance) defines `adapt(batches)` and an `adapted` property that is False until it has
    learned it. `Model.train` adapts each such layer at the top level of the model that is not
    adapted yet, once, before the first step (`Model.adapt(x)` does it on demand); calling a
    layer that is not adapted raises a LaminaError, except while a model is only being built
    (`building()`), when it must compute something of the right shape without its statistics.

    >>> class Double(Layer):
    ...     def forward(self, x): return 2 * x
    ...     def backward(self, grad): return 2 * grad
    """

    _training: bool = False
    integer_input: bool = False
    needs_input_grad: bool = True
    # True: forward and backward split the batch over lamina's threads (lamina.parallel.split);
    # Model.train, predict and evaluate then keep numpy's BLAS on one thread (parallel.owned).
    splits_batch: bool = False
    # What forward keeps for backward. None (a layer written before lamina 0.2 declared it):
    # release() then drops every underscore attribute that holds an array.
    keeps: tuple[str, ...] | None = None
    _built: bool = False  # True once build and the first forward have succeeded
    _trainable: bool = True  # False once `trainable = False` was set (kept for parameters built later)
    _autodiff: bool = False  # no hand-written backward: lamina derives it from forward

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._autodiff = cls.backward is Layer.backward
        if cls._autodiff and cls.keeps is None:
            cls.keeps = ("_tape", "_out", "_leaf")

    @property
    def training(self) -> bool:
        """True while training (the model sets it), else False; setting it sets the sublayers' too."""
        return self._training

    @training.setter
    def training(self, mode: bool) -> None:
        self._training = mode
        for _, layer in self._sublayers():
            layer.training = mode

    @property
    def trainable(self) -> bool:
        """False when frozen; setting it sets every parameter's `trainable` and the sublayers' (recursively)."""
        return self._trainable

    @trainable.setter
    def trainable(self, flag: bool) -> None:
        self._trainable = boolean(flag, "trainable", type(self).__name__)
        for param in self.parameters().values():
            param.trainable = self._trainable
        for _, layer in self._sublayers():
            layer.trainable = self._trainable

    def _freeze_built(self) -> None:
        """Parameters built after `trainable = False` was set on a layer take the flag."""
        for layer in self.walk():
            if not layer._trainable:
                layer.trainable = False

    @property
    def adapted(self) -> bool:
        """False while the layer has still to learn from data (see `adapt`); True for a layer that learns nothing."""
        return True

    def adapt(self, batches: Iterable[np.ndarray]) -> None:
        """Learn from data, afresh, before training: `batches` yields the layer's inputs a batch
        at a time (every training row once, in order, through the layers before it in inference
        mode), so that data read lazily is never loaded whole. Afterwards `adapted` is True and
        what was learned is in `buffers()`, so that it is saved with the model. A layer that
        learns nothing from data does not define it."""
        raise LaminaError(f"{type(self).__name__} learns nothing from data: it has no adapt step")

    def __call__(self, x: Any, **kwargs: Any) -> np.ndarray:  # an array; a list of them for a merge layer; or Symbols
        """`forward(x, **kwargs)`; keyword arguments choose how this call computes (Embedding's
        `reverse=True`), and a graph records them with the node. On symbolic values: a graph node."""
        if kwargs:
            self._check_call(kwargs)
        if type(x) is not np.ndarray and (isinstance(x, Symbol) or (type(x) in (list, tuple) and any(
                isinstance(item, Symbol) for item in x))):  # (an array, the common call, is never symbolic)
            return record(self, x, self._symbolic_build, kwargs)  # type: ignore[return-value]  # a node, not a value
        if not self.adapted and not _building.get():
            name = type(self).__name__
            raise LaminaError(
                f"{self!r} has not learned its statistics from data yet: train the model (train adapts it to the "
                f"training rows before the first step) or call model.adapt(x) first; or make the layer with its "
                f"statistics given, if it takes them (help({type(self).__module__}.{name}))"
            )
        if isinstance(x, Operand):  # inside another layer's traced forward (autodiff or export): one node
            if kwargs:
                raise LaminaError(
                    f"{type(self).__name__} was called with keyword arguments {sorted(kwargs)} inside another layer's "
                    "derived (forward-only) forward, which lamina cannot record yet; call it so in a graph model "
                    "(lamina.Model(inputs=..., outputs=...)) or from a layer with a hand-written backward"
                )
            out = x.trace.call_layer(self, x)  # type: ignore[attr-defined]  # Tape and the exporter define it
        elif not self._built:
            out = self._first_call(x, kwargs)
        else:
            out = self._run(x, kwargs)
        observer = _observer.get()
        if observer is not None:
            observer(self, out)
        return out

    def _check_call(self, kwargs: dict[str, Any]) -> None:
        """Keyword arguments that `forward` does not take are an ArgumentError naming them (checked
        once per class and set of names: a graph node calls with the same keywords every step)."""
        key = (type(self), frozenset(kwargs))
        if key in _CALLS_CHECKED:
            return
        try:
            inspect.signature(self.forward).bind(None, **kwargs)
            _CALLS_CHECKED.add(key)
        except TypeError:
            raise ArgumentError(
                f"{type(self).__name__} was called with the keyword arguments {sorted(kwargs)}, but its forward "
                f"takes {str(inspect.signature(self.forward))}; pass only the keywords its forward names"
            ) from None

    def _run(self, x: np.ndarray, kwargs: dict[str, Any] | None = None) -> np.ndarray:
        if not self._autodiff or not _recording.get():  # model inference records nothing
            if _tracing.get() is None:
                return self.forward(x, **kwargs) if kwargs else self.forward(x)
            kwargs = kwargs or {}
            token = _tracing.set(None)  # plain arrays here, even inside another layer's traced forward
            try:
                return self.forward(x, **kwargs)
            finally:
                _tracing.reset(token)
        previous = self.__dict__.get("_tape")
        if previous is not None:  # the last record is freed before this forward, which reuses its memory
            previous.close()
            for name in ("_tape", "_out", "_leaf"):
                self.__dict__.pop(name, None)
        tape = Tape()
        needed = self.needs_input_grad and not self.integer_input
        # a layer called on a list (in a graph) gets a list of leaves, and returns a list of gradients
        leaf: Any = ([tape.leaf(item, needed=needed) for item in x] if isinstance(x, (list, tuple))
                     else tape.leaf(x, needed=needed))
        token = _tracing.set(tape)
        try:
            out = self.forward(leaf, **kwargs) if kwargs else self.forward(leaf)
        finally:
            _tracing.reset(token)
        self._tape, self._out, self._leaf = tape, out, leaf
        return out.value if isinstance(out, Traced) else np.asarray(out)

    def _first_call(self, x: np.ndarray, kwargs: dict[str, Any] | None = None) -> np.ndarray:
        # A rejected first input leaves nothing behind, here or in a sublayer: no weights
        # built for its shape.
        before = [(layer, dict(vars(layer))) for layer in self.walk()]
        try:
            self.build(x)
            self._built = True
            self.training = self.training  # sublayers made by build take the layer's mode
            self._freeze_built()  # and its frozen flags; after forward, weights that forward built
            out = self._run(x, kwargs)
            self._freeze_built()
        except ShapeError:
            for layer, state in before:
                vars(layer).clear()
                vars(layer).update(state)
            raise
        return out

    def _symbolic_build(self, x: Any, **kwargs: Any) -> np.ndarray:
        """The output for `x` (zeros of one row) in inference, only to build the layer and learn
        the output's shape when it is called on symbolic values; it keeps nothing."""
        token = _recording.set(False)
        try:
            with building():
                return self(x, **kwargs)
        finally:
            _recording.reset(token)
            self.release()

    # -- one saved state per call, for a layer used at several places -----------------------

    def _save_call(self) -> SavedCall:
        """Take away what the last forward kept for backward, of this layer and every layer inside
        it (and the inner layers' saved calls), so that another call of the same instance cannot
        overwrite it; `_restore_call` puts it back before that call's backward."""
        saved = SavedCall()
        for layer in self.walk():
            state = vars(layer)
            names = _kept_names(layer)
            if layer is not self:
                names.append("_calls")
            saved.states.append((layer, {name: state.pop(name) for name in names if name in state}))
        return saved

    def _restore_call(self, saved: SavedCall) -> None:
        """Make `saved` (from `_save_call`) the state backward reads, dropping what was there."""
        for layer, kept in saved.states:
            state = vars(layer)
            names = _kept_names(layer)
            if layer is not self:
                names.append("_calls")
            for name in names:
                state.pop(name, None)
            state.update(kept)

    def _backward_with(self, saved: SavedCall, grad: np.ndarray) -> Any:
        """`backward(grad)` of the call whose state is `saved`; the state before it comes back after."""
        live = self._save_call()
        self._restore_call(saved)
        try:
            return self.backward(grad)
        finally:
            self._restore_call(live)

    def _push_call(self) -> None:
        """Save the last call's state on this layer's stack of calls (a chain that uses it twice)."""
        saved = self._save_call()
        self.__dict__.setdefault("_calls", []).append(saved)

    def _pop_call(self) -> None:
        """Restore the state of the last call pushed, for its backward (calls go back in reverse)."""
        calls = self.__dict__.get("_calls")
        if not calls:
            raise LaminaError(
                f"{type(self).__name__} is used at several places, and backward was called more times than forward "
                "since the last forward pass; call backward once after each forward"
            )
        self._restore_call(calls.pop())

    @property
    def only_building(self) -> bool:
        """True while the layer is called only so that layers build their weights (loading a file,
        the first step of training, `Model.summary`): the output's values do not matter then, only
        its shape and dtype, so a costly forward may return zeros of the right shape instead."""
        return _building.get()

    def reserve(self, shape: Sequence[int], dtype: np.dtype | type | str, what: str, output: bool = False) -> None:
        """Say that forward is about to allocate an array of `shape` and `dtype`, before it does:
        a temporary much larger than the output (attention scores, an im2col buffer), or, with
        `output=True`, the output itself where it is much larger than the input. Inside a metered
        pass (loading a file, exporting a model) it is charged, and refused with a LaminaError
        naming the layer once the pass passes its limit; anywhere else it does nothing. `what`
        names the array in the message ("the attention scores")."""
        meter = _meter.get()
        if meter is not None:
            size = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
            meter.reserve(size, f"{what} of {printable(repr(self), 80)}, of shape {tuple(int(n) for n in shape)}",
                          self if output else None)

    def build(self, x: np.ndarray) -> None:
        """Create what depends on the input (weights of the right width), once, before the first
        forward; `x` is the first input. Nothing to do by default."""

    def __getattr__(self, name: str) -> object:
        # Only reached when normal lookup fails: what forward keeps is missing, so backward
        # came before any forward (or after release()). Costs nothing on the normal path.
        keeps = type(self).keeps
        if keeps is not None and name in keeps:
            raise LaminaError(
                f"{type(self).__name__}: backward was called before forward (it has no {name}, which forward "
                "keeps for it); call the layer on an input first, and backward after each forward"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        """dL/dx from dL/dy, adding each parameter's gradient into its `.grad`. A layer that does
        not write it gets it derived from its forward (recorded while training)."""
        if not self._autodiff:
            raise NotImplementedError(f"{type(self).__name__} must implement backward(grad)")
        tape, out, leaf = self._tape, self._out, self._leaf
        no_input_grad = self.integer_input or not self.needs_input_grad
        if not isinstance(out, Traced):  # the output depends on neither the input nor a parameter
            return None if no_input_grad else _leaf_grads(leaf, {}, grad)
        if not out.needed:  # it depends on nothing that wants a gradient
            return None
        grads = tape.backward(out, grad)
        for param, node in tape.params.values():
            if node in grads:
                param.grad += grads[node]
        return None if no_input_grad else _leaf_grads(leaf, grads, grad)

    def parameters(self) -> dict[str, Parameter]:
        """The layer's parameters by name (frozen ones too): by default its Parameter attributes
        by attribute name, then its sublayers' as "name.param" or "name.0.param"."""
        found: dict[str, Parameter] = {}
        for name, value in list(vars(self).items()):  # a snapshot: another thread may be in forward
            if isinstance(value, Parameter):
                found[name] = value
        for prefix, layer in self._sublayers():
            found.update({f"{prefix}.{key}": param for key, param in layer.parameters().items()})
        return found

    def buffers(self) -> dict[str, np.ndarray]:
        """Arrays that are part of the layer's state but not trained; saved with the model.

        Loading writes into them in place, so return the arrays the layer itself uses. By
        default: the sublayers' buffers (a layer's own buffers are declared by overriding this).
        """
        found: dict[str, np.ndarray] = {}
        for prefix, layer in self._sublayers():
            found.update({f"{prefix}.{key}": array for key, array in layer.buffers().items()})
        return found

    # -- the state in PyTorch's layout (Model.state_dict(layout="torch")) ----------------------

    # What the layer's parameters and buffers are called in PyTorch: those of the torch.nn module
    # that computes the same, in an nn.Sequential at the layer's position. True: lamina's names
    # and shapes are torch's; a dict: renames only, of names ({"out_proj_weight":
    # "out_proj.weight"}) or of prefixes ending in "." ({"attention.": "self_attn."}); False: no
    # torch layout, unless the class defines to_torch and from_torch.
    torch_layout: ClassVar[bool | Mapping[str, str]] = False
    # Torch names that to_torch writes but loading ignores (BatchNorm's num_batches_tracked):
    # accepted when present, not missing when absent.
    torch_ignored: ClassVar[tuple[str, ...]] = ()

    def to_torch(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The layer's state in PyTorch's layout: `state` holds its parameters and buffers by
        lamina name ("weight"), a sublayer's already in torch's layout under the sublayer's name
        ("layers.0.weight"); return them by torch name, in torch's shapes. The arrays may be the
        layer's own: return new ones (or the same), never write into them. By default: the
        `torch_layout` renames."""
        return self._torch_renamed(state, reverse=False)

    def from_torch(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The reverse of `to_torch`: `state` holds torch-named entries at the layer's place
        (sublayers' still in torch's layout, which their own from_torch reads next); return them
        by lamina name. Under `strict=False` only the entries that fit arrive: convert each one
        given. By default: the `torch_layout` renames, reversed."""
        if self.torch_layout is False and type(self).to_torch is not Layer.to_torch:
            raise LaminaError(f"{type(self).__name__} defines to_torch but not from_torch, its reverse: define both")
        return self._torch_renamed(state, reverse=True)

    def _torch_renamed(self, state: dict[str, np.ndarray], reverse: bool) -> dict[str, np.ndarray]:
        layout = self.torch_layout
        if layout is False:
            raise LaminaError(
                f"{type(self).__name__} has no PyTorch layout: give its class `torch_layout = True` when its "
                "parameter names and shapes are torch's, a dict of renames, or methods to_torch(state) and "
                "from_torch(state) (help(lamina.Layer.to_torch))"
            )
        if layout is True:
            return dict(state)
        names = {new: old for old, new in layout.items()} if reverse else dict(layout)
        # the longest prefix first: "layers.1." before "layers."
        prefixes = sorted((old for old in names if old == "" or old.endswith(".")), key=len, reverse=True)
        renamed: dict[str, np.ndarray] = {}
        for key, value in state.items():
            if key in names:
                renamed[names[key]] = value
                continue
            old = next((p for p in prefixes if key.startswith(p)), None)
            renamed[key if old is None else names[old] + key[len(old):]] = value
        return renamed

    def _sublayers(self) -> list[tuple[str, Layer]]:
        """The Layer attributes, and the Layers in list or tuple attributes (lists of lists
        too: "branches.1.0"), with their names."""
        found: list[tuple[str, Layer]] = []
        for name, value in list(vars(self).items()):  # a snapshot: another thread may be in forward
            if isinstance(value, Layer):
                found.append((name, value))
            elif isinstance(value, (list, tuple)) and _holds_layers(value):
                found.extend(_named_layers(name, value))
        return found

    def sublayers(self) -> dict[str, Layer]:
        """The layers this layer is made of, by name ("layers.0"), not recursively."""
        return dict(self._sublayers())

    def walk(self) -> list[Layer]:
        """This layer and every layer inside it, recursively, each once."""
        found: dict[int, Layer] = {id(self): self}
        for _, layer in self._sublayers():
            for inner in layer.walk():
                found.setdefault(id(inner), inner)
        return list(found.values())

    def release(self) -> None:
        """Drop what forward kept for backward (the attributes named in `keeps`).

        The model calls it after `predict` and `evaluate`, so that inference leaves no per-call
        state behind.
        """
        for _, layer in self._sublayers():
            layer.release()
        state = vars(self)
        for saved in state.pop("_calls", ()):
            saved.close()
        if self._autodiff:  # the recorded forward, whatever else the layer declares
            tape = state.get("_tape")
            if tape is not None:
                tape.close()
            for name in ("_tape", "_out", "_leaf"):
                state.pop(name, None)
        if self.keeps is not None:
            for name in self.keeps:
                state.pop(name, None)
            return
        for name, value in list(state.items()):
            if name.startswith("_") and isinstance(value, np.ndarray):
                del state[name]

    def zero_grad(self) -> None:
        for param in self.parameters().values():
            param.zero_grad()


class SavedCall:
    """What one call of a layer kept for its backward: (layer, {attribute: value}) for the layer
    and each layer inside it."""

    __slots__ = ("states",)

    def __init__(self) -> None:
        self.states: list[tuple[Layer, dict[str, Any]]] = []

    def close(self) -> None:
        """Drop it, closing the recorded forwards (tapes) in it, which free their arrays at once."""
        for _, kept in self.states:
            tape = kept.get("_tape")
            if tape is not None:
                tape.close()
            for saved in kept.get("_calls", ()):
                saved.close()
        self.states.clear()


def _kept_names(layer: Layer) -> list[str]:
    """The attributes that hold what `layer`'s forward kept for its backward, as release() drops them."""
    names = ["_tape", "_out", "_leaf"] if layer._autodiff else []
    if layer.keeps is not None:
        return names + [name for name in layer.keeps if name not in names]
    return names + [name for name, value in vars(layer).items()
                    if name.startswith("_") and isinstance(value, np.ndarray)]


_CALLS_CHECKED: set[tuple[type, frozenset[str]]] = set()  # (layer class, keyword names) forward takes


def _leaf_grads(leaf: Any, grads: dict[Any, np.ndarray], grad: np.ndarray) -> Any:
    """The input gradient of a traced forward: one per leaf when the layer was called on a list."""
    if isinstance(leaf, list):
        return [_leaf_grads(item, grads, grad) for item in leaf]
    found = grads.get(leaf)
    if found is None:
        return np.zeros_like(leaf.value)
    # a broadcast view is read-only, and `x + 1` passes the caller's own array back
    return found.copy() if not found.flags.writeable or found is grad else found


def _holds_layers(items: list[Any] | tuple[Any, ...]) -> bool:
    """True for a non-empty list of Layers, or of such lists."""
    return bool(items) and all(
        isinstance(item, Layer) or (isinstance(item, (list, tuple)) and _holds_layers(item)) for item in items
    )


def _named_layers(prefix: str, items: list[Any] | tuple[Any, ...]) -> list[tuple[str, Layer]]:
    found: list[tuple[str, Layer]] = []
    for i, item in enumerate(items):
        if isinstance(item, Layer):
            found.append((f"{prefix}.{i}", item))
        else:
            found.extend(_named_layers(f"{prefix}.{i}", item))
    return found


_tracing = trace.current  # the tape being recorded into, if any
_recording = trace.recording  # False in model inference

# Set by Model.summary while it runs an input through: told of every layer call and its output.
_observer: contextvars.ContextVar[Callable[[Layer, object], None] | None] = contextvars.ContextVar(
    "lamina_observer", default=None
)


# True while layers are called only so that they build their weights (a model file being
# rebuilt before its arrays are read back, the one-row build at the start of training).
_building: contextvars.ContextVar[bool] = contextvars.ContextVar("lamina_building", default=False)


class Meter(Protocol):
    """What charges a metered pass (lamina.files.budget.Pass): bytes about to be allocated."""

    def reserve(self, nbytes: int, what: str, output_of: object = None) -> None: ...


# The meter of a pass whose allocations are bounded (a file's load-time pass, an export), if any.
_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("lamina_meter", default=None)


@contextlib.contextmanager
def metering(meter: Meter) -> Iterator[None]:
    """Inside the block (this thread or task only), `Layer.reserve` charges `meter`."""
    token = _meter.set(meter)
    try:
        yield
    finally:
        _meter.reset(token)


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Inside the block (this thread or task only), a layer that has not adapted yet may be called:
    it computes an output of the right shape without its statistics (they come after)."""
    token = _building.set(True)
    try:
        yield
    finally:
        _building.reset(token)


def adapts(layer: Layer) -> bool:
    """True when the layer's class learns from data before training (it defines `adapt`)."""
    return type(layer).adapt is not Layer.adapt


@contextlib.contextmanager
def observing(observer: Callable[[Layer, object], None]) -> Iterator[None]:
    """Call `observer(layer, output)` after every layer call inside the block (sublayers too),
    in this thread (or task) only."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def named_parameters(layers: Sequence[Layer]) -> dict[str, Parameter]:
    """Every layer's parameters, named '<layer index>.<name>' (e.g. '0.weight'); a parameter of a
    layer used at several places appears once, under its first place."""
    return _each_once(layers, lambda layer: layer.parameters())


def layer_paths(layers: Sequence[Layer]) -> dict[str, Layer]:
    """Every layer and, recursively, its sublayers, named by where they sit ('0', '1.layers.0'),
    as the parameters' names begin."""
    found: dict[str, Layer] = {}

    def visit(path: str, layer: Layer) -> None:
        found[path] = layer
        for name, inner in layer._sublayers():
            visit(f"{path}.{name}", inner)

    for i, layer in enumerate(layers):
        visit(str(i), layer)
    return found


def named_buffers(layers: Sequence[Layer]) -> dict[str, np.ndarray]:
    """Every layer's buffers, named like their parameters (e.g. '2.running_mean'), each once."""
    return _each_once(layers, lambda layer: layer.buffers())


def _each_once(layers: Sequence[Layer], items: Callable[[Layer], dict[str, Any]]) -> dict[str, Any]:
    """`items(layer)` of every layer, named '<layer index>.<name>'; an object at several places once, first."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    for i, layer in enumerate(layers):
        for name, item in items(layer).items():
            if id(item) not in seen:
                seen.add(id(item))
                found[f"{i}.{name}"] = item
    return found
