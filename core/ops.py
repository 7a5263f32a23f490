"""`lamina.ops`: what numpy lacks for writing layers, as stable primitives with their derivatives.

Each function is a row of the table of primitives (core/trace/primitives.py): its value (`.value`,
on plain arrays), its derivative (`.grad` for a hand-written backward) and ONNX form (`.to_onnx`). It takes
a numpy array (or a Parameter) and returns one, finite for inputs of any magnitude; inside a
traced forward it records one node with its exact derivative, so `lamina.ops.softmax(x)` is both
faster and more accurate to differentiate than the same formula spelled out in numpy operations.

>>> lamina.ops.softmax(np.array([[1.0, 2.0, 3.0]]))
array([[0.09003057, 0.24472847, 0.66524096]])
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from lamina.errors import ArgumentError
from lamina.trace.primitives import TABLE, Primitive, _axes, _op, _spread, _times

__all__ = [
    "elu", "erf", "gelu", "leaky_relu", "log_softmax", "logsumexp", "relu", "sigmoid", "silu",
    "softmax", "softplus", "tanh",
]



@functools.cache
def _scipy_erf() -> Any:
    """scipy's erf (vectorised, exact in float32 and float64), or None without scipy; looked up at
    the first erf, not when lamina is imported: importing scipy costs ~0.1 s and loads its own
    OpenBLAS into the process."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return erf


_erf_scalar = np.frompyfunc(math.erf, 1, 1)
# Abramowitz and Stegun 7.1.26: |error| < 1.5e-7, about float32's own rounding near 1
_AS = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: Any) -> Any:
    """The error function, element-wise; d/dx = 2/sqrt(pi) exp(-x^2). scipy's when installed; without
    it, exact (math.erf per element) in float64, where gradient checks need every digit, and a
    vectorised approximation within 1.5e-7 in float32, where training runs and math.erf per
    element would dominate a step."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    scipy_erf = _scipy_erf()
    if scipy_erf is not None:
        return np.asarray(scipy_erf(x), dtype=dtype)
    if dtype != np.float32:
        return np.asarray(_erf_scalar(x), dtype=dtype)
    flat, out = np.ascontiguousarray(x).reshape(-1), np.empty(x.size, dtype=np.float32)
    for start in range(0, x.size, _CHUNK):  # in cache-sized pieces: a dozen passes over each piece while it is hot
        _erf32(flat[start : start + _CHUNK], out[start : start + _CHUNK])
    return out.reshape(x.shape)


_CHUNK = 1 << 15


def _erf32(x: np.ndarray, out: np.ndarray) -> None:
    """Abramowitz and Stegun 7.1.26 in float32 into `out`, in place where possible."""
    a = np.abs(x)
    t = a * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    poly = np.multiply(t, np.float32(_AS[4]), out=out)
    for c in (_AS[3], _AS[2], _AS[1], _AS[0]):
        poly += np.float32(c)
        poly *= t
    with np.errstate(over="ignore"):  # x^2 overflowing to inf gives exp(-x^2) = 0, as it should
        np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # poly * exp(-x^2) = erfc(|x|)
    np.subtract(1, poly, out=poly)
    np.copysign(poly, x, out=poly)


# GELU in float32: with z = |x| / sqrt 2, A&S 7.1.26 gives Phi(-|x|) = erfc(z) / 2 =
# t (a1 + ... + a5 t^4) exp(-z^2) / 2 with t = 1 / (1 + p z), and exp(-z^2) = sqrt(2 pi) phi(x):
# so the 1/2 and sqrt(2 pi) ride on the coefficients and phi(x), which dy/dx needs too, is
# computed once.
_GELU_A = tuple(np.float32(a * 0.5 * math.sqrt(2 * math.pi)) for a in _AS)
_GELU_P = np.float32(0.3275911 / math.sqrt(2.0))
_LOG_SQRT_2PI = np.float32(0.5 * math.log(2 * math.pi))
_GELU_CHUNK = 1 << 16
_SIGN_BIT = np.int32(-(2**31))


def _gelu32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x Phi(x) and its derivative Phi(x) + x phi(x), float32, in one sweep over cache-sized
    pieces (~25 passes over each while it is hot, instead of ~35 over the whole array);
    within 5e-7 of the exact values."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out, slope = np.empty_like(flat), np.empty_like(flat)
    size = min(_GELU_CHUNK, flat.size)
    a_buffer, t_buffer = np.empty(size, np.float32), np.empty(size, np.float32)
    with np.errstate(over="ignore"):  # x^2 overflowing to inf gives phi = 0, as it should
        for start in range(0, flat.size, _GELU_CHUNK):
            xs = flat[start : start + _GELU_CHUNK]
            n = xs.size
            a, t, q, e = a_buffer[:n], t_buffer[:n], out[start : start + n], slope[start : start + n]
            np.abs(xs, out=a)
            np.multiply(a, _GELU_P, out=t)
            t += 1
            np.divide(np.float32(1), t, out=t)  # faster than np.reciprocal here
            np.multiply(t, _GELU_A[4], out=q)
            for c in (_GELU_A[3], _GELU_A[2], _GELU_A[1], _GELU_A[0]):
                q += c
                q *= t
            np.square(a, out=e)  # e = phi(x) = exp(-x^2 / 2 - log sqrt(2 pi))
            e *= np.float32(-0.5)
            e -= _LOG_SQRT_2PI
            np.exp(e, out=e)
            q *= e  # Phi(-|x|)
            # Phi(x) = 1/2 + sign(x) (1/2 - Phi(-|x|)); the sign moved over as a bit (np.sign
            # and np.copysign are several times slower than integer operations)
            np.subtract(np.float32(0.5), q, out=q)
            sign_bit = a.view(np.int32)
            np.bitwise_and(xs.view(np.int32), _SIGN_BIT, out=sign_bit)
            np.bitwise_xor(q.view(np.int32), sign_bit, out=q.view(np.int32))
            q += np.float32(0.5)
            e *= xs
            e += q  # dy/dx = Phi(x) + x phi(x)
            q *= xs  # y = x Phi(x)
    return out.reshape(np.shape(x)), slope.reshape(np.shape(x))


def _constant(graph: Any, x: str, number: float) -> str:
    return graph.constant(number, "c", dtype=graph.dtype_of(x))


def _row(value: Any, vjp: Any, onnx: Any, saves: bool = False) -> Primitive:
    row = Primitive(f"lamina.ops.{value.__name__.lstrip('_')}", value, vjp, onnx, operands=("x",), saves=saves)
    TABLE[row.name] = row
    return row


# ONNX's float attributes are float32 and onnxruntime has no double Elu or Softplus: in double,
# these are written out in operators that keep every digit.
def _where_positive(graph: Any, x: str, negative: str, alpha: float) -> str:
    """x where x > 0, else alpha * negative."""
    positive = graph.op("Greater", x, _constant(graph, x, 0.0))
    return graph.op("Where", positive, x, graph.op("Mul", negative, _constant(graph, x, alpha)))


def _onnx_leaky_relu(graph: Any, out: Any, x: str, alpha: float = 0.01) -> str:
    if graph.dtype_of(x) != np.float64:
        return graph.op("LeakyRelu", x, alpha=float(alpha))
    return _where_positive(graph, x, x, alpha)


def _onnx_elu(graph: Any, out: Any, x: str, alpha: float = 1.0) -> str:
    if graph.dtype_of(x) != np.float64:
        return graph.op("Elu", x, alpha=float(alpha))
    negative = graph.op("Sub", graph.op("Exp", graph.op("Min", x, _constant(graph, x, 0.0))), _constant(graph, x, 1.0))
    return _where_positive(graph, x, negative, alpha)


def _onnx_softplus(graph: Any, out: Any, x: str) -> str:
    if graph.dtype_of(x) != np.float64:
        return graph.op("Softplus", x)
    # max(x, 0) + log(1 + exp(-|x|)): finite for any x
    tail = graph.op("Log",
                    graph.op("Add", graph.op("Exp", graph.op("Neg", graph.op("Abs", x))), _constant(graph, x, 1.0)))
    return graph.op("Add", graph.op("Relu", x), tail)


def _onnx_gelu(graph: Any, out: Any, x: str, approximate: str = "none") -> str:
    """0.5 x (1 + erf(x / sqrt 2)), or with tanh(sqrt(2/pi) (x + 0.044715 x^3)) for "tanh"."""
    if approximate == "tanh":
        cube = graph.op("Mul", graph.op("Mul", x, x), x)
        inner = graph.op("Add", x, graph.op("Mul", cube, _constant(graph, x, 0.044715)))
        shape = graph.op("Tanh", graph.op("Mul", inner, _constant(graph, x, math.sqrt(2.0 / math.pi))))
    else:
        shape = graph.op("Erf", graph.op("Mul", x, _constant(graph, x, 1.0 / math.sqrt(2.0))))
    half = graph.op("Mul", x, _constant(graph, x, 0.5))
    return graph.op("Mul", half, graph.op("Add", shape, _constant(graph, x, 1.0)))


def _logsumexp_onnx(graph: Any, out: Any, x: str, axis: Any = -1, keepdims: bool = False) -> str:
    """max + log(sum(exp(x - max))), stable as the value."""
    axes = _axes(axis, graph.example(x).ndim)
    top = graph.reduce("ReduceMax", x, axes, keepdims=True)
    total = graph.reduce("ReduceSum", graph.op("Exp", graph.op("Sub", x, top)), axes, keepdims=True)
    y = graph.op("Add", graph.op("Log", total), top)
    return y if keepdims else graph.op("Squeeze", y, graph.ints(axes, "axes"))


def _sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), element-wise."""
    y = np.tanh(np.multiply(x, 0.5))  # the tanh form equals the logistic function and cannot overflow
    y += 1
    y *= 0.5
    return y


def _relu(x: Any) -> Any:
    """max(x, 0), element-wise; the derivative at 0 is 0 (as PyTorch's)."""
    return np.maximum(x, 0)


def _leaky_relu(x: Any, alpha: float = 0.01) -> Any:
    """x where x > 0, else alpha * x."""
    return np.where(x > 0, x, alpha * x)


def _elu(x: Any, alpha: float = 1.0) -> Any:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # expm1: exact near 0, never overflows


def _softplus(x: Any) -> Any:
    """log(1 + exp(x)), finite for any x; its derivative is sigmoid(x)."""
    x = np.asarray(x)
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


def _silu(x: Any) -> tuple[Any, Any]:
    """x * sigmoid(x) (swish)."""
    s = _sigmoid(x)
    return x * s, s  # s: what the derivative needs


def _gelu(x: Any, approximate: str = "none") -> tuple[Any, Any]:
    """x * Phi(x), Phi the standard normal CDF (as torch.nn.functional.gelu); approximate="tanh"
    uses Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""
    if approximate not in ("none", "tanh"):
        raise ArgumentError(f"lamina.ops.gelu(approximate={approximate!r}): approximate must be 'none' or 'tanh'")
    x = np.asarray(x)
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)
    if x.dtype == np.float32 and x.ndim:  # training's dtype: value and slope in one sweep
        return _gelu32(x)
    cdf = _erf(x * (1.0 / math.sqrt(2.0)))
    cdf += 1.0
    cdf *= 0.5
    return x * cdf, cdf + x * np.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))  # y and dy/dx = Phi(x) + x phi(x)


def _logsumexp(x: Any, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over `axis` (the last by default), with the max subtracted first."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore"):  # every value -inf: the answer is -inf
        out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along `axis` (the last by default)."""
    y = np.exp(x - np.max(x, axis=axis, keepdims=True))  # each row's own max: unchanged result, finite exp
    y /= np.sum(y, axis=axis, keepdims=True)
    return y


def _log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along `axis` (the last by default); pair it with a negative log-likelihood."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _sigmoid_vjp(g: Any, needs: Any, out: Any, x: Any) -> Any:
    """g out (1 - out), in one new array."""
    slope = np.subtract(1, out)
    slope *= out
    return _times(g, slope)


sigmoid = _row(_sigmoid, _sigmoid_vjp, _op("Sigmoid"))
relu = _row(_relu, lambda g, needs, out, x: g * (out > 0), _op("Relu"))
leaky_relu = _row(_leaky_relu, lambda g, needs, out, x, alpha=0.01: g * np.where(x > 0, 1, alpha).astype(x.dtype),
                  _onnx_leaky_relu)
elu = _row(_elu, lambda g, needs, out, x, alpha=1.0: g * np.where(x > 0, 1, out + alpha), _onnx_elu)
softplus = _row(_softplus, lambda g, needs, out, x: g * _sigmoid(x), _onnx_softplus)
silu = _row(_silu, lambda g, needs, s, x: g * (s * (1 + x * (1 - s))),
            lambda graph, out, x: graph.op("Mul", x, graph.op("Sigmoid", x)), saves=True)
erf = _row(_erf, lambda g, needs, out, x: g * (2 / math.sqrt(math.pi)) * np.exp(-x * x), _op("Erf"))
gelu = _row(_gelu, lambda g, needs, slope, x, approximate="none": g * slope, _onnx_gelu, saves=True)
logsumexp = _row(_logsumexp, lambda g, needs, out, x, axis=-1, keepdims=False: _spread(g, x.shape, axis, keepdims)
                 * np.exp(x - _spread(out, x.shape, axis, keepdims)), _logsumexp_onnx)
softmax = _row(_softmax, lambda g, needs, out, x, axis=-1: out * (g - np.sum(g * out, axis=axis, keepdims=True)),
               lambda graph, out, x, axis=-1: graph.op("Softmax", x, axis=int(axis)))
log_softmax = _row(_log_softmax,
                   lambda g, needs, out, x, axis=-1: g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),
                   lambda graph, out, x, axis=-1: graph.op("LogSoftmax", x, axis=int(axis)))
tanh = TABLE[np.tanh]  # numpy's, as a row: for a hand-written Tanh's backward and to_onnx
