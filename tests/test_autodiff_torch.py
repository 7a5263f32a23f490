"""lamina's derivative rules against PyTorch's autograd, op by op, on random shapes with
broadcasting, keepdims, negative axes and repeated indices (float64). Skipped without torch."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.autodiff import Tape, Traced, tracing

torch = pytest.importorskip("torch", reason="compares against PyTorch's autograd: pip install -e '.[torch]'")
F = torch.nn.functional


def _dims(rng, count, low=1, high=4):
    return tuple(int(n) for n in rng.integers(low, high + 1, size=count))


def _broadcasting_pair(rng):
    """Two shapes that broadcast together: some axes of the second are 1 or missing."""
    shape = _dims(rng, int(rng.integers(1, 4)), 2)
    other = tuple(1 if rng.random() < 0.4 else n for n in shape)[int(rng.integers(0, len(shape))):]
    return [rng.normal(size=shape), rng.normal(size=other or (1,))]


def _one(rng, ndim=3, positive=False):
    x = rng.normal(size=_dims(rng, ndim, 2))
    return [np.abs(x) + 0.3 if positive else x]


def _axis(rng, ndim):
    """An axis, negative half of the time."""
    axis = int(rng.integers(0, ndim))
    return axis - ndim if rng.random() < 0.5 else axis


# name -> (inputs from rng, numpy/lamina function, torch function); both take the same arrays.
CASES = {
    # element-wise, one input
    "exp-log-tanh": (lambda r: _one(r, positive=True), lambda x: np.exp(-x) + np.log(x) * np.tanh(x),
                     lambda x: torch.exp(-x) + torch.log(x) * torch.tanh(x)),
    "log1p-expm1-sqrt": (lambda r: _one(r, positive=True), lambda x: np.log1p(x) + np.expm1(x) / np.sqrt(x),
                         lambda x: torch.log1p(x) + torch.expm1(x) / torch.sqrt(x)),
    "square-reciprocal-abs": (lambda r: _one(r), lambda x: np.square(x) + np.reciprocal(np.abs(x) + 1) * np.abs(x),
                              lambda x: torch.square(x) + torch.reciprocal(torch.abs(x) + 1) * torch.abs(x)),
    "sin-cos-neg": (lambda r: _one(r), lambda x: -np.sin(x) * np.cos(2 * x),
                    lambda x: -torch.sin(x) * torch.cos(2 * x)),
    # element-wise, two inputs, broadcasting both ways
    "add-sub-mul-div": (_broadcasting_pair, lambda a, b: (a + b) * (a - b) / (b * b + 1),
                        lambda a, b: (a + b) * (a - b) / (b * b + 1)),
    "power": (lambda r: [np.abs(x) + 0.5 for x in _broadcasting_pair(r)], lambda a, b: a**b + 2.0**b + a**3,
              lambda a, b: a**b + 2.0**b + a**3),
    "maximum-minimum": (_broadcasting_pair, lambda a, b: np.maximum(a, b) * 2 + np.minimum(a, 0.5 * b),
                        lambda a, b: torch.maximum(a, b) * 2 + torch.minimum(a, 0.5 * b)),
    # products
    "matmul-batched": (lambda r: [r.normal(size=(2, 1, 3, 4)), r.normal(size=(3, 4, 2))], lambda a, b: a @ b,
                       lambda a, b: a @ b),
    "matmul-vectors": (lambda r: [r.normal(size=(3, 4)), r.normal(size=4)], lambda a, b: (a @ b) * (b @ a.T @ a @ b),
                       lambda a, b: (a @ b) * (b @ a.T @ a @ b)),
    "dot-einsum": (lambda r: [r.normal(size=(3, 4)), r.normal(size=(4, 2))],
                   lambda a, b: np.dot(a, b) + np.einsum("ij,jk->ik", a, b) * np.einsum("ij->i", a)[:, None],
                   lambda a, b: a @ b + torch.einsum("ij,jk->ik", a, b) * torch.einsum("ij->i", a)[:, None]),
    # reductions
    "sum-mean": (lambda r: _one(r, 3),
                 lambda x: np.sum(x, axis=-1, keepdims=True) * np.mean(x, axis=(0, 2)).sum() + x.mean(),
                 lambda x: torch.sum(x, dim=-1, keepdim=True) * torch.mean(x, dim=(0, 2)).sum() + x.mean()),
    "max-min": (lambda r: _one(r, 3), lambda x: np.max(x, axis=1) + np.min(x, axis=-1, keepdims=True).sum() + x.max(),
                lambda x: torch.amax(x, dim=1) + torch.amin(x, dim=-1, keepdim=True).sum() + x.amax()),
    "var-std": (lambda r: _one(r, 3), lambda x: np.var(x, axis=-2) + np.std(x, axis=0, ddof=1, keepdims=True).sum(),
                lambda x: torch.var(x, dim=-2, correction=0) + torch.std(x, dim=0, correction=1, keepdim=True).sum()),
    "cumsum": (lambda r: _one(r, 2), lambda x: np.cumsum(x, axis=-1) * np.cumsum(x, axis=0),
               lambda x: torch.cumsum(x, -1) * torch.cumsum(x, 0)),
    # shapes
    "reshape-transpose": (lambda r: [r.normal(size=(2, 3, 4))],
                          lambda x: np.transpose(x.reshape(4, 6), (1, 0)).reshape(2, 12) * x.T.reshape(2, 12),
                          lambda x: x.reshape(4, 6).permute(1, 0).reshape(2, 12) * x.permute(2, 1, 0).reshape(2, 12)),
    "swap-move-expand-squeeze": (lambda r: [r.normal(size=(2, 3, 4))],
                                 lambda x: np.squeeze(np.expand_dims(np.moveaxis(np.swapaxes(x, 0, -1), 0, -1), -2),
                                                      axis=-2),
                                 lambda x: torch.movedim(torch.swapaxes(x, 0, -1), 0, -1).unsqueeze(-2).squeeze(-2)),
    "flip-pad": (lambda r: [r.normal(size=(3, 4))], lambda x: np.pad(np.flip(x, -1), ((1, 2), (0, 1))) * 2,
                 lambda x: F.pad(torch.flip(x, (-1,)), (0, 1, 1, 2)) * 2),
    "concatenate-stack-split": (lambda r: [r.normal(size=(3, 4)), r.normal(size=(3, 2))],
                                lambda a, b: np.stack(np.split(np.concatenate([a, b], axis=-1), 3, axis=1),
                                                      axis=0) * 1.5,
                                lambda a, b: torch.stack(torch.chunk(torch.cat([a, b], dim=-1), 3, dim=1),
                                                         dim=0) * 1.5),
    "where-clip": (lambda r: _one(r, 2), lambda x: np.where(x > 0.2, x * x, -x) + np.clip(x, -0.5, 0.7),
                   lambda x: torch.where(x > 0.2, x * x, -x) + torch.clamp(x, -0.5, 0.7)),
    "indexing-repeated": (lambda r: [r.normal(size=(5, 3))],
                          lambda x: x[np.array([0, 3, 3, 1, 0])] * 2 + x[1:, ::2].sum() + x[..., -1:],
                          lambda x: x[torch.tensor([0, 3, 3, 1, 0])] * 2 + x[1:, ::2].sum() + x[..., -1:]),
    # lamina.ops
    "ops-sigmoid-relu-softplus": (lambda r: [3 * _one(r)[0]],
                                  lambda x: lamina.ops.sigmoid(x) * lamina.ops.relu(x) + lamina.ops.softplus(x)
                                  * lamina.ops.tanh(x),
                                  lambda x: torch.sigmoid(x) * torch.relu(x) + F.softplus(x) * torch.tanh(x)),
    "ops-silu-elu-leaky": (lambda r: [3 * _one(r)[0]],
                           lambda x: lamina.ops.silu(x) + lamina.ops.elu(x, 0.7) * lamina.ops.leaky_relu(x, 0.2),
                           lambda x: F.silu(x) + F.elu(x, 0.7) * F.leaky_relu(x, 0.2)),
    "ops-gelu-erf": (lambda r: [2 * _one(r)[0]],
                     lambda x: lamina.ops.gelu(x) + lamina.ops.gelu(x, "tanh") * lamina.ops.erf(x),
                     lambda x: F.gelu(x) + F.gelu(x, approximate="tanh") * torch.erf(x)),
    "ops-softmax-logsoftmax": (lambda r: [3 * _one(r)[0]],
                               lambda x: lamina.ops.softmax(x) * lamina.ops.log_softmax(x, axis=0),
                               lambda x: torch.softmax(x, -1) * torch.log_softmax(x, 0)),
    "ops-logsumexp": (lambda r: [3 * _one(r)[0]],
                      lambda x: lamina.ops.logsumexp(x, axis=1) + lamina.ops.logsumexp(x, axis=-1, keepdims=True).sum(),
                      lambda x: torch.logsumexp(x, 1) + torch.logsumexp(x, -1, keepdim=True).sum()),
}


def lamina_gradients(f, arrays, upstream):
    tape = Tape()
    with tracing(tape):
        leaves = [tape.leaf(a) for a in arrays]
        out = f(*leaves)
    assert isinstance(out, Traced)
    grads = tape.backward(out, upstream)
    return out.value, [grads.get(leaf, np.zeros_like(a)) for leaf, a in zip(leaves, arrays)]


def torch_gradients(f, arrays, upstream):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = f(*tensors)
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(CASES))
def test_gradients_equal_torch_autograd(name, seed):
    make, mine, theirs = CASES[name]
    rng = np.random.default_rng(seed)
    arrays = make(rng)
    value = mine(*arrays)
    upstream = rng.normal(size=np.shape(value))
    out, grads = lamina_gradients(mine, arrays, upstream)
    expected_out, expected = torch_gradients(theirs, arrays, upstream)
    np.testing.assert_allclose(out, expected_out, rtol=1e-10, atol=1e-12)
    for i, (got, want) in enumerate(zip(grads, expected)):
        assert got.shape == want.shape, f"input {i}: gradient shape {got.shape}, torch {want.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11, err_msg=f"input {i}")


def test_every_supported_function_is_compared_with_torch():
    """A new rule without a torch comparison here fails this test."""
    import inspect

    source = inspect.getsource(__import__(__name__))
    names = [name.removeprefix("np.") for name, (training, _) in lamina.autodiff.SUPPORTED.items()
             if name.startswith("np.") and training == "yes"]
    aliases = {"true_divide": "/", "negative": "-", "positive": "-", "add": "+", "subtract": "-", "multiply": "*",
               "absolute": "np.abs", "amax": "max", "amin": "min", "power": "**"}
    missing = [n for n in names
               if f"np.{n}(" not in source and aliases.get(n, "@@") not in source and f".{n}(" not in source]
    assert not missing, f"compare these with torch: {missing}"
    for op in lamina.ops.__all__:
        assert f"lamina.ops.{op}(" in source, f"compare lamina.ops.{op} with torch"
