"""Plain numpy references for the conformance kit's `reference` property: what RNN, LSTM, GRU,
MultiHeadAttention and TransformerBlock must output with their current weights.

Written from the equations (PyTorch's documentation), step by step and head by head, in float64,
sharing no code with the layers: a reference that reused the layer's tricks (halved sigmoid
rows, fused projections, transposed scores) would repeat its mistakes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _weights(layer: Any, suffix: str) -> tuple[np.ndarray, ...]:
    params = layer.parameters()
    return tuple(np.asarray(params[name + suffix].value, np.float64)
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _rnn_cell(layer: Any, w: tuple[np.ndarray, ...], x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
    w_ih, w_hh, b_ih, b_hh = w
    a = x_t @ w_ih.T + b_ih + state @ w_hh.T + b_hh
    h = np.tanh(a) if layer.nonlinearity == "tanh" else np.maximum(a, 0.0)
    return h, h


def _lstm_cell(layer: Any, w: tuple[np.ndarray, ...], x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
    w_ih, w_hh, b_ih, b_hh = w
    h, c = state
    i, f, g, o = np.split(x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=-1)  # PyTorch's row order
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _gru_cell(layer: Any, w: tuple[np.ndarray, ...], x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
    w_ih, w_hh, b_ih, b_hh = w
    i_r, i_z, i_n = np.split(x_t @ w_ih.T + b_ih, 3, axis=-1)
    h_r, h_z, h_n = np.split(state @ w_hh.T + b_hh, 3, axis=-1)
    r, z = _sigmoid(i_r + h_r), _sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    h = (1.0 - z) * n + z * state
    return h, h


def _recurrent(layer: Any, x: np.ndarray, cell: Any, paired: bool = False) -> np.ndarray:
    """Each direction step by step from zero states; PyTorch's output (every h_t, or h_n)."""
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    outputs, finals = [], []
    for suffix in ("", "_reverse") if layer.bidirectional else ("",):
        w = _weights(layer, suffix)
        zeros = np.zeros((batch, layer.units))
        state: Any = (zeros, zeros) if paired else zeros
        hs = [np.empty(0)] * steps
        for t in reversed(range(steps)) if suffix else range(steps):
            hs[t], state = cell(layer, w, x[:, t], state)
            final = hs[t]
        outputs.append(np.stack(hs, axis=1))
        finals.append(final if steps else zeros)
    return np.concatenate(outputs if layer.return_sequences else finals, axis=-1)


def rnn(layer: Any, x: np.ndarray) -> np.ndarray:
    """torch.nn.RNN's output: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    return _recurrent(layer, x, _rnn_cell)


def lstm(layer: Any, x: np.ndarray) -> np.ndarray:
    """torch.nn.LSTM's output, gates i, f, g, o."""
    return _recurrent(layer, x, _lstm_cell, paired=True)


def gru(layer: Any, x: np.ndarray) -> np.ndarray:
    """torch.nn.GRU's output, gates r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn))."""
    return _recurrent(layer, x, _gru_cell)


def _attention(x: np.ndarray, heads: int, causal: bool, w_in: np.ndarray, b_in: np.ndarray, w_out: np.ndarray,
               b_out: np.ndarray) -> np.ndarray:
    batch, time, embed = x.shape
    width = embed // heads
    q, k, v = np.split(x @ w_in.T + b_in, 3, axis=-1)
    out = np.zeros((batch, time, embed))
    for h in range(heads):  # head h reads features h*width ... (h+1)*width - 1 of q, k and v
        part = slice(h * width, (h + 1) * width)
        for b in range(batch):
            scores = q[b, :, part] @ k[b, :, part].T / math.sqrt(width)  # (query, key)
            if causal:
                scores = np.where(np.arange(time)[None, :] > np.arange(time)[:, None], -np.inf, scores)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            out[b, :, part] = weights @ v[b, :, part]
    return out @ w_out.T + b_out


def multi_head_attention(layer: Any, x: np.ndarray) -> np.ndarray:
    """torch.nn.MultiheadAttention(batch_first=True)(x, x, x), without dropout."""
    p = {name: np.asarray(param.value, np.float64) for name, param in layer.parameters().items()}
    return _attention(np.asarray(x, np.float64), layer.num_heads, layer.causal, p["in_proj_weight"],
                      p["in_proj_bias"], p["out_proj_weight"], p["out_proj_bias"])


def _layer_norm(norm: Any, x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * np.asarray(norm.weight.value, np.float64) + norm.bias.value


def _linear(linear: Any, x: np.ndarray) -> np.ndarray:
    return x @ np.asarray(linear.weight.value, np.float64) + np.asarray(linear.bias.value, np.float64)


_erf = np.vectorize(math.erf)


def transformer_block(layer: Any, x: np.ndarray) -> np.ndarray:
    """torch.nn.TransformerEncoderLayer(batch_first=True) without dropout, pre- or post-norm."""
    x = np.asarray(x, np.float64)

    def attend(z: np.ndarray) -> np.ndarray:
        return multi_head_attention(layer.attention, z)

    def feed_forward(z: np.ndarray) -> np.ndarray:
        h = _linear(layer.linear1, z)
        h = h * 0.5 * (1.0 + _erf(h / math.sqrt(2.0))) if layer.activation == "gelu" else np.maximum(h, 0.0)
        return _linear(layer.linear2, h)

    if layer.norm_first:
        h = x + attend(_layer_norm(layer.norm1, x))
        return h + feed_forward(_layer_norm(layer.norm2, h))
    h = _layer_norm(layer.norm1, x + attend(x))
    return _layer_norm(layer.norm2, h + feed_forward(h))
