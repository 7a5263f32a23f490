"""Normalisation layers: BatchNorm (with running statistics) and LayerNorm."""
from __future__ import annotations

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
    """

    keeps = ("_xhat", "_inv_std")  # what forward keeps for backward

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
        if self.training:
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
        self._batch_stats = self.training
        return xhat * self.weight.value.reshape(view) + self.bias.value.reshape(view)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self.weight is None or self.bias is None:
            raise lamina.LaminaError(f"{self!r}: backward was called before forward; call the layer on an input first")
        xhat, axes, view = self._xhat, self._axes, self._view
        self.weight.grad += (grad * xhat).sum(axis=axes)
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

    conformance_cases = [Case(shape=(3, 4), wrong_shape=(3, 5)), Case(shape=(2, 3, 4))]

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = lamina.checks.positive_number(eps, "eps", "LayerNorm", example=1e-5)
        self.weight: lamina.Parameter | None = None
        self.bias: lamina.Parameter | None = None

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {} if self.weight is None or self.bias is None else {"weight": self.weight, "bias": self.bias}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1 or x.shape[-1] == 0:
            raise lamina.ShapeError(f"LayerNorm needs at least one feature on the last axis to normalise over, got shape {np.shape(x)}")
        features = x.shape[-1]
        if self.weight is None or self.bias is None:
            dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
            self.weight = lamina.Parameter(np.ones(features, dtype=dtype))
            self.bias = lamina.Parameter(np.zeros(features, dtype=dtype))
        if features != self.weight.shape[0]:
            raise lamina.ShapeError(f"LayerNorm was built for {self.weight.shape[0]} features (last axis) but got shape {x.shape}")
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
        self.weight.grad += ones @ gx
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


@lamina.hookimpl
def register_layers(register):
    register(BatchNorm, aliases=("BatchNorm1d", "BatchNorm2d"))
    register(LayerNorm)
