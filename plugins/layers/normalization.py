"""Normalisation layers: BatchNorm (with running statistics), LayerNorm, and Normalization
(per-feature statistics learned from the training rows before training)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

import lamina
from lamina.case import Case


class BatchNorm(lamina.Layer):
    """Normalise each channel (axis 1) over the batch and any spatial axes, then scale and shift.

    x (batch, features) or (batch, channels, ...); "weight" (gamma) and "bias" (beta) of shape
    (channels,). Training uses the batch's statistics and updates the running ones,
    running = (1 - momentum) running + momentum batch (the variance unbiased), as
    torch.nn.BatchNorm1d/2d; inference uses the running statistics.
    Backward (training): dx = inv_std / n * (n dxhat - sum dxhat - xhat sum(dxhat xhat)).

    Frozen (`trainable = False`, as Keras fine-tuning does it): the layer runs in inference
    mode even while the model trains: it normalises with its running statistics and does not
    update them, so a frozen BatchNorm stays bit-identical; the gradient still flows through.
    """

    keeps = ("_xhat", "_inv_std")  # what forward keeps for backward
    # torch.nn.BatchNorm1d/2d(channels, eps, momentum): weight, bias, running_mean, running_var, and
    # num_batches_tracked, which lamina does not count (torch reads it only when momentum=None)
    torch_layout = True
    torch_ignored = ("num_batches_tracked",)

    # Over (batch, features), a batch of 2 normalises each feature to about +-1 whatever the
    # input, so the input gradient is ~eps/var and its finite-difference check is noise.
    conformance_cases = [
        Case(shape=(4, 3), wrong_shape=(4, 5), min_batch=3),
        Case({"momentum": 0.5}, (2, 3, 4, 4), wrong_shape=(2, 2, 4, 4)),
    ]

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        self.momentum = lamina.checks.fraction(momentum, "momentum", "BatchNorm", high_open=False)
        self.eps = lamina.checks.positive_number(eps, "eps", "BatchNorm", example=1e-5)
        self.weight: lamina.Parameter | None = None
        self.bias: lamina.Parameter | None = None
        self.running_mean: np.ndarray | None = None
        self.running_var: np.ndarray | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.weight is None or self.bias is None else {"weight": self.weight, "bias": self.bias}

    def buffers(self) -> dict[str, np.ndarray]:
        if self.running_mean is None or self.running_var is None:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def to_torch(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**state, "num_batches_tracked": np.zeros((), dtype=np.int64)}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise lamina.ShapeError(f"BatchNorm needs (batch, channels, ...) input, got shape {x.shape}")
        channels = x.shape[1]
        if self.weight is None or self.bias is None or self.running_mean is None or self.running_var is None:
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            self.weight = lamina.Parameter(np.ones(channels, dtype=dtype))
            self.bias = lamina.Parameter(np.zeros(channels, dtype=dtype))
            self.running_mean = np.zeros(channels, dtype=dtype)
            self.running_var = np.ones(channels, dtype=dtype)
        if channels != self.weight.shape[0]:
            raise lamina.ShapeError(
                f"BatchNorm was built for {self.weight.shape[0]} channels (axis 1) but got shape {x.shape}"
            )
        axes = (0, *range(2, x.ndim))
        view = (1, channels) + (1,) * (x.ndim - 2)
        batch_stats = self.training and self.trainable  # frozen: inference mode (see the docstring)
        if batch_stats:
            # Over the whole global batch: with several processes, the strategy sums their shards.
            mean, var, count = lamina.active_strategy().batch_statistics(x, axes)
            if count < 2:
                raise lamina.ShapeError(
                    f"BatchNorm in training needs more than one value per channel, got shape "
                    f"{x.shape}; use batches of at least 2 samples"
                )
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (count / (count - 1))
            self._count = count
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        xhat = (x - mean.reshape(view)) * inv_std.reshape(view)
        self._xhat, self._inv_std, self._axes, self._view = xhat, inv_std, axes, view
        self._batch_stats = batch_stats
        return xhat * self.weight.value.reshape(view) + self.bias.value.reshape(view)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        xhat, axes, view = self._xhat, self._axes, self._view
        if self.weight.trainable:  # a frozen parameter's gradient is never computed
            self.weight.grad += (grad * xhat).sum(axis=axes)
        if self.bias.trainable:
            self.bias.grad += grad.sum(axis=axes)
        dxhat = grad * self.weight.value.reshape(view)
        inv_std = self._inv_std.reshape(view)
        if not self._batch_stats:  # inference: a fixed affine map
            return dxhat * inv_std
        n = self._count
        sum_dxhat = dxhat.sum(axis=axes, keepdims=True)
        sum_dxhat_xhat = (dxhat * xhat).sum(axis=axes, keepdims=True)
        sum_dxhat, sum_dxhat_xhat = lamina.active_strategy().batch_gradient_sums(sum_dxhat, sum_dxhat_xhat)
        return (inv_std / n) * (n * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)

    def to_onnx(self, graph, x):  # inference: the running statistics
        if self.weight is None or self.bias is None or self.running_mean is None or self.running_var is None:
            raise lamina.LaminaError(f"{self!r}: it has no weights yet; call the model on data before exporting it")
        return graph.op(
            "BatchNormalization", x, graph.parameter(self.weight, "weight"), graph.parameter(self.bias, "bias"),
            graph.constant(self.running_mean, "running_mean", self.running_mean.dtype),
            graph.constant(self.running_var, "running_var", self.running_var.dtype), epsilon=float(self.eps),
        )


class LayerNorm(lamina.Layer):
    """Normalise each sample over its last axis, then scale and shift: "weight" and "bias" of
    shape (features,), as torch.nn.LayerNorm(features). Backward as BatchNorm's, per row."""

    keeps = ("_xhat", "_inv_std")  # what forward keeps for backward
    torch_layout = True  # torch.nn.LayerNorm(features, eps)

    conformance_cases = [Case(shape=(3, 4), wrong_shape=(3, 5)), Case(shape=(2, 3, 4))]

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = lamina.checks.positive_number(eps, "eps", "LayerNorm", example=1e-5)
        self.weight: lamina.Parameter | None = None
        self.bias: lamina.Parameter | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.weight is None or self.bias is None else {"weight": self.weight, "bias": self.bias}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1 or x.shape[-1] == 0:
            raise lamina.ShapeError("LayerNorm needs at least one feature on the last axis to normalise over, "
                                    f"got shape {np.shape(x)}")
        features = x.shape[-1]
        if self.weight is None or self.bias is None:
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            self.weight = lamina.Parameter(np.ones(features, dtype=dtype))
            self.bias = lamina.Parameter(np.zeros(features, dtype=dtype))
        if features != self.weight.shape[0]:
            raise lamina.ShapeError(f"LayerNorm was built for {self.weight.shape[0]} features (last axis) but got "
                                    f"shape {x.shape}")
        if x.dtype.kind != "f":
            x = x.astype(self.weight.value.dtype)
        # Per row of (rows, features): the row sums are matrix-vector products and every
        # element-wise step writes into an existing buffer (a few passes where numpy's
        # mean/var take a dozen).
        rows = x.reshape(-1, features)
        mean = rows @ np.full(features, 1.0 / features, dtype=rows.dtype)
        xhat = rows - mean[:, None]
        var = np.einsum("ij,ij->i", xhat, xhat)
        var *= 1.0 / features
        var += self.eps
        inv_std = 1.0 / np.sqrt(var)
        xhat *= inv_std[:, None]
        self._xhat, self._inv_std = xhat, inv_std
        out = xhat * self.weight.value
        out += self.bias.value
        return out.reshape(x.shape)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        xhat, inv_std = self._xhat, self._inv_std
        features = xhat.shape[-1]
        g = grad.reshape(-1, features)
        w = self.weight.value
        gx = g * xhat
        ones = np.ones(g.shape[0], dtype=g.dtype)
        if self.weight.trainable:  # a frozen parameter's gradient is never computed
            self.weight.grad += ones @ gx
        if self.bias.trainable:
            self.bias.grad += ones @ g
        # dx = inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = g w, per row
        mean_d = (g @ w) * (1.0 / features)
        mean_dx = (gx @ w) * (1.0 / features)
        dx = g * w
        np.multiply(xhat, mean_dx[:, None], out=gx)
        dx -= gx
        dx -= mean_d[:, None]
        dx *= inv_std[:, None]
        return dx.reshape(grad.shape)

    def to_onnx(self, graph, x):
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: it has no weights yet; call the model on data before exporting it")
        weight, bias = graph.parameter(self.weight, "weight"), graph.parameter(self.bias, "bias")
        if graph.dtype != np.float64:
            return graph.op("LayerNormalization", x, weight, bias, axis=-1, epsilon=float(self.eps))
        # In double, onnxruntime's LayerNormalization kernel is off by ~3e-11; the same maths
        # spelled out in operators is exact to rounding.
        axis = [len(graph.shape(x)) - 1]
        centred = graph.op("Sub", x, graph.reduce("ReduceMean", x, axis, keepdims=True))
        var = graph.reduce("ReduceMean", graph.op("Mul", centred, centred), axis, keepdims=True)
        std = graph.op("Sqrt", graph.op("Add", var, graph.constant(self.eps, "eps")))
        return graph.op("Add", graph.op("Mul", graph.op("Div", centred, std), weight), bias)


class Normalization(lamina.Layer):
    """Standardise each feature: y = (x - mean) / sqrt(variance), as Keras' Normalization.

    The mean and variance of each feature are learned from the training rows when training
    starts (Keras' `adapt`: `Model.train` does it before the first step, reading the rows a
    batch at a time; `Model.adapt(x)` does it on demand), or given: `mean` and `variance`,
    numbers or arrays broadcastable to the features. `axis` is the feature axis, or a list of
    them, kept (-1: the last); the statistics reduce over every other axis, the batch included
    (axis=[1, 2, 3] on images: one mean per pixel and channel). The variance is the population
    one (numpy's var), computed in float64. A feature whose variance is zero (to float64
    rounding, scikit-learn's test) is only centred. No trainable parameters: "mean",
    "variance" and "count" (the rows they came from) are buffers, saved with the model.
    Backward: dx = grad / sqrt(variance).
    """

    keeps = ("_scale",)  # what forward keeps for backward

    conformance_cases = [
        Case({"mean": 0.5, "variance": 2.0}, shape=(4, 3)),
        Case({"axis": 1, "mean": [0.5, -1.0, 2.0], "variance": [1.0, 4.0, 0.25]}, shape=(2, 3, 4),
             wrong_shape=(2, 4, 4)),
    ]

    def __init__(self, axis: int | Sequence[int] = -1, mean: object = None, variance: object = None) -> None:
        self.axis = _feature_axes(axis)
        if (mean is None) != (variance is None):
            given, missing = ("mean", "variance") if variance is None else ("variance", "mean")
            raise lamina.ArgumentError(
                f"Normalization({given}=...): {given} was given without {missing}; give both, e.g. "
                "Normalization(mean=[0.0, 5.0], variance=[1.0, 4.0]), or neither to learn them from the training rows"
            )
        self.mean = _statistic(mean, "mean")
        self.variance = _statistic(variance, "variance")
        if self.variance is not None and np.any(np.asarray(self.variance) < 0):
            raise lamina.ArgumentError(f"Normalization(variance={self.variance!r}): a variance must be >= 0")
        if self.mean is not None:
            try:
                np.broadcast_shapes(np.asarray(self.mean).shape, np.asarray(self.variance).shape)
            except ValueError:
                raise lamina.ArgumentError(
                    f"Normalization: mean has shape {np.asarray(self.mean).shape} and variance "
                    f"{np.asarray(self.variance).shape}; "
                    "give one value per feature in each (or one number for all)"
                ) from None
        # The buffers, made by build() once the feature shape is known.
        self.stat_mean: np.ndarray | None = None
        self.stat_variance: np.ndarray | None = None
        self.count: np.ndarray | None = None

    @property
    def adapted(self) -> bool:
        return self.mean is not None or (self.count is not None and float(self.count[0]) > 0)

    def buffers(self) -> dict[str, np.ndarray]:
        if self.stat_mean is None or self.stat_variance is None or self.count is None:
            return {}
        return {"mean": self.stat_mean, "variance": self.stat_variance, "count": self.count}

    def build(self, x: np.ndarray) -> None:
        if self.stat_mean is not None:  # adapt() built it already
            return
        _, features, _ = self._layout(x)
        if self.mean is None:
            self.stat_mean, self.stat_variance = np.zeros(features), np.ones(features)
        else:
            try:
                self.stat_mean = np.broadcast_to(np.asarray(self.mean, dtype=np.float64), features).copy()
                self.stat_variance = np.broadcast_to(np.asarray(self.variance, dtype=np.float64), features).copy()
            except ValueError:
                raise lamina.ShapeError(
                    f"{self!r}: the given mean and variance (shapes {np.asarray(self.mean).shape} and "
                    f"{np.asarray(self.variance).shape}) "
                    f"do not fit the features of shape {features} on axis {self.axis} of the input of shape {x.shape}; "
                    "give one value per feature (or one number for all)"
                ) from None
        self.count = np.zeros(1)

    def _layout(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The feature axes of x (non-negative), the feature shape, and the statistics' broadcast shape."""
        axes = (self.axis,) if isinstance(self.axis, int) else self.axis
        if x.ndim < 2 or any(not -x.ndim <= a < x.ndim or a % x.ndim == 0 for a in axes):
            raise lamina.ShapeError(
                f"{self!r} needs (batch, features, ...) input with axis {self.axis} a feature axis (not the batch "
                f"axis 0), got shape {x.shape}"
            )
        kept = tuple(sorted(a % x.ndim for a in axes))
        if len(set(kept)) != len(kept):
            raise lamina.ShapeError(f"{self!r}: axis {self.axis} names one axis twice for the input of shape {x.shape}")
        features = tuple(x.shape[a] for a in kept)
        if self.stat_mean is not None and features != self.stat_mean.shape:
            raise lamina.ShapeError(
                f"{self!r} was built for features of shape {self.stat_mean.shape} (axis {self.axis}) but got input of "
                f"shape {x.shape}"
            )
        view = tuple(x.shape[a] if a in kept else 1 for a in range(x.ndim))
        return kept, features, view

    def _constants(self, x: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """The mean and 1 / std in `dtype`, shaped to broadcast against x."""
        if self.stat_mean is None or self.stat_variance is None or self.count is None:  # forward checks adapted first
            raise lamina.LaminaError(f"{self!r} has no statistics yet: train the model or call model.adapt(x) first")
        _, _, view = self._layout(x)
        mean, var = self.stat_mean, self.stat_variance
        # zero up to the rounding of its float64 computation (scikit-learn's test): only centred
        n, eps = max(float(self.count[0]), 1.0), np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        scale = 1.0 / np.sqrt(np.where(constant, 1.0, var))
        return mean.astype(dtype).reshape(view), scale.astype(dtype).reshape(view)

    def forward(self, x: np.ndarray) -> np.ndarray:
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        mean, scale = self._constants(x, dtype)
        self._scale = scale
        return (x - mean) * scale

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:  # the model's first layer in training: nobody reads it
            return None
        return grad * self._scale

    def adapt(self, batches: Iterable[np.ndarray]) -> None:
        """Learn each feature's mean and variance from the batches (the layer's inputs), afresh;
        the batches' statistics merge in float64 (Chan, Golub and LeVeque), so the result does
        not depend on the batch size beyond rounding."""
        if self.mean is not None:
            raise lamina.ArgumentError(
                f"{self!r}: its mean and variance were given, so it learns nothing from data; make it without "
                "mean and variance to learn them"
            )
        count, mean, m2 = 0, np.zeros(0), np.zeros(0)
        for batch in batches:
            x = np.asarray(batch)
            if self.stat_mean is None:
                self.build(x)
            kept, _, view = self._layout(x)
            others = tuple(a for a in range(x.ndim) if a not in kept)
            n = math.prod(x.shape[a] for a in others)
            if n == 0:
                continue
            values = x.astype(np.float64, copy=False)
            batch_mean = values.mean(axis=others)
            centred = values - batch_mean.reshape(view)
            batch_m2 = np.square(centred).sum(axis=others)
            if count == 0:
                count, mean, m2 = n, batch_mean, batch_m2
                continue
            total = count + n
            delta = batch_mean - mean
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if count == 0 or self.stat_mean is None or self.stat_variance is None or self.count is None:
            raise lamina.ShapeError(f"{self!r}: adapt was given no rows to learn the mean and variance from")
        variance = m2 / count
        bad = ~(np.isfinite(mean) & np.isfinite(variance))
        if bad.any():
            where = np.argwhere(bad)[:5].tolist()
            raise lamina.NonFiniteError(
                f"{self!r}: the data's features at {where} (indices into the features of shape {mean.shape}) hold NaN "
                "or infinite values (or overflow float64), so their mean and variance are not finite; clean or "
                "drop those columns before training"
            )
        self.stat_mean[...] = mean
        self.stat_variance[...] = variance
        self.count[0] = count

    def to_onnx(self, graph, x):
        if not self.adapted or self.stat_mean is None:
            raise lamina.LaminaError(f"{self!r}: it has no statistics yet; train the model or call model.adapt(x) "
                                     "before exporting it")
        mean, scale = self._constants(np.empty(graph.shape(x)), graph.dtype_of(x))
        return graph.op("Mul", graph.op("Sub", x, graph.constant(mean, "mean", like=x)),
                        graph.constant(scale, "scale", like=x))


def _feature_axes(axis: object) -> int | tuple[int, ...]:
    """`axis` as an int or a tuple of distinct ints, none of them 0 (the batch axis)."""
    single = isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)
    items: list[object] = [axis] if single else list(axis) if isinstance(axis, (list, tuple)) else []
    axes = tuple(int(a) for a in items if isinstance(a, (int, np.integer)) and not isinstance(a, bool))
    if not axes or len(axes) != len(items) or 0 in axes or len(set(axes)) != len(axes):
        raise lamina.ArgumentError(
            f"Normalization(axis={axis!r}): axis must be a feature axis (an int other than 0, the batch axis) or a "
            "list of distinct ones, e.g. axis=-1 (the last) or axis=[1, 2, 3]"
        )
    return axes[0] if single else axes


def _statistic(value: object, name: str) -> float | list | None:
    """A given mean or variance as a float or nested lists (JSON, for the model file)."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size == 0 or not np.isfinite(array).all() or isinstance(value, (str, bytes, bool)):
        raise lamina.ArgumentError(
            f"Normalization({name}={value!r}): {name} must be a finite number or a non-empty array of them, one per "
            f"feature, e.g. {name}=[0.0, 2.5]"
        )
    result: float | list = array.tolist()
    return result


@lamina.hookimpl
def register_layers(register):
    register(BatchNorm, aliases=("BatchNorm1d", "BatchNorm2d"))
    register(LayerNorm)
    register(Normalization)
