"""The loops behind `Model.train`, `Model.evaluate` and `Model.predict`.

A training run, top to bottom (`fit`): check the options and the data, build the layers,
then for each epoch, for each batch from `Batches`, one `Step`; the callbacks hear of every
epoch (and, if they ask, every batch), History and the progress bars among them. Everything
about several processes is the strategy's business.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from lamina import heap, parallel
from lamina.app.console import silenced
from lamina.checks import as_numeric, positive_int
from lamina.errors import ArgumentError, NonFiniteError, ShapeError
from lamina.files.load import restore_generator
from lamina.protocols.callback import Callback
from lamina.protocols.layer import adapts, building
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.strategy import Strategy, activated
from lamina.protocols.trainable import Trainable
from lamina.registry import REPORT_METRIC, default_plugin, resolve
from lamina.training.bars import ProgressBar
from lamina.training.batches import Batches, in_order
from lamina.training.checkpoint import resume
from lamina.training.history import History, RecordHistory
from lamina.training.options import OWNER, TrainOptions
from lamina.training.outputs import OutputLosses, make_loss, make_metrics, needed_outputs, per_output
from lamina.training.sources import Feed, Lazy, Several, check_weights, is_lazy, prefetched
from lamina.training.step import Step, update_metrics
from lamina.training.structure import Layout, check_rows, rows_of


def fit(model: Trainable, x: object, y: object, options: TrainOptions) -> History:
    """Model.train: fit `model` to (x, y) under the options' strategy; returns the History."""
    strategy: Strategy = (resolve("strategy", options.strategy, "strategy", OWNER) if options.strategy is not None
                          else Strategy())
    verbose = options.verbose and strategy.is_main  # only the main process shows progress
    with activated(strategy), silenced(not verbose):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # as in train(): the building forward too
            fitting = _Fit(model, x, y, options, strategy, verbose)
        return fitting.train()


class _Fit:
    """One call of `Model.train`: its checked inputs, its callbacks, and the loops."""

    def __init__(self, model: Trainable, x: object, y: object, options: TrainOptions, strategy: Strategy,
                 verbose: bool) -> None:
        self.model, self.options, self.strategy = model, options, strategy
        self.loss: Loss = make_loss(model, options.loss, options.loss_weights, OWNER)
        self.metrics: list[Metric] = make_metrics(model, options.metrics, self.loss, OWNER)
        check_metric_names(self.metrics, OWNER)
        callbacks: list[Callback] = [resolve("callback", c, "callbacks", OWNER) for c in options.callbacks]
        self.feed, self.validation = self._data(x, y)
        self.class_weight = class_weights(model, self.loss, self.feed, options.class_weight)
        if isinstance(self.feed.w, np.ndarray) and not self.feed.w.sum() > 0:
            raise ArgumentError(f"{OWNER}(sample_weight=...): every training row weighs 0; give some rows a "
                                "positive weight")
        check_adaptable(model, OWNER)
        with building():  # a layer that adapts to the data builds now and learns below
            # before the first permutation, so that every strategy draws alike
            model.build(self.feed.inputs(slice(0, 1)))
        if model.saved_generator is not None:  # a loaded file's training goes on: its generator too
            restore_generator(model.saved_generator, "the model's file")
            model.saved_generator = None
        self.history, self.start = History(), 0
        if options.resume_from is not None:
            self.optim, self.history, self.start = resume(model, options.resume_from, options.optim, OWNER)
        else:
            self.optim = default_plugin("optimizer", options.optim, "optim", OWNER)
        # After resuming (a checkpoint's statistics count as learned), before strategy.begin
        # (which hands every process the main one's buffers): the training rows only.
        adapt(model, self.feed, options.batch_size, OWNER, every=False)
        self.batches = Batches(len(self.feed), options.batch_size, options.shuffle, strategy, OWNER)
        # batches read ahead on a background thread: by default for data read lazily only
        self.prefetch = options.prefetch if options.prefetch is not None else int(self.feed.lazy)
        # History records after the user's callbacks (which may add to the logs), the bars last.
        self.callbacks = [*callbacks, RecordHistory(self.history)]
        if verbose:
            self.callbacks.append(ProgressBar(options.epochs, len(self.batches)))
        own = Callback.on_train_batch_end
        self.batch_callbacks = [c for c in self.callbacks if type(c).on_train_batch_end is not own]

    def _data(self, x: object, y: object) -> tuple[Feed, Feed | None]:
        """The training Feed, and the validation one from validation_data or split off."""
        model, options = self.model, self.options
        feed = data_feed(model, self.loss, x, y, OWNER, "train on", sample_weight=options.sample_weight,
                         metrics=self.metrics)
        if options.validation_data is not None:
            if options.validation_split:
                raise ArgumentError(f"{OWNER}: pass validation_data or validation_split, not both")
            x_val, y_val = options.validation_data
            return feed, data_feed(model, self.loss, x_val, y_val, OWNER, "validate on",
                                   "validation_data's x_val and y_val",
                                   "validation_data's x_val", metrics=self.metrics, y_name="validation_data's y_val")
        if not options.validation_split:
            return feed, None
        split_at = validation_split_point(len(feed), options.validation_split)
        if split_at == len(feed) or split_at == 0:
            raise ArgumentError(
                f"{OWNER}(validation_split={options.validation_split}): with {len(feed)} samples this leaves "
                f"{len(feed) - split_at} for validation and {split_at} for training; both need at least one"
            )
        return feed.part(0, split_at), feed.part(split_at, len(feed))  # the tail, by index: no copy

    def train(self) -> History:
        model = self.model
        heap.hold()  # each step's freed arrays stay with the process for the next step
        self.strategy.begin(model)
        step = Step(model, self.loss, self.optim, self.metrics, self.options.clip_grad_norm, self.strategy)
        step.class_weight = self.class_weight
        # a model with several outputs keeps its OutputLosses (evaluate's default); its metrics are
        # per output, which a model file cannot name
        model.optimizer, model.loss = self.optim, self.loss
        model.metrics = [] if isinstance(self.loss, OutputLosses) else self.metrics
        model.stop_training, model.history = False, self.history
        logs: dict[str, float] = {}
        for callback in self.callbacks:
            callback.set_model(model)
        self._tell("on_train_begin", {})
        # numpy's overflow and invalid-value warnings are silenced while training: the step's
        # guard stops at the first non-finite loss or gradient with an error naming the layer.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), parallel.owned(model.layers):
            model.set_training(True)
            try:
                for epoch in range(self.start, self.options.epochs):
                    self._tell("on_epoch_begin", epoch, {})
                    logs = self._epoch(step, epoch)
                    self._tell("on_epoch_end", epoch, logs)
                    if model.stop_training:
                        break
            except BaseException as err:
                self.strategy.fail(err)  # other processes must not wait for this one in a collective
                for callback in self.callbacks:
                    if isinstance(callback, ProgressBar):
                        callback.close()
                raise
            finally:
                model.set_training(False)
                model.release()  # the last step's forward state (recorded graphs too) is not kept
                self.loss.release()
        self._tell("on_train_end", logs)
        return self.history

    def _epoch(self, step: Step, epoch: int) -> dict[str, float]:
        """Train on every batch once; the epoch's logs (the loss's sample-weighted mean, the
        metrics over the epoch's rows, and val_*): scalars only."""
        names = ["loss"]
        totals = [0.0] * len(names)
        reset_metrics(self.metrics)
        feed, seen, lock = self.feed, 0, self.model.lock
        weight_seen = 0.0  # what the loss's sum is divided by: the rows seen, or their sample weights
        plan = list(enumerate(self.batches))  # this epoch's rows, drawn here: the loader thread draws nothing
        part = self.strategy.part  # this process's rows of a batch, remembering nothing: safe in the loader
        loaded = prefetched(plan, lambda item: feed.batch(part(*item[1])), self.prefetch,
                            lambda item: f"the rows of training batch {item[0] + 1}/{len(plan)}")
        for (index, (rows, count)), (xb, yb) in loaded:
            wb, weight, batch_weights = self._weights(rows, count)
            weight_seen += weight
            self.strategy.shard(rows, count, batch_weights)  # what the step's reduction needs to know of this batch
            try:
                with lock:  # one step at a time: other threads' saves and predicts come between steps
                    sums = step(xb, yb, wb)
                totals = [total + value for total, value in zip(totals, sums)]
            except NonFiniteError as err:
                raise NonFiniteError(  # the step's message says what to do: data, forward or learning rate
                    f"training stopped at epoch {epoch + 1}/{self.options.epochs}, batch {index + 1}/"
                    f"{len(self.batches)}: {err}"
                ) from None
            seen += count
            if self.batch_callbacks:  # the metrics so far over this process's rows (no collective per batch)
                running = {"loss": _ratio(totals[0], weight_seen)}
                running.update(scalars({m.name: m.result() for m in self.metrics}))
                for callback in self.batch_callbacks:
                    callback.on_train_batch_end(index, running)
        logs = {"loss": _ratio(totals[0], weight_seen)}  # the weighted mean: sum(w * l) / sum(w)
        logs.update(scalars(metric_results(self.metrics, self.strategy)))
        if isinstance(self.loss, OutputLosses):  # the weighted sum of the outputs' losses over the epoch
            logs["loss"] = self.loss.total(logs)
        if self.validation is not None:
            size = self.options.batch_size or len(self.validation)
            with lock, self.model.inference():
                val = mean_logs(self.model, self.validation, self.loss, self.metrics, size, self.strategy)
            logs.update({f"val_{key}": value for key, value in scalars(val).items()})
        return logs

    def _weights(self, rows: Any, count: int) -> tuple[Any, float, np.ndarray | None]:
        """A batch's sample weights: `wb`, this process's rows' (None: unweighted; a dict by output
        for several outputs), what the loss's sum is divided by, and the global batch's weights
        for the strategy's shard (None: its share is its rows')."""
        feed, part = self.feed, self.strategy.part
        batch_weights = feed.weights(rows)
        if batch_weights is None:
            return None, float(count), None
        mine = part(rows, count)
        wb = feed.weights(mine)
        if not isinstance(batch_weights, dict):
            return wb, float(batch_weights.sum()), batch_weights
        if self.strategy.size > 1 and isinstance(self.loss, OutputLosses):
            # each output's loss is the mean over this process's weights: scaled to its share of the
            # global batch's, over the share of the rows the strategy weighs the gradients by
            local = (mine.stop - mine.start) if isinstance(mine, slice) else len(mine)
            self.loss.scale = {name: (float(wb[name].sum()) / total if (total := float(w.sum())) > 0 else 0.0)
                               * count / local for name, w in batch_weights.items()}
        return wb, float(count), None

    def _tell(self, hook: str, *args: Any) -> None:
        with self.model.lock:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)


# -- checks and helpers shared by the three loops ---------------------------------------------------


def data_feed(model: Trainable, loss: Loss, x: object, y: object, owner: str, purpose: str, names: str = "x and y",
              x_name: str = "x", sample_weight: object = None, metrics: list[Metric] = (),  # type: ignore[assignment]
              y_name: str = "y") -> Feed:
    """(x, y) checked, as a Feed: arrays in memory converted now, array-likes (memmaps, h5py,
    lazy datasets) per batch, to the model's dtype; with the sample weights, one per row.
    x and y follow the model's inputs and outputs: one array, or a list or dict of them."""
    if getattr(model, "input_format", "array") != "array":
        several = several_inputs(model, x, owner, purpose, x_name)
        if isinstance(loss, OutputLosses):
            return outputs_feed(loss, metrics, several, y, _targets_dtype(model, several), owner, y_name,
                                sample_weight)
        dtype = _targets_dtype(model, several)
        lazy_y = is_lazy(y)
        ys: Any = Lazy(y, owner, y_name) if lazy_y else loss.prepare_target(y, dtype)
        check_rows({**several.sizes(), y_name: len(ys) if ys.ndim else 0}, owner)
        convert = functools.partial(_call_with_dtype, loss.prepare_target, dtype) if lazy_y else _unchanged
        return Feed(several, ys, _unchanged, convert, sample_weights(sample_weight, len(several), owner))
    if is_lazy(x):
        xs: Any = Lazy(x, owner, x_name)
        require_rows(xs, owner, purpose, x_name)
        convert_x = _batch_converter(model, owner, xs.dtype)
        dtype = _float_dtype(model, xs.dtype)
    else:
        xs = model.prepare_input(x, owner)
        require_rows(xs, owner, purpose, x_name)
        dtype = xs.dtype if xs.dtype.kind == "f" else model.dtype
        convert_x = _unchanged
    if isinstance(loss, OutputLosses):  # one input, several outputs
        return outputs_feed(loss, metrics, xs, y, dtype, owner, y_name, sample_weight, convert_x, x_name)
    if is_lazy(y):
        ys = Lazy(y, owner, "y")
        convert_y: Any = lambda batch: loss.prepare_target(batch, dtype)  # noqa: E731
    else:
        ys, convert_y = loss.prepare_target(y, dtype), _unchanged
    check_pair(xs, ys, owner, names)
    return Feed(xs, ys, convert_x, convert_y, sample_weights(sample_weight, len(xs), owner))


def several_inputs(model: Trainable, x: object, owner: str, purpose: str, x_name: str = "x") -> Several:
    """x for a model with a list or dict of inputs: each array checked and converted (ids stay
    integers, everything else becomes floats of the model's dtype); array-likes a batch at a time."""
    layout = Layout.inputs(model)
    arrays: dict[str, Any] = {}
    converters: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    labels: dict[str, str] = {}
    for name, value in layout.read(x, owner, x_name).items():
        labels[name] = label = layout.label(x_name, name)
        if is_lazy(value):
            arrays[name] = Lazy(value, owner, label)
            converters[name] = _input_converter(model, owner, label, arrays[name].dtype)
        else:
            arrays[name], converters[name] = _as_input(value, owner, label, model.dtype), _unchanged
        require_rows(arrays[name], owner, purpose, label)
    check_rows({labels[name]: len(array) for name, array in arrays.items()}, owner)
    return Several(arrays, converters, layout.join, labels)


def _as_input(value: object, owner: str, label: str, dtype: np.dtype) -> np.ndarray:
    array = as_numeric(value, label, owner)
    return array if array.dtype.kind in "iuf" else array.astype(dtype)


def _input_converter(model: Trainable, owner: str, label: str, source: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    def convert(batch: np.ndarray) -> np.ndarray:
        batch = as_numeric(batch, label, owner)
        return batch if batch.dtype.kind in "iu" else batch.astype(_float_dtype(model, source), copy=False)

    return convert


def _targets_dtype(model: Trainable, x: Any) -> np.dtype:
    """The float dtype targets become: the first float input's in memory, else the model's."""
    arrays = x.arrays.values() if isinstance(x, Several) else [x]
    for array in arrays:
        if isinstance(array, np.ndarray) and array.dtype.kind == "f":
            return array.dtype
    return model.dtype


def outputs_feed(loss: OutputLosses, metrics: list[Metric], xs: Any, y: object, dtype: np.dtype, owner: str,
                 y_name: str, sample_weight: object, convert_x: Callable[[np.ndarray], np.ndarray] | None = None,
                 x_name: str = "x") -> Feed:
    """The Feed of a model with several outputs: y a dict by output name of the targets that a
    loss or a metric reads, sample weights a dict by output (Several, read with the same rows)."""
    layout = loss.layout
    arrays: dict[str, Any] = {}
    converters: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    labels: dict[str, str] = {}
    needed = needed_outputs(loss, metrics)
    for name, value in layout.read(y, owner, y_name, needed).items():
        if name not in needed:
            continue  # a target nothing reads
        labels[name] = label = layout.label(y_name, name)
        prepare = loss.losses[name].prepare_target if name in loss.losses else _plain_target
        if is_lazy(value):
            arrays[name] = Lazy(value, owner, label)
            converters[name] = functools.partial(_call_with_dtype, prepare, dtype)
        else:
            arrays[name], converters[name] = prepare(value, dtype), _unchanged
    sizes = xs.sizes() if isinstance(xs, Several) else {x_name: len(xs)}
    check_rows({**sizes, **{labels[name]: len(array) if array.ndim else 0 for name, array in arrays.items()}}, owner)
    ys = Several(arrays, converters, dict, labels)
    return Feed(xs, ys, convert_x or _unchanged, _unchanged, output_weights(loss, sample_weight, len(xs), owner))


def _plain_target(y: object, dtype: np.dtype) -> np.ndarray:
    """The target of an output with metrics but no loss: numbers, floats in the model's dtype."""
    array = as_numeric(y, "y", "Model")
    return array.astype(dtype) if array.dtype.kind in "bf" else array


def _call_with_dtype(prepare: Callable[[object, np.dtype], np.ndarray], dtype: np.dtype,
                     batch: np.ndarray) -> np.ndarray:
    return prepare(batch, dtype)


def output_weights(loss: OutputLosses, spec: object, rows: int, owner: str) -> Several | None:
    """Per-output sample weights: `spec` a dict by output name, or one set for every output with
    a loss; each one per row, checked as `sample_weights` does; None when none is given."""
    if spec is None:
        return None
    chosen = (per_output(spec, loss.layout, owner, "sample_weight", single=False) if isinstance(spec, dict)
              else {name: spec for name in loss.losses})
    arrays: dict[str, Any] = {}
    converters: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name, value in chosen.items():
        label = f"sample_weight[{name!r}]" if isinstance(spec, dict) else "sample_weight"
        if value is None or name not in loss.losses:
            continue  # an output without a loss has nothing to weigh
        arrays[name] = sample_weights(value, rows, owner, label)
        converters[name] = functools.partial(check_weights, owner=owner, name=f"rows of {label}")
        if isinstance(arrays[name], np.ndarray) and not arrays[name].sum() > 0:
            raise ArgumentError(f"{owner}({label}=...): every row of output {name!r} weighs 0; give some "
                                "rows a positive weight")
    return Several(arrays, converters, dict, {}) if arrays else None


def sample_weights(weights: object, rows: int, owner: str, name: str = "sample_weight") -> Any:
    """`weights` checked against `rows` rows: None, float64 in memory, or a Lazy source (checked as read)."""
    if weights is None:
        return None
    source: Any
    if is_lazy(weights):
        source = Lazy(weights, owner, name)
        if source.ndim != 1 and source.shape[1:] != (1,):
            raise ShapeError(f"{owner}: {name} must have one weight per row, shape ({rows},); got shape "
                             f"{source.shape}")
    else:
        source = check_weights(weights, owner, name)
    if len(source) != rows:
        raise ShapeError(f"{owner}: {name} has {len(source)} weights but x has {rows} rows; give one weight per row")
    return source


def class_weights(model: Trainable, loss: Loss, feed: Feed, spec: object) -> Any:
    """The class weight table (index -> weight) of `Model.train(class_weight=...)`, folded into
    the training feed's sample weights (each row's weight times its class's); None without one.
    Class names map through model.metadata["classes"]; "balanced" counts the training rows."""
    if spec is None:
        return None
    if isinstance(loss, OutputLosses):
        return output_class_weights(model, loss, feed, spec)
    labels = _all_labels(loss, feed)
    names = model.metadata.get("classes")
    names = [str(name) for name in names] if isinstance(names, list) else None
    count = max(len(names or ()), int(labels.max()) + 1 if len(labels) else 0)
    table = np.ones(count)
    if spec == "balanced":  # as scikit-learn's compute_class_weight: n / (classes present * count)
        counts = np.bincount(labels, minlength=count)
        present = counts > 0
        table[present] = len(labels) / (int(present.sum()) * counts[present])
    elif isinstance(spec, dict):  # TrainOptions checked that it is "balanced" or a table
        for key, weight in spec.items():
            if isinstance(key, str) and key.isdigit() and (names is None or key not in names):
                key = int(key)  # a TOML table's keys are strings: [class_weight] 0 = 2.0 means class 0
            if isinstance(key, str):
                if names is None:
                    raise ArgumentError(
                        f"{OWNER}(class_weight=...): the class name {key!r} needs the data's class names "
                        "(model.metadata[\"classes\"]), and the model has none; key the weights by class index")
                if key not in names:
                    raise ArgumentError(f"{OWNER}(class_weight=...): unknown class {key!r}; the classes are "
                                        f"{', '.join(map(repr, names))}")
                index = names.index(key)
            else:
                if key >= count:
                    raise ArgumentError(f"{OWNER}(class_weight=...): unknown class {key}; the training labels are "
                                        f"classes 0 to {count - 1}")
                index = key
            table[index] = weight
    weights = table[labels] if feed.w is None else table[labels] * _all_weights(feed)
    if not weights.sum() > 0:
        raise ArgumentError(f"{OWNER}(class_weight=...): every training row weighs 0 (class weights "
                            f"{table.tolist()}); give some class a positive weight")
    feed.w = weights
    return table


def output_class_weights(model: Trainable, loss: OutputLosses, feed: Feed, spec: object) -> dict[str, Any]:
    """Class weights per output (`spec` a dict by output name, or one for every output with a
    loss), each folded into that output's sample weights as `class_weights` does; the tables by output."""
    chosen = (per_output(spec, loss.layout, OWNER, "class_weight", single=False)
              if isinstance(spec, dict) and spec and all(key in loss.layout.names for key in spec)
              else {name: spec for name in loss.losses})
    weights = feed.w if isinstance(feed.w, Several) else Several({}, {}, dict, {})
    tables = {}
    for name, table in chosen.items():
        if table is None or name not in loss.losses:
            continue
        one = Feed(feed.y.arrays[name], feed.y.arrays[name], _unchanged, feed.y.converters[name],
                   weights.arrays.get(name))
        tables[name] = class_weights(model, loss.losses[name], one, table)
        weights.arrays[name], weights.converters[name] = one.w, _unchanged
    feed.w = weights if weights.arrays else feed.w
    return tables


def _all_labels(loss: Loss, feed: Feed) -> np.ndarray:
    """The class of every row of the feed, read in chunks when y is read lazily."""
    if not isinstance(feed.y, Lazy):
        return loss.labels(feed.y)
    step = 1 << 16
    return np.concatenate([loss.labels(feed.convert_y(feed.y.read(slice(start, start + step))))
                           for start in range(0, len(feed.y), step)])


def _all_weights(feed: Feed) -> np.ndarray:
    if not isinstance(feed.w, Lazy):
        return np.asarray(feed.w, dtype=np.float64)
    step = 1 << 16
    return np.concatenate([feed.weights(slice(start, start + step)) for start in range(0, len(feed.w), step)])


def _ratio(total: float, weight: float) -> float:
    """A weighted mean's sum over its weight; NaN (not logged) when nothing weighed anything."""
    return float(total) / weight if weight > 0 else float("nan")


def _unchanged(batch: np.ndarray) -> np.ndarray:
    return batch


def _float_dtype(model: Trainable, source: np.dtype) -> np.dtype:
    """The float dtype batches of `source` become: the model's once it has weights; before, a
    float source's own (as an array in memory would build the model), else float32."""
    if model.parameters() or source.kind != "f":
        return model.dtype
    return source


def _batch_converter(model: Trainable, owner: str, source: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """How a batch read from an array-like becomes model input: ids stay integers, everything
    else floats of `_float_dtype` (uint8 images become float32)."""

    def convert(batch: np.ndarray) -> np.ndarray:
        batch = model.prepare_input(batch, owner)
        return batch if batch.dtype.kind != "f" else batch.astype(_float_dtype(model, source), copy=False)

    return convert


def validation_split_point(n: int, validation_split: float) -> int:
    """How many of n rows train when the last `validation_split` of them validate: like Keras,
    the tail of the data, taken before any shuffling."""
    return int(n * (1 - validation_split))


def require_rows(x: Any, owner: str, purpose: str, name: str = "x") -> None:
    """A ShapeError unless `x` has at least one row: an empty array leaves nothing to do."""
    if x.ndim == 0 or len(x) == 0:
        raise ShapeError(
            f"{owner}: {name} has no rows (shape {x.shape}), so there is nothing to {purpose}; "
            "pass an array with at least one sample along the first axis"
        )


def check_pair(x: Any, y: Any, owner: str, names: str = "x and y") -> None:
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ShapeError(
            f"{owner}: {names} have shapes {x.shape} and {y.shape}; they need the same number "
            "of samples along the first axis (one row of y per row of x)"
        )


def check_metric_names(metrics: list[Metric], owner: str) -> None:
    names = [m.name for m in metrics]
    for name in names:
        if names.count(name) > 1 or name == "loss":
            raise ArgumentError(
                f"{owner}(metrics=...): two results would be called {name!r}; give each metric "
                "once, and none named 'loss'"
            )


def reset_metrics(metrics: list[Metric]) -> None:
    for metric in metrics:
        metric.reset()


def metric_results(metrics: list[Metric], strategy: Strategy) -> dict[str, Any]:
    """Each metric's result over the rows of every process: with several, its state is summed
    over them first (Strategy.reduce_state), so the result is the one of a single process."""
    if strategy.size > 1:
        for metric in metrics:
            metric.set_state(strategy.reduce_state(metric.state(), metric.concatenated))
    return {metric.name: metric.result() for metric in metrics}


def scalars(results: dict[str, Any]) -> dict[str, float]:
    """The results a history keeps: numbers (a confusion matrix is evaluate's, not a curve)."""
    return {key: float(value) for key, value in results.items() if np.ndim(value) == 0}


def mean_logs(
    model: Trainable, feed: Feed, loss: Loss, metrics: list[Metric], batch_size: int, strategy: Strategy | None = None,
) -> dict[str, Any]:
    """The loss's sample-weighted mean and the metrics' results over the feed, in batches, without
    training; with a strategy of several processes, each computes its shard and the sums (the
    metrics' states) are combined."""
    strategy = strategy or Strategy()
    totals = np.zeros(2)  # the loss's sum, and its weight: the rows or their sample weights
    reset_metrics(metrics)
    n = len(feed)
    part = strategy.shard(slice(0, n), n)
    start, stop = (part.start, part.stop) if isinstance(part, slice) else (0, n)
    batches = [slice(start + b.start, min(start + b.stop, stop)) for b in in_order(stop - start, batch_size)]
    for rows, (xb, yb) in prefetched(batches, feed.batch, int(feed.lazy),
                                  lambda rows: f"rows {rows.start} to {rows.stop - 1}"):
        pred = model.forward(xb)
        wb = feed.weights(rows)  # this batch's sample weights, None when unweighted (by output for several)
        weight = rows_of(xb) if wb is None or isinstance(wb, dict) else float(wb.sum())
        value = float(loss(pred, yb) if wb is None else loss(pred, yb, sample_weight=wb))
        totals += [value * weight, weight]
        update_metrics(metrics, pred, yb, sample_weight=wb)
    strategy.allreduce(totals)
    logs: dict[str, Any] = {"loss": _ratio(totals[0], totals[1])}
    logs.update(metric_results(metrics, strategy))
    if isinstance(loss, OutputLosses):  # the weighted sum of the outputs' losses over the set
        logs["loss"] = loss.total(logs)
    return logs


# -- adapting ----------------------------------------------------------------------------------------


def check_adaptable(model: Trainable, owner: str) -> None:
    """An ArgumentError for a layer that has still to adapt inside another: only the model's own
    layers adapt (the rows reach them through the layers before; nothing says how they reach a
    layer inside a combinator)."""
    for i, outer in enumerate(model.layers):
        for inner in outer.walk()[1:]:
            if adapts(inner) and not inner.adapted:
                raise ArgumentError(
                    f"{owner}: Model.layers[{i}] ({type(outer).__name__}) holds {inner!r}, which has to learn its "
                    "statistics from data, but only layers at the top level of a model adapt; move it to the "
                    "model's list of layers, or give it its statistics when you make it"
                )


def adapt(model: Trainable, feed: Feed, batch_size: int | None, owner: str, every: bool) -> None:
    """Let the model's adapting layers learn from the rows of `feed` (each that has not learned yet,
    or `every` one), each in turn: the rows stream `batch_size` at a time (a lazy source 256 at a
    time by default, an array in memory whole) through the layers before it, in inference mode."""
    chosen = [i for i, layer in enumerate(model.layers) if adapts(layer) and (every or not layer.adapted)]
    if not chosen:
        return
    if getattr(model, "graph", None) is not None:  # layers run through a graph, not in order: no prefix to run
        raise ArgumentError(
            f"{owner}: {model.layers[chosen[0]]!r} has to learn its statistics from data, which a graph model does "
            "not feed it by itself; call its adapt() with the rows it sees (e.g. layer.adapt([x[\"a\"]])) before "
            "training, or give it its statistics when you make it")
    size = batch_size or (LAZY_BATCH if feed.lazy else len(feed))
    batches = list(in_order(len(feed), size))

    def inputs(stop: int) -> Generator[np.ndarray, None, None]:
        loaded = prefetched(batches, feed.inputs, int(feed.lazy),
                            lambda rows: f"rows {rows.start} to {rows.stop - 1} of x")
        for _, xb in loaded:
            yield model.forward(xb, stop)

    with model.lock, model.inference():
        try:
            for i in chosen:
                rows = inputs(i)
                try:
                    model.layers[i].adapt(rows)
                finally:
                    rows.close()  # an early stop ends the reading thread
        finally:
            model.release()


def adapt_to(model: Trainable, x: object, batch_size: int | None) -> None:
    """Model.adapt: every adapting layer of the model learns afresh from x."""
    owner = "Model.adapt"
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    if not any(adapts(layer) for layer in model.layers):
        raise ArgumentError(
            f"{owner}: no layer of the model learns from data "
            f"({', '.join(type(layer).__name__ for layer in model.layers)}); "
            "add one that does, such as Normalization, at the top level of the model"
        )
    check_adaptable(model, owner)
    if is_lazy(x):
        source = Lazy(x, owner, "x")
        require_rows(source, owner, "adapt to")
        feed = Feed(source, source, _batch_converter(model, owner, source.dtype), _unchanged)
    else:
        array = model.prepare_input(x, owner)
        require_rows(array, owner, "adapt to")
        feed = Feed(array, array, _unchanged, _unchanged)
    adapt(model, feed, batch_size, owner, every=True)


# -- evaluate and predict -------------------------------------------------------------------------------

LAZY_BATCH = 256  # rows per forward pass over an array-like when no batch_size is given


def evaluate(model: Trainable, x: object, y: object, loss: object, metrics: object,
             batch_size: int | None, report: bool = False, sample_weight: object = None,
             loss_weights: object = None) -> dict[str, Any]:
    """The loss and metrics over (x, y), weighted by `sample_weight` (one per row) when given; with
    `report`, also "report": per-class scores (the REPORT_METRIC's `report`). For several outputs
    as in training: `loss` and `loss_weights` per output, the total and `<output>_<name>` keys."""
    owner = "Model.evaluate"
    if loss is None and model.loss is None:
        raise ArgumentError(f"{owner}: pass loss=... (the model has not been trained with one)")
    chosen_loss: Loss = make_loss(model, model.loss if loss is None else loss, loss_weights, owner)
    chosen = make_metrics(model, metrics, chosen_loss, owner)
    check_metric_names(chosen, owner)
    if report and isinstance(chosen_loss, OutputLosses):
        raise ArgumentError(f"{owner}(report=True): the report is per class of one output, and the model has "
                            f"several ({chosen_loss.layout.listed()}); evaluate without report")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    feed = data_feed(model, chosen_loss, x, y, owner, "evaluate", sample_weight=sample_weight, metrics=chosen)
    # the report's counts: the registered confusion_matrix metric, alongside the chosen ones
    counting: list[Metric] = [resolve("metric", REPORT_METRIC, "report", owner)] if report else []
    for metric in counting:
        metric.name = " report"  # a key no chosen metric can have (names are checked)
        if getattr(chosen_loss, "from_logits", False):  # one output's decision: logit > 0, probability > 0.5
            metric.threshold = 0.0  # type: ignore[attr-defined]
    try:  # in inference mode: Model.evaluate runs this inside model.inference()
        result = mean_logs(model, feed, chosen_loss, [*chosen, *counting],
                           batch_size or (LAZY_BATCH if feed.lazy else len(feed)))
    finally:
        model.release()
    if counting:  # its state is the whole set's (merged over processes by mean_logs)
        result.pop(counting[0].name)
        result["report"] = counting[0].report(model.metadata.get("classes"))  # type: ignore[attr-defined]
    return result


def predict(model: Trainable, x: object, batch_size: int | None) -> Any:
    """The model's outputs for x (its structure: one array, a list or a dict of them), in batches."""
    owner = "Model.predict"
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    if getattr(model, "input_format", "array") != "array" or getattr(model, "output_format", "array") != "array":
        return _predict_structured(model, x, batch_size, owner)
    if is_lazy(x):  # read and converted a batch at a time, the next one read while this one runs
        source = Lazy(x, owner, "x")
        require_rows(source, owner, "predict")
        feed = Feed(source, source, _batch_converter(model, owner, source.dtype), _unchanged)
        batches = list(in_order(len(source), batch_size or LAZY_BATCH))
        loaded = prefetched(batches, feed.inputs, 1, lambda rows: f"rows {rows.start} to {rows.stop - 1} of x")
        try:
            return np.concatenate([model.forward(xb) for _, xb in loaded])
        finally:
            model.release()
    x = model.prepare_input(x, owner)
    require_rows(x, owner, "predict")
    try:
        if batch_size is None:
            return model.forward(x)
        return np.concatenate([model.forward(x[batch]) for batch in in_order(len(x), batch_size)])
    finally:
        model.release()


def _predict_structured(model: Trainable, x: object, batch_size: int | None, owner: str) -> Any:
    """predict for a model whose inputs or outputs are a list or dict: every input batched alike,
    each output's batches joined."""
    if getattr(model, "input_format", "array") != "array":
        xs: Any = several_inputs(model, x, owner, "predict")
        lazy = xs.lazy
    elif is_lazy(x):
        xs, lazy = Lazy(x, owner, "x"), True
        require_rows(xs, owner, "predict")
    else:
        xs, lazy = model.prepare_input(x, owner), False
        require_rows(xs, owner, "predict")
    feed = Feed(xs, xs, _batch_converter(model, owner, xs.dtype) if isinstance(xs, Lazy) else _unchanged, _unchanged)
    batches = list(in_order(len(xs), batch_size or (LAZY_BATCH if lazy else len(xs))))
    layout = Layout.outputs(model)
    try:
        outs = [layout.items(model.forward(xb)) for _, xb in prefetched(
            batches, feed.inputs, int(lazy), lambda rows: f"rows {rows.start} to {rows.stop - 1} of x")]
    finally:
        model.release()
    return layout.join({name: outs[0][name] if len(outs) == 1 else np.concatenate([out[name] for out in outs])
                        for name in layout.names})
