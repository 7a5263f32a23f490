"""Finite-difference gradient checks for layers and losses (float64, central differences).

Part of `lamina.testing`; import them from there.

>>> errors = check_layer_gradients(Linear(3), np.random.default_rng(0).normal(size=(4, 2)))
>>> max(errors.values()) < 1e-7
True
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lamina.errors import ArgumentError
from lamina.protocols.layer import Layer
from lamina.protocols.loss import Loss
from lamina.seeding import rng


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / (||a|| + ||n||), the scale-free distance between two gradients (0 when equal)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient shapes differ: analytic {analytic.shape}, numeric {numeric.shape}")
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return float(np.linalg.norm(analytic - numeric) / max(scale, 1e-12))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d x by central differences; `x` is perturbed in place and restored."""
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = f()
        x[index] = original - eps
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def check_layer_gradients(
    layer: Layer, x: np.ndarray | Sequence[np.ndarray], *, training: bool = True, eps: float = 1e-6, seed: int = 0
) -> dict[str, float]:
    """Relative error of `backward` against finite differences, for 'input' and each parameter.

    The scalar checked is sum(layer(x) * r) for a fixed random r, so every output element
    contributes. Run it in float64: pass float64 `x` to a layer that is not yet built.
    Every forward pass sees lamina's generator in the same state, so stochastic layers
    (Dropout) draw the same mask each time. Layers with `integer_input` get no input check.
    A layer that takes a list of arrays (a merge layer) gets a list `x`; its backward returns
    one gradient per input, checked as 'input.0', 'input.1', ...
    """
    integer = layer.integer_input
    listed = isinstance(x, (list, tuple))
    xs = [np.array(item, dtype=np.int64 if integer else np.float64) for item in (x if listed else [x])]
    _require_float64(layer)
    layer.training = training
    generator = rng()
    start = generator.bit_generator.state

    def run() -> np.ndarray:
        generator.bit_generator.state = start
        return layer(xs if listed else xs[0])

    out = run()
    # Its own stream: drawn from default_rng(seed) alone, r could equal an x drawn the same way.
    weights = np.random.default_rng((seed, 0x6C616D)).standard_normal(out.shape)
    params = layer.parameters()
    for param in params.values():
        param.zero_grad()
    input_grad = layer.backward(weights.copy())
    analytic: dict[str, np.ndarray] = {}
    names = [f"input.{i}" for i in range(len(xs))] if listed else ["input"]
    if not integer:
        if input_grad is None:
            raise ArgumentError(
                f"check_layer_gradients: {type(layer).__name__}.backward returned None, not the input "
                "gradient; set layer.needs_input_grad = True (a model sets it False on its first layer)"
            )
        grads = input_grad if listed else [input_grad]
        if len(grads) != len(xs):
            raise ArgumentError(f"check_layer_gradients: {type(layer).__name__}.backward returned {len(grads)} "
                                f"input gradients for {len(xs)} inputs")
        analytic.update(zip(names, grads))
    analytic.update({name: param.grad.copy() for name, param in params.items()})

    def objective() -> float:
        return float(np.sum(run() * weights))

    numeric = {} if integer else {name: numerical_gradient(objective, item, eps) for name, item in zip(names, xs)}
    numeric.update({name: numerical_gradient(objective, p.value, eps) for name, p in params.items()})
    return {name: relative_error(analytic[name], numeric[name]) for name in analytic}


def _require_float64(layer: Layer) -> None:
    narrow = {name: str(p.value.dtype) for name, p in layer.parameters().items() if p.value.dtype != np.float64}
    if narrow:
        # Finite differences with eps=1e-6 on float32 weights measure rounding, not the gradient
        # (errors of ~1e-3 that look like a bug in backward).
        listed = ", ".join(f"{name} ({dtype})" for name, dtype in narrow.items())
        raise ArgumentError(
            f"check_layer_gradients: {type(layer).__name__}'s parameters {listed} are not float64 "
            "(it was built on an earlier, narrower input); finite differences need float64 "
            "parameters: pass a fresh, unbuilt layer, which builds in float64 from the float64 x"
        )


def check_loss_gradients(loss: Loss, pred: np.ndarray, y: np.ndarray, *, eps: float = 1e-6) -> float:
    """Relative error of `loss.backward()` against finite differences of `loss(pred, y)`."""
    pred = np.array(pred, dtype=np.float64)
    loss(pred, y)
    analytic = loss.backward().copy()
    numeric = numerical_gradient(lambda: float(loss(pred, y)), pred, eps)
    return relative_error(analytic, numeric)
