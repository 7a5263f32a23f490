"""The loops behind `Model.train`, `Model.evaluate` and `Model.predict`."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from lamina.callback import Callback
from lamina.checks import describe, fraction, positive_int, positive_number
from lamina.console import silenced
from lamina.errors import ArgumentError, NonFiniteError, ShapeError
from lamina.history import History
from lamina.loss import Loss
from lamina.metric import Metric
from lamina.optimizer import Optimizer
from lamina.parameter import Parameter
from lamina.registry import resolve
from lamina.strategy import Strategy, activated

if TYPE_CHECKING:
    from lamina.model import Model

OWNER = "Model.train"


def _as_list(value: object, kind: str, argument: str, owner: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Metric, Callback)) or not isinstance(value, Iterable):
        value = [value]
    return [resolve(kind, item, argument, owner) for item in value]


def validation_split_point(n: int, validation_split: float) -> int:
    """How many of n rows train when the last `validation_split` of them validate: like Keras,
    the tail of the data, taken before any shuffling."""
    return int(n * (1 - validation_split))


def require_rows(x: np.ndarray, owner: str, purpose: str, name: str = "x") -> None:
    """A ShapeError unless `x` has at least one row: an empty array leaves nothing to do."""
    if x.ndim == 0 or len(x) == 0:
        raise ShapeError(
            f"{owner}: {name} has no rows (shape {x.shape}), so there is nothing to {purpose}; "
            "pass an array with at least one sample along the first axis"
        )


def _check_pair(x: np.ndarray, y: np.ndarray, owner: str, names: str = "x and y") -> None:
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ShapeError(
            f"{owner}: {names} have shapes {x.shape} and {y.shape}; they need the same number "
            "of samples along the first axis (one row of y per row of x)"
        )


def _batches(n: int, batch_size: int, order: np.ndarray | None) -> Iterable[slice | np.ndarray]:
    """Slices of the data in order (views, no copy), or index arrays into one permutation."""
    for start in range(0, n, batch_size):
        if order is None:
            yield slice(start, start + batch_size)
        else:
            yield order[start : start + batch_size]


class _NoBar:
    """Stands in for a progress bar that is not shown: creating a tqdm costs ~20 us."""

    shown = False

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(show: bool, **kwargs: Any) -> Any:
    if not show:
        return _NoBar()
    bar = tqdm(**kwargs)
    bar.shown = True
    return bar


def _finite(array: np.ndarray) -> bool:
    # The dot product of an array with itself is NaN or infinite when any element is; it reads
    # the array once through BLAS (3x faster than a sum) and allocates nothing. It overflows
    # for elements beyond ~1e19 in float32, hence the exact recheck on that rare path.
    return math.isfinite(float(np.vdot(array, array))) or bool(np.isfinite(array).all())


class _Step:
    """One training step on this process's shard of a global batch: forward, backward, the sum
    of gradients over processes, the non-finite guard, gradient clipping and the update."""

    def __init__(
        self, model: Model, loss: Loss, optim: Optimizer, clip_grad_norm: float | None, strategy: Strategy
    ) -> None:
        self.model, self.loss, self.optim, self.strategy = model, loss, optim, strategy
        self.clip = clip_grad_norm
        # The loss may take over the last layer's backward (CrossEntropy after Softmax).
        self.fused = loss.fuses_with(model.layers[-1])
        self.params: list[Parameter] | None = None

    def __call__(
        self, xb: np.ndarray, yb: np.ndarray, count: int, metrics: list[Metric], where: tuple[int, int, int, int]
    ) -> list[float]:
        """Returns the sums over the global batch of `count` rows: [loss, *metrics] (each a mean
        per row times the rows). `where` is (epoch, epochs, batch, batches) for messages."""
        model, loss, strategy = self.model, self.loss, self.strategy
        rows = len(xb)
        strategy.fraction = rows / count
        pred = model.forward(xb)
        value = float(loss(pred, yb))
        if self.params is None:  # layers build their parameters on the first forward pass
            self.params = list(model.parameters().values())
        for param in self.params:
            param.grad.fill(0)
        if self.fused:
            model.backward(loss.fused_backward(), from_layer=len(model.layers) - 2)
        else:
            model.backward(loss.backward())
        sums = [value * rows, *(float(metric(pred, yb)) * rows for metric in metrics)]
        if strategy.size > 1:
            sums = self._reduce(sums, strategy.fraction)
        if not math.isfinite(sums[0]):
            raise NonFiniteError(self._diagnose(xb, yb, where))
        if not all(_finite(param.grad) for param in self.params):
            raise NonFiniteError(self._diagnose(xb, yb, where))
        if self.clip is not None:
            clip_grad_norm(self.params, self.clip)
        self.optim.step(self.params)
        return sums

    def _reduce(self, sums: list[float], fraction: float) -> list[float]:
        """One allreduce per step: every gradient, weighted by this shard's share of the global
        batch (so the sum is the gradient of the global batch's mean loss), and the sums, packed
        into one buffer in the gradients' own dtype (float32 halves the bytes sent)."""
        grads = [param.grad for param in self.params]
        total = sum(g.size for g in grads)
        buffer = np.empty(total + len(sums), dtype=grads[0].dtype if grads else np.float64)
        offset = 0
        for grad in grads:
            np.multiply(grad.ravel(), fraction, out=buffer[offset : offset + grad.size])
            offset += grad.size
        buffer[offset:] = sums
        self.strategy.allreduce(buffer)
        offset = 0
        for grad in grads:
            grad[...] = buffer[offset : offset + grad.size].reshape(grad.shape)
            offset += grad.size
        return buffer[offset:].astype(np.float64).tolist()

    def _diagnose(self, xb: np.ndarray, yb: np.ndarray, where: tuple[int, int, int, int]) -> str:
        """Replay the step layer by layer to name the first non-finite output or gradient."""
        epoch, epochs, batch, batches = where
        model, loss = self.model, self.loss
        culprit = None
        if not np.isfinite(xb).all():
            culprit = "the input batch x contains NaN or infinity"
        elif yb.dtype.kind == "f" and not np.isfinite(yb).all():
            culprit = "the targets y contain NaN or infinity"
        out = xb
        for i, layer in enumerate(model.layers):
            if culprit:
                break
            out = layer(out)
            if not np.isfinite(out).all():
                culprit = f"the output of Model.layers[{i}], {layer!r}, is not finite"
        if culprit is None:
            if not math.isfinite(float(loss(out, yb))):
                culprit = f"the loss {loss!r} is not finite although its input is"
            else:
                model.zero_grad()
                grad = loss.backward()
                for i in range(len(model.layers) - 1, -1, -1):
                    layer = model.layers[i]
                    grad = layer.backward(grad)
                    bad = [n for n, p in layer.parameters().items() if not np.isfinite(p.grad).all()]
                    if bad or not np.isfinite(grad).all():
                        what = f"the gradient of its {', '.join(bad)}" if bad else "its input gradient"
                        culprit = f"{what} in Model.layers[{i}], {layer!r}, is not finite"
                        break
        culprit = culprit or "a value is not finite"
        return (
            f"training stopped at epoch {epoch + 1}/{epochs}, batch {batch + 1}/{batches}: "
            f"{culprit}. The model keeps its weights from before "
            "this step. Try a lower learning rate or clip_grad_norm=1.0, and check the data "
            "for NaN or infinity."
        )


def clip_grad_norm(params: Sequence[Parameter], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most `max_norm` (as
    torch.nn.utils.clip_grad_norm_ does); returns the norm before clipping."""
    total = math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for param in params:
            param.grad *= scale
    return total


def _mean_logs(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    loss: Loss,
    metrics: list[Metric],
    batch_size: int,
    strategy: Strategy | None = None,
) -> dict[str, float]:
    """Sample-weighted means of the loss and metrics over (x, y), in batches, without training;
    with a strategy of several processes, each computes its shard and the sums are combined."""
    names = ["loss", *(m.name for m in metrics)]
    totals = np.zeros(len(names))
    part = strategy.shard(len(x)) if strategy is not None else slice(0, len(x))
    xs, ys = x[part], y[part]
    for batch in _batches(len(xs), batch_size, None):
        xb, yb = xs[batch], ys[batch]
        pred = model.forward(xb)
        totals += [float(loss(pred, yb)) * len(xb), *(float(m(pred, yb)) * len(xb) for m in metrics)]
    if strategy is not None and strategy.size > 1:
        strategy.allreduce(totals)
    return {name: float(total) / len(x) for name, total in zip(names, totals)}


def _check_metric_names(metrics: list[Metric], owner: str) -> None:
    names = [m.name for m in metrics]
    for name in names:
        if names.count(name) > 1 or name == "loss":
            raise ArgumentError(
                f"{owner}(metrics=...): two results would be called {name!r}; give each metric "
                "once, and none named 'loss'"
            )


def fit(model: Model, x: object, y: object, *, strategy: Strategy | str | None = None, **options: Any) -> History:
    """Model.train's loop, run under its strategy (only the main process shows progress)."""
    strategy = resolve("strategy", "local" if strategy is None else strategy, "strategy", OWNER)
    options["verbose"] = options["verbose"] and strategy.is_main
    with activated(strategy), silenced(not options["verbose"]):
        return _fit(model, x, y, strategy=strategy, **options)


def _fit(
    model: Model,
    x: object,
    y: object,
    *,
    optim: Optimizer | str | None,
    loss: Loss | str,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    validation_data: tuple[object, object] | None,
    validation_split: float,
    metrics: Iterable[Metric | str] | Metric | str,
    callbacks: Iterable[Callback | str] | Callback | str,
    verbose: bool,
    clip_grad_norm: float | None,
    resume_from: str | os.PathLike[str] | None,
    strategy: Strategy,
) -> History:
    loss = resolve("loss", loss, "loss", OWNER)
    metrics = _as_list(metrics, "metric", "metrics", OWNER)
    callbacks = _as_list(callbacks, "callback", "callbacks", OWNER)
    _check_metric_names(metrics, OWNER)
    epochs = positive_int(epochs, "epochs", OWNER, example=100)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", OWNER, example=32)
    validation_split = fraction(validation_split, "validation_split", OWNER)
    if clip_grad_norm is not None:
        clip_grad_norm = positive_number(clip_grad_norm, "clip_grad_norm", OWNER, example=1.0)

    x = model.prepare_input(x, OWNER)
    require_rows(x, OWNER, "train on")
    history, start = History(), 0
    if resume_from is not None:
        optim, history, start = _resume(model, x, optim, resume_from)
    else:
        optim = resolve("optimizer", "SGD" if optim is None else optim, "optim", OWNER)
    dtype = x.dtype if x.dtype.kind == "f" else model.dtype
    y = loss.prepare_target(y, dtype)
    _check_pair(x, y, OWNER)
    x_val = y_val = None
    if validation_data is not None:
        if validation_split:
            raise ArgumentError(f"{OWNER}: pass validation_data or validation_split, not both")
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ArgumentError(
                f"{OWNER}(validation_data={describe(validation_data)}): expected a pair (x_val, y_val)"
            )
        x_val = model.prepare_input(validation_data[0], OWNER)
        require_rows(x_val, OWNER, "validate on", "validation_data's x_val")
        y_val = loss.prepare_target(validation_data[1], dtype)
        _check_pair(x_val, y_val, OWNER, "validation_data's x_val and y_val")
    elif validation_split:
        split_at = validation_split_point(len(x), validation_split)
        if split_at == len(x) or split_at == 0:
            raise ArgumentError(
                f"{OWNER}(validation_split={validation_split}): with {len(x)} samples this leaves "
                f"{len(x) - split_at} for validation and {split_at} for training; both need at least one"
            )
        x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]

    n = len(x)
    size = n if batch_size is None else min(batch_size, n)
    n_batches = math.ceil(n / size)
    smallest = n - (n_batches - 1) * size
    if strategy.size > 1 and smallest < strategy.size:
        raise ArgumentError(
            f"{OWNER}(batch_size={batch_size}): with {strategy.size} processes every batch needs at "
            f"least {strategy.size} rows, but {'the last batch' if smallest < size else 'each batch'} "
            f"of the {n} training rows has {smallest}; use a batch_size of at least {strategy.size} "
            f"that leaves no smaller remainder"
        )
    if not model.parameters() and n:
        # Build the layers before the first permutation, in every strategy, so that processes
        # and single runs draw from the generator in the same order.
        model.predict(x[:1])
    strategy.begin(model)
    step = _Step(model, loss, optim, clip_grad_norm, strategy)
    model.optimizer, model.loss, model.metrics, model.stop_training = optim, loss, metrics, False
    model.history = history
    logs: dict[str, float] = {}
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin({})

    epoch_bar = _bar(verbose and n_batches == 1, total=epochs, desc="train", unit="epoch")
    # numpy's overflow and invalid-value warnings are silenced while training: the guard in
    # _Step stops at the first non-finite loss or gradient with an error that names the layer.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        model.set_training(True)
        try:
            for epoch in range(start, epochs):
                for callback in callbacks:
                    callback.on_epoch_begin(epoch, {})
                bar = _bar(verbose and n_batches > 1, total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch")
                # One permutation per epoch from lamina's generator; batches are slices of it.
                order = strategy.permutation(n) if shuffle and n_batches > 1 else None
                names = ["loss", *(m.name for m in metrics)]
                totals = np.zeros(len(names))
                seen = 0
                for index, batch in enumerate(_batches(n, size, order)):
                    count = len(range(n)[batch]) if isinstance(batch, slice) else len(batch)
                    mine = strategy.shard(count)
                    rows = range(n)[batch][mine] if isinstance(batch, slice) else batch[mine]
                    if isinstance(rows, range):
                        rows = slice(rows.start, rows.stop)  # a view, not a copy
                    xb, yb = x[rows], y[rows]
                    totals += step(xb, yb, count, metrics, (epoch, epochs, index, n_batches))
                    seen += count
                    if bar.shown and index % 10 == 0:  # running means, cheaply
                        bar.set_postfix({k: f"{v / seen:.4g}" for k, v in zip(names, totals)}, refresh=False)
                    bar.update(1)
                logs = {key: float(total) / n for key, total in zip(names, totals)}
                if x_val is not None:
                    model.set_training(False)
                    val = _mean_logs(model, x_val, y_val, loss, metrics, batch_size or len(x_val), strategy)
                    logs.update({f"val_{key}": value for key, value in val.items()})
                    model.set_training(True)
                for callback in callbacks:
                    callback.on_epoch_end(epoch, logs)
                history.record(epoch, logs)
                if verbose:
                    shown = {key: f"{value:.4g}" for key, value in logs.items()}
                    bar.set_postfix(shown, refresh=False)
                    epoch_bar.set_postfix(shown, refresh=False)
                bar.close()
                epoch_bar.update(1)
                if model.stop_training:
                    break
        except BaseException as err:
            strategy.fail(err)  # other processes must not wait for this one in a collective
            raise
        finally:
            model.set_training(False)
            epoch_bar.close()
    for callback in callbacks:
        callback.on_train_end(logs)
    return history


def _resume(model: Model, x: np.ndarray, optim: Any, path: str | os.PathLike[str]) -> tuple[Optimizer, History, int]:
    """Restore a checkpoint into `model`: weights, buffers, optimizer state, the generator and
    the history; returns (optimizer, history, epochs done)."""
    from lamina.saving import load_model

    owner = f"{OWNER}(resume_from={str(path)!r})"
    if not model.parameters() and len(x):
        model.predict(x[:1])  # build the layers first: building draws from the generator
    saved = load_model(path)  # ...which the checkpoint then puts back where it was
    if saved.progress is None or saved.optimizer is None:
        raise ArgumentError(f"{owner}: the file is a saved model, not a checkpoint; write checkpoints with the Checkpoint callback")
    mine, theirs = model.parameters(), saved.parameters()
    if {k: p.shape for k, p in mine.items()} != {k: p.shape for k, p in theirs.items()}:
        raise ShapeError(
            f"{owner}: the checkpoint's weights ({', '.join(f'{k} {p.shape}' for k, p in theirs.items())}) "
            f"do not fit this model's ({', '.join(f'{k} {p.shape}' for k, p in mine.items())}); resume the same architecture"
        )
    for name, param in mine.items():
        param.value[...] = theirs[name].value
    for name, buffer in model.buffers().items():
        buffer[...] = saved.buffers()[name]
    restored = saved.optimizer
    if optim is not None:
        given = resolve("optimizer", optim, "optim", OWNER)
        if type(given) is not type(restored):
            raise ArgumentError(
                f"{owner}: the checkpoint was trained with {restored!r} but optim={given!r} was given; "
                "leave optim out to continue with the checkpoint's optimizer"
            )
    restored.rekey_state({theirs[name]: mine[name] for name in mine})
    progress = saved.progress
    return restored, History.from_dict(progress.get("history", {})), int(progress["epoch"])


def evaluate(
    model: Model,
    x: object,
    y: object,
    loss: Loss | str | None,
    metrics: Iterable[Metric | str] | Metric | str,
    batch_size: int | None,
) -> dict[str, float]:
    owner = "Model.evaluate"
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ArgumentError(f"{owner}: pass loss=... (the model has not been trained with one)")
    loss = resolve("loss", loss, "loss", owner)
    metrics = _as_list(metrics, "metric", "metrics", owner)
    _check_metric_names(metrics, owner)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    x = model.prepare_input(x, owner)
    require_rows(x, owner, "evaluate")
    y = loss.prepare_target(y, x.dtype if x.dtype.kind == "f" else model.dtype)
    _check_pair(x, y, owner)
    model.set_training(False)
    try:
        return _mean_logs(model, x, y, loss, metrics, batch_size or len(x))
    finally:
        model.release()


def predict(model: Model, x: object, batch_size: int | None) -> np.ndarray:
    owner = "Model.predict"
    x = model.prepare_input(x, owner)
    require_rows(x, owner, "predict")
    model.set_training(False)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", owner, example=256)
    try:
        if batch_size is None:
            return model.forward(x)
        return np.concatenate([model.forward(x[batch]) for batch in _batches(len(x), batch_size, None)])
    finally:
        model.release()
