"""Model: the front door. A Chain of layers that trains (lamina.training), saves and loads
(lamina.files) and exports (lamina.export); those see it only as a Trainable."""
from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lamina import parallel
from lamina.autodiff import no_recording
from lamina.checks import DEFAULT_DTYPE, as_floating, as_integers, describe
from lamina.errors import ArgumentError, LaminaError
from lamina.export.exporter import export_onnx
from lamina.files.load import read_model
from lamina.files.save import save_model
from lamina.files.state import LoadReport, checked, load_state_dict, state_dict
from lamina.files.weights import read_weights, write_weights
from lamina.graph import structure
from lamina.graph.network import Graph
from lamina.parameter import Parameter
from lamina.protocols.chain import Chain
from lamina.protocols.configurable import config_repr
from lamina.protocols.layer import Layer, building, named_buffers, named_parameters, observing
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.registry import resolve
from lamina.training import loop
from lamina.training.history import History
from lamina.training.options import TrainOptions, defaults


class Model(Chain):
    """Layers applied in order (a Chain), or a graph of layers between symbolic inputs and
    outputs: `model(x)` predicts, `model.train(x, y, ...)` fits.

    `layers` items are Layer instances, registered names (`"Relu"`) or dicts
    (`{"type": "Linear", "units": 8}`); one instance may appear at several places (its weights
    are shared, the gradients of every place add up). `Model(inputs=..., outputs=...)` makes a
    graph model instead: each one symbolic value (`lamina.Input(shape)`, or a layer called on
    symbolic values), a list or a dict of them; data then follow the same structure.

    Examples:
        >>> model = Model([Linear(8), "Relu", {"type": "Linear", "units": 1}, "Sigmoid"])
        >>> history = model.train(x, y, optim=SGD(lr=0.6), loss="MSE", epochs=400)
        >>> history["loss"][-1], model.predict(x)
        >>> a, b = lamina.Input((6,), name="a"), lamina.Input((3,), name="b")
        >>> h = lamina.layer("Concatenate")([lamina.layer("Linear", 8)(a), b])
        >>> Model(inputs={"a": a, "b": b}, outputs=lamina.layer("Linear", 1)(h))
    """

    layers: list[Layer]

    def __init__(self, layers: Iterable[Layer | str | Mapping[str, Any]] | None = None, *,
                 inputs: object = None, outputs: object = None) -> None:
        # A graph model: its layers are those of the graph, each once, in the order of first use.
        self.graph: Graph | None = _graph(layers, inputs, outputs)
        if self.graph is not None:
            built = self.graph.layers
        elif isinstance(layers, (str, Layer, Mapping)) or not isinstance(layers, Iterable):
            raise ArgumentError(
                f"Model(layers={describe(layers)}): layers must be a list, e.g. "
                "Model([Linear(8), Relu(), Linear(1)]), or give inputs= and outputs= for a graph model"
            )
        else:
            built = [_build_layer(i, item) for i, item in enumerate(layers)]
        if not built:
            raise ArgumentError("Model(layers=[]): a model needs at least one layer")
        super().__init__(built, "Model.layers")
        self.optimizer: Optimizer | None = None  # set by train; callbacks and save read them
        self.loss: Loss | None = None
        self.metrics: list[Metric] = []
        self.stop_training = False
        self.history: History | None = None  # the History being built while training
        self.progress: dict[str, Any] | None = None  # epochs done, when loaded from a checkpoint
        # What using the model needs besides its layers (a text model's vocabulary), as JSON
        # values; saved in its file. `lamina train` copies the dataset's metadata here.
        self.metadata: dict[str, Any] = {}
        # A loaded file's generator state goes back into lamina's generator when this model
        # trains again (resuming), never at load time.
        self.saved_generator: dict[str, Any] | None = None
        # The shape (without the batch axis) and dtype of the first input: a saved model is
        # rebuilt from them, since layers create their parameters on their first input.
        self.input_shape: tuple[int, ...] | None = None
        self.input_dtype: np.dtype | None = None
        if self.graph is not None and len(self.graph.inputs) == 1:  # built already, on its Input's shape
            self.input_shape, self.input_dtype = self.graph.inputs[0].shape, self.graph.inputs[0].dtype
        # Layers keep per-call state between forward and backward, so calls on one model take
        # turns: predict, evaluate, save and summary from several threads are safe, not
        # parallel. Training holds the lock one step at a time, so that a save from another
        # thread waits for the step to end and writes a consistent model; two trainings of one
        # model run one after the other (`training_lock`).
        self.lock = threading.RLock()
        self.training_lock = threading.Lock()

    # -- inference -----------------------------------------------------------------------

    def __call__(self, x: object) -> Any:
        """Predict in inference mode, as `predict(x)` (bools and ints become the model's float dtype)."""
        return self.predict(x)

    # What forward takes and returns: the names and the structure ("array", "list" or "dict").
    @property
    def input_names(self) -> tuple[str, ...]:
        return ("input",) if self.graph is None else self.graph.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("output",) if self.graph is None else self.graph.output_names

    @property
    def input_format(self) -> str:
        return "array" if self.graph is None else self.graph.input_format

    @property
    def output_format(self) -> str:
        return "array" if self.graph is None else self.graph.output_format

    def forward(self, x: Any, stop: int | None = None) -> Any:
        """Run an array through every layer (or the first `stop`); errors name the layer and its position.
        A graph model takes and returns its structure (`input_format`, `output_format`)."""
        with self.lock:
            return self._forward(x, stop)

    def _forward(self, x: Any, stop: int | None = None) -> Any:
        if self.graph is not None:
            if stop is not None:
                raise LaminaError("Model.forward(x, stop): a graph model runs whole; stop is for chains of layers")
            return self.graph.forward(x, self.dtype)
        if self.input_shape is None and x.ndim > 0:
            self.input_shape, self.input_dtype = x.shape[1:], x.dtype
        return super().forward(x, stop)

    def backward(self, grad: Any, from_layer: int | None = None) -> Any:
        """dL/dx from dL/d(output) (of layer `from_layer` in a chain); a graph model takes one per
        output in its structure (None for an output without loss) and returns one per input."""
        if self.graph is None:
            return super().backward(grad, from_layer)
        if from_layer is not None:
            raise LaminaError("Model.backward(grad, from_layer): a graph model has no fused last layer")
        return self.graph.backward(grad)

    def predict(self, x: object, batch_size: int | None = None) -> Any:
        """Outputs for `x` in inference mode, computed `batch_size` rows at a time (all at once by default);
        a graph model returns its output structure (a dict for dict outputs), every input batched alike."""
        with self.lock, self.inference():
            if self.graph is not None:
                return structure.predict(self, x, batch_size)
            return loop.predict(self, x, batch_size)

    def evaluate(
        self,
        x: object,
        y: object,
        loss: Loss | str | None = None,
        metrics: Iterable[Metric | str] | Metric | str = (),
        batch_size: int | None = None,
        report: bool = False,
        sample_weight: object = None,
        loss_weights: object = None,
    ) -> dict[str, Any]:
        """{"loss": ..., metric name: ...} over (x, y) in inference mode, each over the whole set
        whatever `batch_size`; `loss` defaults to the one the model was last trained with. With
        `report=True`, also "report": per-class precision, recall, F1 and support (class names
        from `metadata["classes"]`), the macro and weighted means and the confusion matrix.
        `sample_weight` (one non-negative weight per row) weighs the loss, sum(w l) / sum(w), and
        the metrics. A model with several outputs takes `loss`, `metrics`, `sample_weight` and
        `loss_weights` per output (dicts by output name) and also returns "<output>_loss" and
        "<output>_<metric>"; "loss" is the weighted total."""
        with self.lock, self.inference():
            return loop.evaluate(self, x, y, loss, metrics, batch_size, report=report, sample_weight=sample_weight,
                                 loss_weights=loss_weights)

    def adapt(self, x: object, batch_size: int | None = None) -> None:
        """Let every layer that learns from data (Normalization's mean and variance) learn afresh
        from `x`, as Keras' `adapt`: the rows go `batch_size` at a time (an array in memory all at
        once by default, an array-like such as a memmap 256 rows at a time, never loaded whole)
        through the layers before it, in inference mode.

        `train` does this itself, on the training rows (not the validation ones), for each such
        layer that has not learned yet; call `adapt` to learn from other rows, or again. Only
        layers at the top level of the model adapt. With several processes (strategy "mpi")
        each process reads all the rows, so that all learn the same statistics.
        """
        self._chain_only("adapt")
        with self.lock:
            loop.adapt_to(self, x, batch_size)

    # -- parameters ----------------------------------------------------------------------

    def parameters(self) -> dict[str, Parameter]:
        """Every parameter, frozen ones included (`param.trainable` says which train), named
        '<layer index>.<name>' (e.g. '0.weight')."""
        return named_parameters(self.layers)

    def buffers(self) -> dict[str, np.ndarray]:
        """Every layer's non-trained state (e.g. running statistics), named like parameters."""
        return named_buffers(self.layers)

    def state_dict(self, layout: str = "lamina") -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name: lamina's ("0.weight", "2.layers.1.bias",
        "3.running_mean"), or with `layout="torch"` those of the equivalent torch.nn modules in an
        nn.Sequential, in their shapes (a Linear's weight (out, in)), which torch's
        `load_state_dict(strict=True)` takes. The model must be built (`build(x)`)."""
        with self.lock:
            return state_dict(self, layout)

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, layout: str = "lamina") -> LoadReport:
        """Copy the arrays of `state` (names as `state_dict(layout)` writes them) into the model's
        parameters and buffers, in place, cast to their dtypes; returns a LoadReport of the names
        missing, unexpected and of mismatched shapes. `strict=True` raises a ShapeError naming them
        all, loading nothing, unless everything fits; `strict=False` loads what fits. Values must be
        numbers and finite (else an ArgumentError or NonFiniteError, and nothing is loaded).
        BatchNorm's `num_batches_tracked` is accepted and ignored. The model must be built."""
        with self.lock:
            return load_state_dict(self, state, strict, layout)

    def save_weights(self, path: str | os.PathLike[str], layout: str = "lamina",
                     metadata: Mapping[str, str] | None = None) -> Path:
        """Write `state_dict(layout)` to a .safetensors or .npz file (by suffix), atomically: the
        weights alone, by name, for lamina or (`layout="torch"`) for torch.nn and the ecosystem
        (`safetensors.torch.load_file` reads it). `metadata` (str -> str, .safetensors only) goes
        into the file's header. Returns the path."""
        state = self.state_dict(layout=layout)
        write_weights(path, state, metadata)
        return Path(path)

    def load_weights(self, path: str | os.PathLike[str], strict: bool = True, layout: str = "lamina",
                     max_bytes: int | None = None) -> LoadReport:
        """Read a .safetensors or .npz weights file (within the loading budget: `max_bytes`, see
        `lamina.read_weights`) and load it as `load_state_dict(state, strict, layout)` does; returns
        the LoadReport. The model must be built (`build(x)`)."""
        checked(self, layout, "load_weights")  # built, a known layout: before reading a byte of the file
        return self.load_state_dict(read_weights(path, max_bytes=max_bytes), strict, layout)

    def build(self, x: np.ndarray) -> None:
        """Run one row through the layers when the model has seen no input yet, so that every
        layer builds its parameters (before the first permutation: every strategy then draws
        from the generator alike, and a checkpoint finds every parameter to restore). A first
        layer made with its weights (Embedding) does not mean the others have theirs."""
        if self.graph is None and self.input_shape is None and len(x):
            self.predict(x[:1])

    def zero_grad(self) -> None:
        """Set every parameter's `.grad` to zero; backward passes add into them (a hand-written loop zeroes
        before each)."""
        for layer in self.layers:
            layer.zero_grad()

    def release(self) -> None:
        """Let every layer drop the arrays its last forward pass kept for backward."""
        for layer in self.layers:
            layer.release()
        if self.graph is not None:
            self.graph.release()

    def prepare_input(self, x: object, owner: str) -> Any:
        """`x` as the first layer takes it: floats in the model's dtype, or integer indices; for a graph
        model, its structure with each input so (a list in input order for list inputs)."""
        if self.graph is not None:
            arrays = self.graph.prepare(x, owner, self.dtype)
            return structure.structured(arrays, self.input_format, self.input_names)
        if self.layers[0].integer_input:
            return as_integers(x, "x", owner)
        return as_floating(x, "x", owner, self.dtype)

    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of the parameters (float32 before any layer is built)."""
        for layer in self.layers:
            for param in layer.parameters().values():
                return param.value.dtype
        return DEFAULT_DTYPE

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Inference mode inside the block, and the layers' modes as they were after it (so that
        a predict from another thread between two training steps leaves training as it was)."""
        modes = [(layer.training, layer.needs_input_grad) for layer in self.layers]
        self.set_training(False)
        try:
            with no_recording(), parallel.owned(self.layers):  # forward-only layers and losses record no graph
                yield
        finally:
            for layer, (mode, needs) in zip(self.layers, modes):
                layer.training, layer.needs_input_grad = mode, needs

    def set_training(self, training: bool) -> None:
        """Put every layer in training (True) or inference (False) mode.

        In training, the first layer is told that nobody needs its input gradient (a graph: every
        layer that reads only the inputs), unless it is also used at another place.
        """
        if self.graph is not None:
            self.graph.set_training(training)
            return
        for layer in self.layers:
            layer.training = training
            layer.needs_input_grad = True
        if training and 0 not in self.shared:
            self.layers[0].needs_input_grad = False

    # -- training ------------------------------------------------------------------------

    def train(self, x: object, y: object, *args: Any, **options: Any) -> History:
        """Fit the model to (x, y); returns the History of loss and metrics per epoch.

        `optim` (default SGD) and `loss` (default MSE), `metrics` and `callbacks` take instances
        or registered names. `batch_size=None` trains on the whole set as one batch; otherwise
        on mini-batches, reshuffled each epoch (one permutation from lamina's generator) unless
        `shuffle=False`. Validation data comes from `validation_data=(x_val, y_val)` or the last
        `validation_split` fraction of (x, y). `clip_grad_norm` caps the gradients' global norm.
        A NaN or infinite loss or gradient stops training with a NonFiniteError, before the
        step that would have spoiled the weights. `resume_from` names a checkpoint (written by
        the Checkpoint callback): its weights, optimizer state, random generator and history are
        restored and training continues up to `epochs` in all, exactly as if never interrupted.
        `strategy` spreads training over processes ("local", the default, or "mpi" under
        `mpiexec -n N`); with the same seed and global batch size it reaches the same weights.
        The options, their order and defaults are `lamina.TrainOptions`'s.
        """
        names = list(defaults())
        if len(args) > len(names):
            raise ArgumentError(f"Model.train takes at most {len(names) + 2} positional arguments; "
                                "pass options by name")
        for name, value in zip(names, args):
            if name in options:
                raise ArgumentError(f"Model.train: {name} was given twice, by position and by name")
            options[name] = value
        with self.training_lock:
            return loop.fit(self, x, y, TrainOptions.make(options))

    # -- files and description -------------------------------------------------------------

    def save(
        self,
        path: str | os.PathLike[str],
        include_optimizer: bool = False,
        progress: dict[str, Any] | None = None,
    ) -> Path:
        """Write the model to one file (a zip of JSON and .npy arrays; no pickle), atomically.

        `include_optimizer=True` also stores the optimizer's state and lamina's random
        generator, so that `lamina.load(path)` followed by `train` continues exactly;
        `progress` ({"epoch": epochs done, "history": ...}) makes it a resumable checkpoint.
        """
        with self.lock:
            return save_model(self, path, include_optimizer, progress)

    def export_onnx(self, path: str | os.PathLike[str], opset: int = 17) -> Path:
        """Write the model as an ONNX file (needs onnx: `pip install onnx`), atomically.

        The file computes `model.predict`: inference mode (Dropout is the identity, BatchNorm
        uses its running statistics), one input named "input" of shape (batch, *input_shape)
        and one output named "output", the batch axis free; a graph model has one input per
        name in `input_names` and one output per name in `output_names` (a shared layer's
        weights stored once). `opset` is the ONNX operator set, 17 to 21. Every built-in layer
        exports; a third-party layer exports if it is written forward-only or has a
        `to_onnx(graph, x)` method (docs/pages/writing-plugins.md).
        """
        return export_onnx(self, path, opset)

    def summary(self) -> Summary:
        """A table of the layers (layers made of layers as a tree, e.g. '1.layers.0'), their
        output shapes and parameter counts, and the total; where some are frozen, frozen layers
        are marked "(frozen)" and the total is split: "Total params: N (trainable: T, frozen: F)".

        It is a str (print it, or read it); at the interactive prompt it shows as the table.
        """
        with self.lock:  # training changes the layers' state a step at a time: read between steps
            return self._summary() if self.graph is None else _graph_summary(self.graph, self.layers)

    def _summary(self) -> Summary:
        shapes: dict[int, str] = {}
        if self.input_shape is not None:

            def note(layer: Layer, out: object) -> None:
                shape = getattr(out, "shape", None)
                if shape is not None:
                    shapes[id(layer)] = str((None, *shape[1:]))

            # Only shapes are read: as when building, a costly layer (attention, a recurrent one)
            # returns zeros of its output's shape, so that `lamina info` costs what loading did.
            with self.inference(), building(), observing(note):
                self._forward(np.zeros((1, *self.input_shape), dtype=self.input_dtype))
                self.release()
        rows = [("#", "Layer", "Output shape", "Params")]
        for i, layer in enumerate(self.layers):
            count = sum(p.size for p in layer.parameters().values())
            for name, depth, inner in _tree(str(i), layer, 0):
                params = count if inner is layer else sum(p.size for p in inner.parameters().values())
                label = _label(inner) + ("" if inner.trainable else " (frozen)")
                rows.append((name, "  " * depth + label, shapes.get(id(inner), "?"), f"{params:,}"))
        footer = _totals(self.layers)
        if self.input_shape is None:
            footer += " (layers are built on the first input: call the model on data to see all)"
        return _table(rows, [footer])

    def _chain_only(self, method: str) -> None:
        if self.graph is not None:
            raise LaminaError(f"Model.{method}: not supported for graph models (Model(inputs=..., outputs=...)) yet; "
                              "it works for a model made from a list of layers")

    def __repr__(self) -> str:
        if self.graph is not None:
            return (f"Model(inputs={list(self.input_names)}, outputs={list(self.output_names)}, "
                    f"layers=[{', '.join(repr(layer) for layer in self.layers)}])")
        return f"Model([{', '.join(repr(layer) for layer in self.layers)}])"


def load_model(path: str | os.PathLike[str], max_bytes: int | None = None) -> Model:
    """`lamina.load`: the model a file written by `Model.save` describes.

    Nothing in the file is executed, and nothing it claims is believed unchecked: a damaged or
    hostile file raises a FileFormatError (or a MissingPluginError), never another exception,
    and is refused before its arrays pass `max_bytes` (default 16 GiB, or the environment
    variable LAMINA_MAX_LOAD_BYTES). Loading never touches lamina's random generator; a file
    saved with its optimizer keeps the generator's state for the first `train`, which
    continues exactly where the saved training stopped.
    """
    saved = read_model(path, max_bytes)
    if saved.graph is not None:
        graph = saved.graph
        model = Model(inputs=structure.structured(graph.inputs, graph.input_format, graph.input_names),
                      outputs=structure.structured(graph.outputs, graph.output_format, graph.output_names))
    else:
        model = Model(saved.layers)
        model.input_shape, model.input_dtype = saved.input_shape, saved.input_dtype
    model.loss, model.metrics, model.optimizer = saved.loss, saved.metrics, saved.optimizer
    model.progress = saved.progress
    model.metadata = saved.metadata
    model.saved_generator = saved.rng_state
    return model


# help(Model.train) and IDEs show the options themselves, made from TrainOptions.
Model.train.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("self", "x", "y")]
    + [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=value)
       for name, value in defaults().items()],
    return_annotation=History,
)


class Summary(str):
    """The text of `Model.summary()`, shown as the table itself at the interactive prompt."""

    def __repr__(self) -> str:
        return str(self)


def _graph_summary(graph: Graph, layers: list[Layer]) -> Summary:
    """A graph model's table: a row per Input and per node (its layer, output shape, parameters,
    and what feeds it: Inputs by name, nodes by number); a shared layer's parameters count at its
    first node, its other nodes say whose they share."""
    first = len(graph.inputs)
    names = [*graph.input_names, *map(str, range(len(graph.nodes)))]
    rows = [("#", "Layer", "Output shape", "Params", "Inputs")]
    rows += [(name, "Input", str((None, *s.shape)), "0", "") for name, s in zip(graph.input_names, graph.inputs)]
    owner: dict[int, int] = {}
    for j, (node, refs) in enumerate(zip(graph.nodes, graph.refs)):
        layer = node.layer
        label = _label(layer) + ("" if layer.trainable else " (frozen)")
        if id(layer) in owner:
            label, count = f"{label} (shared with node {owner[id(layer)]})", 0
        else:
            owner[id(layer)], count = j, sum(p.size for p in layer.parameters().values())
        rows.append((str(j), label, str((None, *node.shape)), f"{count:,}", ", ".join(names[r] for r in refs)))
    outputs = ", ".join(f"{name!r} = {names[slot] if slot < first else 'node ' + names[slot]}"
                        for name, slot in zip(graph.output_names, graph.output_slots))
    return _table(rows, [f"Outputs: {outputs}", _totals(layers)])


def _totals(layers: list[Layer]) -> str:
    """'Total params: N', split into trainable and frozen where some are frozen; each parameter once."""
    params = list({id(p): p for layer in layers for p in layer.parameters().values()}.values())
    total, frozen = sum(p.size for p in params), sum(p.size for p in params if not p.trainable)
    footer = f"Total params: {total:,}"
    if frozen or not all(layer.trainable for layer in layers):
        footer += f" (trainable: {total - frozen:,}, frozen: {frozen:,})"
    return footer


def _table(rows: Sequence[tuple[str, ...]], footers: list[str]) -> Summary:
    """Rows as aligned columns (the 4th, the parameter counts, to the right), ruled, then the footers."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c != 3 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
             .rstrip() for row in rows]
    rule = "-" * max(len(line) for line in lines)
    return Summary("\n".join([lines[0], rule, *lines[1:], rule, *footers]))


def _tree(name: str, layer: Layer, depth: int) -> Iterator[tuple[str, int, Layer]]:
    """`layer` and the layers inside it, depth first, with their parameter-name prefixes."""
    yield name, depth, layer
    for inner_name, inner in layer.sublayers().items():
        yield from _tree(f"{name}.{inner_name}", inner, depth + 1)


def _label(layer: Layer) -> str:
    """The layer's repr, without the layers it holds (they get rows of their own)."""
    if not layer.sublayers():
        return repr(layer)
    config = {key: value for key, value in layer.get_config().items() if not _holds_layer(value)}
    return config_repr(layer, config)


def _holds_layer(value: object) -> bool:
    if isinstance(value, (Layer, Mapping)):
        return True
    return isinstance(value, (list, tuple)) and any(_holds_layer(item) for item in value)


def _graph(layers: object, inputs: object, outputs: object) -> Graph | None:
    """The graph of `Model(inputs=..., outputs=...)`, or None for a chain `Model(layers)`."""
    if inputs is None and outputs is None:
        return None
    if layers is not None:
        raise ArgumentError("Model: give either a list of layers (a chain) or inputs= and outputs= (a graph), "
                            "not both")
    if inputs is None or outputs is None:
        missing = "inputs" if inputs is None else "outputs"
        raise ArgumentError(f"Model: a graph model needs both inputs= and outputs=; {missing} is missing")
    return Graph(inputs, outputs)


def _build_layer(position: int, item: object) -> Layer:
    if isinstance(item, Mapping) and "type" not in item:
        raise ArgumentError(
            f"Model: layers[{position}] is a dict without a 'type' key ({item!r}); "
            "name the layer, e.g. {'type': 'Linear', 'units': 8}"
        )
    if isinstance(item, (Layer, str, Mapping)):
        return resolve("layer", item, f"layers[{position}]", "Model")
    if isinstance(item, type) and issubclass(item, Layer):
        raise ArgumentError(
            f"Model: layers[{position}] is the class {item.__name__}, not an instance; "
            f"write {item.__name__}(...) or the name {item.__name__!r}"
        )
    raise ArgumentError(
        f"Model: layers[{position}] is {describe(item)}; expected a Layer instance, a "
        "registered name such as 'Relu', or a dict such as {'type': 'Linear', 'units': 8}"
    )
