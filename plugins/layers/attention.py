"""Attention and Transformers: MultiHeadAttention, TransformerBlock, and position encodings.

TransformerBlock is written forward-only (lamina derives its backward); MultiHeadAttention
writes its backward by hand (the fast path: it is most of a Transformer's step). The block is
made of lamina's own layers (MultiHeadAttention, LayerNorm, Linear,
Dropout) as sublayers. Shapes and parameter layouts follow PyTorch's batch_first modules.
"""
from __future__ import annotations

import math

import numpy as np

import lamina
from lamina.case import Case
from lamina.plugins.layers import _references

ACTIVATIONS = ("gelu", "relu")


def _sequences(x: np.ndarray, owner: str, nonempty: bool = False) -> None:
    if np.ndim(x) != 3:
        raise lamina.ShapeError(
            f"{owner} needs input of shape (batch, time, features), got {np.shape(x)}; an Embedding "
            "before it turns (batch, time) ids into that"
        )
    if nonempty and np.shape(x)[1] == 0:  # attention's softmax over no keys has no value
        raise lamina.ShapeError(
            f"{owner} needs sequences of at least one time step, got shape {np.shape(x)}; leave out empty "
            "sequences, or pad them to length 1"
        )


class MultiHeadAttention(lamina.Layer):
    """Self-attention over (batch, time, embed) -> (batch, time, embed), as
    torch.nn.MultiheadAttention(embed, num_heads, batch_first=True) called as mha(x, x, x).

    Parameters "in_proj_weight" (3E, E), "in_proj_bias" (3E,), "out_proj_weight" (E, E),
    "out_proj_bias" (E,) (PyTorch's out_proj.weight and out_proj.bias). Each head attends with
    softmax(q k^T / sqrt(E / num_heads)); `causal=True` hides later positions from each
    position; `dropout` drops attention weights while training.
    """

    keeps = ("_rows", "_heads", "_weights", "_mask", "_context")
    torch_layout = {"out_proj_weight": "out_proj.weight", "out_proj_bias": "out_proj.bias"}

    # One head: the property tests widen the input by 0-3 features, which must still split
    # into the heads (several heads are checked in lamina's gradient and PyTorch tests).
    # The reference knows no dropout mask: the dropout case checks causality (same draws each call).
    conformance_cases = [
        Case({"num_heads": 1}, (2, 3, 4), wrong_shape=(2, 3, 6), reference=_references.multi_head_attention),
        Case({"num_heads": 1, "causal": True, "dropout": 0.2}, (2, 4, 3), causal_axis=1),
        Case({"num_heads": 1, "causal": True}, (2, 5, 3), reference=_references.multi_head_attention, causal_axis=1),
    ]

    def __init__(self, num_heads: int, causal: bool = False, dropout: float = 0.0) -> None:
        self.num_heads = lamina.checks.positive_int(num_heads, "num_heads", "MultiHeadAttention", example=4)
        self.causal = lamina.checks.boolean(causal, "causal", "MultiHeadAttention")
        self.dropout = lamina.checks.fraction(dropout, "dropout", "MultiHeadAttention")

    def build(self, x: np.ndarray) -> None:
        owner = f"MultiHeadAttention(num_heads={self.num_heads})"
        _sequences(x, owner, nonempty=True)
        embed = x.shape[-1]
        if embed % self.num_heads:
            raise lamina.ShapeError(
                f"{owner}: the embedding width {embed} (last axis of {x.shape}) does not split into "
                f"{self.num_heads} heads; make it a multiple of {self.num_heads}"
            )
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        # PyTorch's initialisation: Glorot-uniform in_proj, U(+-1/sqrt(E)) out_proj, zero biases.
        glorot = lamina.initializer("glorot_uniform")
        self.in_proj_weight = lamina.Parameter(glorot((3 * embed, embed), dtype, embed, 3 * embed))
        self.in_proj_bias = lamina.Parameter(np.zeros(3 * embed, dtype))
        # Glorot-uniform with fans summing to 6E is U(+-1/sqrt(E)); an initializer, so that
        # loading counts the weights against its budget before drawing them.
        self.out_proj_weight = lamina.Parameter(glorot((embed, embed), dtype, 3 * embed, 3 * embed))
        self.out_proj_bias = lamina.Parameter(np.zeros(embed, dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        owner = f"MultiHeadAttention(num_heads={self.num_heads})"
        _sequences(x, owner, nonempty=True)
        batch, time, embed = x.shape
        if embed != self.out_proj_bias.shape[0]:
            raise lamina.ShapeError(
                f"{owner} was built for an embedding width of {self.out_proj_bias.shape[0]} (last axis) "
                f"but got shape {x.shape}; give it inputs of that width, or use a new layer"
            )
        if x.dtype.kind != "f":
            x = x.astype(self.in_proj_weight.value.dtype)
        heads, width = self.num_heads, embed // self.num_heads
        if self.only_building:  # the values do not matter: no time x time scores
            return np.zeros((batch, time, embed), dtype=np.result_type(x.dtype, self.in_proj_weight.value.dtype))
        # Charged before they exist: heads x time x time scores dwarf the output on long sequences.
        self.reserve((batch, heads, time, time), np.result_type(x.dtype, self.in_proj_weight.value.dtype),
                     "the attention scores")
        rows = x.reshape(-1, embed)
        qkv = (rows @ self.in_proj_weight.value.T).reshape(batch, time, 3, heads, width)
        # One pass adds the bias and lays q, k, v out head by head, (3, batch, heads, time,
        # width): every product below then runs on contiguous matrices.
        projected = np.empty((3, batch, heads, time, width), dtype=qkv.dtype)
        np.add(qkv.transpose(2, 0, 3, 1, 4), self.in_proj_bias.value.reshape(3, 1, heads, 1, width), out=projected)
        q, k, v = projected
        q *= 1.0 / math.sqrt(width)  # scaling q scales the scores: half the work
        # The scores transposed, (batch, heads, key, query): the softmax over the keys then
        # runs down axis -2, whole rows at a time (3x faster in numpy than along the last axis).
        weights = k @ q.swapaxes(-1, -2)
        if self.causal:  # query i sees keys j <= i only
            weights += _causal_bias(time, weights.dtype)
        weights -= weights.max(axis=-2, keepdims=True)
        np.exp(weights, out=weights)
        weights *= 1.0 / weights.sum(axis=-2, keepdims=True)
        mask = None
        if self.training and self.dropout > 0:
            mask = ((lamina.rng().random(weights.shape) >= self.dropout)
                    * np.asarray(1.0 / (1.0 - self.dropout), weights.dtype))
        attended = weights if mask is None else weights * mask
        context = (attended.swapaxes(-1, -2) @ v).transpose(0, 2, 1, 3).reshape(batch * time, embed)
        out = context @ self.out_proj_weight.value.T
        out += self.out_proj_bias.value
        self._rows, self._heads = rows, projected
        self._weights, self._mask, self._context = weights, mask, context
        return out.reshape(batch, time, embed)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        # Written by hand (the fast path): the forward-only version spent half a Transformer
        # step re-slicing the projections. Checked against finite differences and torch.
        weights, mask = self._weights, self._mask  # (batch, heads, key, query)
        q, k, v = self._heads  # q already scaled by 1/sqrt(width)
        batch, heads, time, width = q.shape
        embed = heads * width
        g = grad.reshape(-1, embed)
        if self.out_proj_weight.trainable:  # a frozen parameter's gradient is never computed
            self.out_proj_weight.grad += g.T @ self._context
        if self.out_proj_bias.trainable:
            self.out_proj_bias.grad += np.ones(g.shape[0], dtype=g.dtype) @ g
        d_context = np.ascontiguousarray(
            (g @ self.out_proj_weight.value).reshape(batch, time, heads, width).transpose(0, 2, 1, 3))
        attended = weights if mask is None else weights * mask
        d_heads = np.empty((3, batch, heads, time, width), dtype=grad.dtype)
        np.matmul(attended, d_context, out=d_heads[2])  # d_v
        d_weights = v @ d_context.swapaxes(-1, -2)
        if mask is not None:
            d_weights *= mask
        # softmax over the keys: d_scores = w * (d_w - sum_keys(d_w * w))
        d_weights *= weights
        d_scores = d_weights
        d_scores -= weights * d_weights.sum(axis=-2, keepdims=True)
        np.matmul(d_scores.swapaxes(-1, -2), k, out=d_heads[0])
        d_heads[0] *= 1.0 / math.sqrt(width)  # d_q, through the scaling
        np.matmul(d_scores, q, out=d_heads[1])  # d_k (q scaled: the scale is already in)
        d_rows = d_heads.transpose(1, 3, 0, 2, 4).reshape(-1, 3 * embed)
        if self.in_proj_weight.trainable:
            self.in_proj_weight.grad += d_rows.T @ self._rows
        if self.in_proj_bias.trainable:
            self.in_proj_bias.grad += np.ones(d_rows.shape[0], dtype=d_rows.dtype) @ d_rows
        if not self.needs_input_grad:
            return None
        return (d_rows @ self.in_proj_weight.value).reshape(batch, time, embed)

    def to_onnx(self, graph, x):
        """The same computation in ONNX operators (the opsets lamina writes have no attention op)."""
        _, time, embed = graph.shape(x)
        heads, width = self.num_heads, embed // self.num_heads

        def project(rows: str, weight: lamina.Parameter, bias: lamina.Parameter, name: str) -> str:
            w = graph.op("Transpose", graph.parameter(weight, f"{name}_weight"), perm=[1, 0])
            return graph.op("Add", graph.op("MatMul", rows, w), graph.parameter(bias, f"{name}_bias"))

        qkv = graph.op("Reshape", project(x, self.in_proj_weight, self.in_proj_bias, "in_proj"),
                       graph.ints([0, 0, 3, heads, width], "shape"))
        qkv = graph.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # (3, batch, heads, time, width)
        q, k, v = (graph.op("Gather", qkv, graph.constant(np.int64(i), "index", np.int64), axis=0) for i in range(3))
        q = graph.op("Mul", q, graph.constant(1.0 / math.sqrt(width), "scale", like=x))
        scores = graph.op("MatMul", q, graph.op("Transpose", k, perm=[0, 1, 3, 2]))  # (batch, heads, query, key)
        if self.causal:  # -inf where key > query, made by the graph: no time x time array in the file
            positions = np.arange(time, dtype=np.int64)
            later = graph.op("Greater", graph.constant(positions[None, :], "keys", dtype=np.int64),
                             graph.constant(positions[:, None], "queries", dtype=np.int64))
            hidden = graph.op("Where", later, graph.constant(-np.inf, "hidden", like=x),
                              graph.constant(0.0, "seen", like=x))
            scores = graph.op("Add", scores, hidden)
        context = graph.op("MatMul", graph.op("Softmax", scores, axis=-1), v)
        context = graph.op("Reshape", graph.op("Transpose", context, perm=[0, 2, 1, 3]),
                           graph.ints([0, 0, -1], "shape"))
        return project(context, self.out_proj_weight, self.out_proj_bias, "out_proj")


def _causal_bias(time: int, dtype: np.dtype) -> np.ndarray:
    """(key, query) additions hiding later keys: 0 where key <= query, -inf where key > query."""
    bias = np.zeros((time, time), dtype=dtype)
    bias[np.tri(time, k=-1, dtype=bool)] = -np.inf
    return bias


class TransformerBlock(lamina.Layer):
    """A Transformer encoder layer on (batch, time, embed), as torch.nn.TransformerEncoderLayer(
    embed, num_heads, ff_units, dropout, activation, batch_first=True, norm_first=norm_first).

    norm_first=True:  h = x + drop(attention(norm1(x)));  y = h + drop(ff(norm2(h)))
    norm_first=False: h = norm1(x + drop(attention(x)));  y = norm2(h + drop(ff(h)))
    with ff(z) = linear2(drop(activation(linear1(z)))). Its sublayers, and how their parameters
    map to PyTorch's: attention.in_proj_weight / in_proj_bias = self_attn.in_proj_weight / bias;
    attention.out_proj_weight / out_proj_bias = self_attn.out_proj.weight / bias; norm1, norm2
    weight / bias = the same; linear1.weight = linear1.weight.T and linear2.weight =
    linear2.weight.T (lamina's Linear keeps (in, out)), biases the same.
    """

    torch_layout = {"attention.": "self_attn."}  # the sublayers convert their own entries first

    conformance_cases = [
        Case({"num_heads": 1, "ff_units": 6, "dropout": 0.0}, (2, 3, 4), wrong_shape=(2, 3, 6),
             reference=_references.transformer_block),
        Case({"num_heads": 1, "ff_units": 5, "dropout": 0.0, "causal": True, "norm_first": False, "activation": "relu"},
             (2, 4, 3), reference=_references.transformer_block, causal_axis=1),
    ]

    def __init__(
        self,
        num_heads: int,
        ff_units: int,
        dropout: float = 0.1,
        causal: bool = False,
        norm_first: bool = True,
        activation: str = "gelu",
    ) -> None:
        owner = "TransformerBlock"
        self.num_heads = lamina.checks.positive_int(num_heads, "num_heads", owner, example=4)
        self.ff_units = lamina.checks.positive_int(ff_units, "ff_units", owner, example=512)
        self.dropout = lamina.checks.fraction(dropout, "dropout", owner)
        self.causal = lamina.checks.boolean(causal, "causal", owner)
        self.norm_first = lamina.checks.boolean(norm_first, "norm_first", owner)
        self.activation = lamina.checks.one_of(activation, "activation", owner, ACTIVATIONS)
        self.attention = lamina.layer("MultiHeadAttention", num_heads, causal=causal, dropout=dropout)
        self.norm1, self.norm2 = lamina.layer("LayerNorm"), lamina.layer("LayerNorm")
        self.drop1, self.drop2, self.drop_ff = (lamina.layer("Dropout", dropout) for _ in range(3))

    def build(self, x: np.ndarray) -> None:
        _sequences(x, f"TransformerBlock(num_heads={self.num_heads})", nonempty=True)
        self.linear1 = lamina.layer("Linear", self.ff_units, weight_init="glorot_uniform")
        self.linear2 = lamina.layer("Linear", x.shape[-1], weight_init="glorot_uniform")

    def _feed_forward(self, z: np.ndarray) -> np.ndarray:
        h = self.linear1(z)
        h = lamina.ops.gelu(h) if self.activation == "gelu" else lamina.ops.relu(h)
        return self.linear2(self.drop_ff(h))

    def forward(self, x: np.ndarray) -> np.ndarray:
        owner = f"TransformerBlock(num_heads={self.num_heads})"
        _sequences(x, owner, nonempty=True)
        if x.shape[-1] != self.linear2.units:
            raise lamina.ShapeError(
                f"{owner} was built for an embedding width of {self.linear2.units} (last axis) but got "
                f"shape {x.shape}; give it inputs of that width, or use a new block"
            )
        if self.norm_first:
            h = x + self.drop1(self.attention(self.norm1(x)))
            return h + self.drop2(self._feed_forward(self.norm2(h)))
        h = self.norm1(x + self.drop1(self.attention(x)))
        return self.norm2(h + self.drop2(self._feed_forward(h)))


class PositionalEmbedding(lamina.Layer):
    """Adds a learned vector per position: x (batch, time, features) + weight[:time], with
    "weight" (max_len, features), N(0, 0.02^2) (the width is taken from the first input)."""

    keeps = ("_time",)
    torch_layout = True  # "weight" (max_len, features), as an nn.Embedding(max_len, features) of positions
    conformance_cases = [Case({"max_len": 6}, (2, 4, 3), wrong_shape=(2, 7, 3))]

    def __init__(self, max_len: int) -> None:
        self.max_len = lamina.checks.positive_int(max_len, "max_len", "PositionalEmbedding", example=512)

    def _check(self, x: np.ndarray) -> None:
        _sequences(x, f"PositionalEmbedding(max_len={self.max_len})")
        if x.shape[1] > self.max_len:
            raise lamina.ShapeError(
                f"PositionalEmbedding(max_len={self.max_len}) got a sequence of {x.shape[1]} steps "
                f"(shape {x.shape}); raise max_len or feed shorter windows"
            )

    def build(self, x: np.ndarray) -> None:
        self._check(x)
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        init = lamina.initializer("normal", std=0.02)  # counted against a loading budget before drawing
        self.weight = lamina.Parameter(init((self.max_len, x.shape[-1]), dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        if x.shape[-1] != self.weight.shape[1]:
            raise lamina.ShapeError(
                f"PositionalEmbedding(max_len={self.max_len}) was built for {self.weight.shape[1]} features "
                f"(last axis) but got shape {x.shape}"
            )
        self._time = x.shape[1]
        return x + self.weight.value[: x.shape[1]]

    def backward(self, grad: np.ndarray) -> np.ndarray:
        time = self._time  # first: before any forward, this is the error that says so
        if self.weight.trainable:
            self.weight.grad[:time] += grad.sum(axis=0)
        return grad

    def to_onnx(self, graph, x):
        time = graph.shape(x)[1]  # the time axis is fixed in an exported model; only the batch is free
        table = graph.op("Slice", graph.parameter(self.weight, "weight"), graph.ints([0], "starts"),
                         graph.ints([time], "ends"),
                         graph.ints([0], "axes"))
        return graph.op("Add", x, table)


class SinusoidalPositions(lamina.Layer):
    """Adds the fixed sin/cos position encoding of "Attention Is All You Need" to x (batch,
    time, features): PE[t, 2i] = sin(t / 10000^(2i/features)), PE[t, 2i+1] = cos(the same)."""

    keeps = ("_shape", "_table")  # the table is a cache: dropped after inference too
    conformance_cases = [Case(shape=(2, 4, 6)), Case(shape=(1, 3, 5))]

    def __init__(self) -> None:
        self._table: np.ndarray | None = None

    def table(self, time: int, features: int, dtype: np.dtype) -> np.ndarray:
        """The (time, features) encoding, computed once per shape and dtype."""
        cached = self.__dict__.get("_table")  # release() drops it
        if cached is None or cached.shape != (time, features) or cached.dtype != dtype:
            position = np.arange(time)[:, None]
            rate = np.exp(np.arange(0, features, 2) * (-math.log(10000.0) / features))
            table = np.zeros((time, features))
            table[:, 0::2] = np.sin(position * rate)
            table[:, 1::2] = np.cos(position * rate)[:, : features // 2]
            self._table = cached = table.astype(dtype)
        return cached

    def forward(self, x: np.ndarray) -> np.ndarray:
        _sequences(x, "SinusoidalPositions")
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        self._shape = x.shape
        return x + self.table(x.shape[1], x.shape[2], dtype)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if grad.shape != self._shape:
            raise lamina.ShapeError(f"SinusoidalPositions: the gradient has shape {grad.shape}, "
                                    f"the last output {self._shape}")
        return grad

    def to_onnx(self, graph, x):
        _, time, features = graph.shape(x)
        dtype = graph.dtype_of(x)
        return graph.op("Add", x, graph.constant(self.table(time, features, dtype), "positions", dtype=dtype))


@lamina.hookimpl
def register_layers(register):
    register(MultiHeadAttention)
    register(TransformerBlock)
    register(PositionalEmbedding)
    register(SinusoidalPositions)
