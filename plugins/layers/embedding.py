"""Embedding: integer ids to learned vectors."""
from __future__ import annotations

import numpy as np

import lamina
from lamina.case import Case, integers


class Embedding(lamina.Layer):
    """ids (any shape, integers in [0, num_embeddings)) -> vectors (*ids.shape, dim).

    "weight" (num_embeddings, dim), N(0, 1) by default as in PyTorch, in `dtype`. Backward adds
    each output gradient into its id's row (ids that repeat accumulate); ids get no gradient.

    `emb(h, reverse=True)` maps vectors back to scores over the ids, h (..., dim) -> h @ weight.T
    (..., num_embeddings), as Keras' ReversibleEmbedding: one matrix as a language model's input
    and output layer (tied embeddings). In a graph both calls share the weight, and the gradient
    of each adds into it: dW += grad^T h, dh = grad W.
    """

    keeps = ("_ids", "_h", "_reverse")  # what forward keeps for backward, and which way it went
    torch_layout = True  # torch.nn.Embedding(num_embeddings, dim)

    conformance_cases = [Case({"num_embeddings": 7, "dim": 3, "dtype": "float64"}, (4, 3), input=integers(7))]

    integer_input = True

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        weight_init: str | lamina.Initializer | None = None,
        dtype: str = "float32",
    ) -> None:
        self.num_embeddings = lamina.checks.positive_int(num_embeddings, "num_embeddings", "Embedding", example=1000)
        self.dim = lamina.checks.positive_int(dim, "dim", "Embedding", example=32)
        if dtype not in ("float32", "float64"):
            raise lamina.ArgumentError(f"Embedding(dtype={dtype!r}): dtype must be 'float32' or 'float64'")
        self.weight_init = weight_init
        self.dtype = dtype
        shape = (self.num_embeddings, self.dim)
        # N(0, 1) by default, as torch.nn.Embedding
        init = lamina.initializer("normal", std=1.0) if weight_init is None else weight_init
        values = lamina.resolve("initializer", init, "weight_init", "Embedding")(shape, dtype)
        self.weight = lamina.Parameter(values)

    def parameters(self) -> dict[str, lamina.Parameter]:
        return {"weight": self.weight}

    def forward(self, x: np.ndarray, reverse: bool = False) -> np.ndarray:
        self._reverse = lamina.checks.boolean(reverse, "reverse", "Embedding")
        if self._reverse:
            return self._scores(x)
        ids = lamina.checks.as_integers(x, "ids", "Embedding")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise lamina.ArgumentError(
                f"Embedding(num_embeddings={self.num_embeddings}): ids must be in [0, "
                f"{self.num_embeddings}), got values from {ids.min()} to {ids.max()}; raise "
                "num_embeddings or map the ids into range"
            )
        self._ids = ids
        # Charged before it exists: a few ids make an output dim times larger (a file's input
        # shape of 10^8 ids, five floats each, is 2 GB).
        shape = (*ids.shape, self.dim)
        self.reserve(shape, self.weight.value.dtype, "the output", output=True)
        if self.only_building:  # the values do not matter
            return np.zeros(shape, dtype=self.weight.value.dtype)
        return self.weight.value[ids]

    def _scores(self, h: np.ndarray) -> np.ndarray:
        """Reverse mode: h (..., dim) -> h @ weight.T (..., num_embeddings)."""
        lamina.checks.input_shape(h, "Embedding(reverse=True)", last=self.dim)
        h = np.asarray(h)
        if h.dtype.kind != "f":
            raise lamina.ArgumentError(f"Embedding(reverse=True): the input must be float vectors of width "
                                       f"{self.dim}, got an array of {h.dtype}; call it without reverse on ids")
        self._h = h
        shape = (*h.shape[:-1], self.num_embeddings)
        self.reserve(shape, self.weight.value.dtype, "the scores", output=True)
        if self.only_building:
            return np.zeros(shape, dtype=np.result_type(h, self.weight.value))
        return h @ self.weight.value.T

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self._reverse:  # y = h W^T: dW += grad^T h, dh = grad W
            if self.weight.trainable:
                self.weight.grad += grad.reshape(-1, self.num_embeddings).T @ self._h.reshape(-1, self.dim)
            return grad @ self.weight.value if self.needs_input_grad else None
        if self.weight.trainable:  # frozen: nothing to compute
            np.add.at(self.weight.grad, self._ids.ravel(), grad.reshape(-1, self.dim))
        return None

    def to_onnx(self, graph, x, reverse=False):
        if reverse:  # the scores: x @ weight^T, the transposed initializer
            weight = graph.op("Transpose", graph.parameter(self.weight, "weight"), perm=[1, 0])
            return graph.op("MatMul", x, weight)
        if graph.dtype_of(x) != np.int64:
            x = graph.op("Cast", x, to=7)  # int64
        return graph.op("Gather", graph.parameter(self.weight, "weight"), x, axis=0)


@lamina.hookimpl
def register_layers(register):
    register(Embedding)
