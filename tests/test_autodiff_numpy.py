"""numpy's families inside a forward-only layer: each function's derivative against central finite
differences (float64) and PyTorch's autograd, its ONNX form against onnxruntime (float32), and
integer-valued results (argmax, argsort, rounding) as constants."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_onnx, onnx_difference

import lamina
from lamina.autodiff import SUPPORTED, Tape, tracing
from lamina.testing import check_layer_gradients


class Fn(lamina.Layer):
    """y = f(x, w), written in numpy only, with one weight of shape `w_shape`."""

    def __init__(self, f, w_shape=(3,)):
        self.f, self.w_shape = f, w_shape

    def get_config(self):
        return {}

    def build(self, x):
        self.w = lamina.Parameter(np.random.default_rng(1).normal(size=self.w_shape).astype(x.dtype))

    def forward(self, x):
        return self.f(x, self.w)


EYE = 3 * np.eye(3)
# THE 50 COMMON FUNCTIONS of issue 28: the first 15 worked before it, the other 35 are the functions it
# listed (with tril and arctan2 from their families). name: (f(x, w), x shape, w shape, the same in torch
# as g(torch, x, w) or None where torch has none, whether the row has an ONNX form)
COMMON = {
    "exp": (lambda x, w: np.exp(x * w), (4, 3), (3,), lambda t, x, w: t.exp(x * w), True),
    "log": (lambda x, w: np.log(x * x + w * w + 0.5), (4, 3), (3,), lambda t, x, w: t.log(x * x + w * w + 0.5), True),
    "sqrt": (lambda x, w: np.sqrt(x * x + 1) * w, (4, 3), (3,), lambda t, x, w: t.sqrt(x * x + 1) * w, True),
    "tanh": (lambda x, w: np.tanh(x @ w), (4, 3), (3, 2), lambda t, x, w: t.tanh(x @ w), True),
    "abs": (lambda x, w: np.abs(x - w), (4, 3), (3,), lambda t, x, w: t.abs(x - w), True),
    "sum": (lambda x, w: np.sum(x * w, axis=-1, keepdims=True), (4, 3), (3,),
            lambda t, x, w: t.sum(x * w, dim=-1, keepdim=True), True),
    "mean": (lambda x, w: np.mean(x[:, :, None] * w, axis=1), (4, 3), (2,),
             lambda t, x, w: t.mean(x[:, :, None] * w, dim=1), True),
    "max": (lambda x, w: np.max(x * w, axis=-1), (4, 3), (3,), lambda t, x, w: t.amax(x * w, dim=-1), True),
    "maximum": (lambda x, w: np.maximum(x, w), (4, 3), (3,), lambda t, x, w: t.maximum(x, w), True),
    "matmul": (lambda x, w: x @ w, (4, 3), (3, 2), lambda t, x, w: x @ w, True),
    "where": (lambda x, w: np.where(x > 0, x * w, w), (4, 3), (3,), lambda t, x, w: t.where(x > 0, x * w, w), True),
    "concatenate": (lambda x, w: np.concatenate([x, x * w], axis=-1), (4, 3), (3,),
                    lambda t, x, w: t.cat([x, x * w], dim=-1), True),
    "reshape": (lambda x, w: np.reshape(x * w, (-1, 3, 2)), (4, 6), (6,), lambda t, x, w: t.reshape(x * w, (-1, 3, 2)),
                True),
    "transpose": (lambda x, w: np.transpose(x[..., None] * w, (0, 2, 1)), (4, 3), (2,),
                  lambda t, x, w: t.permute(x[..., None] * w, (0, 2, 1)), True),
    "clip": (lambda x, w: np.clip(x * w, -0.5, 0.5), (4, 3), (3,), lambda t, x, w: t.clip(x * w, -0.5, 0.5), True),
    # the list
    "tensordot": (lambda x, w: np.tensordot(x, w, axes=1), (4, 3), (3, 2), lambda t, x, w: t.tensordot(x, w, dims=1),
                  True),
    "outer": (lambda x, w: np.outer(x, w).reshape(-1, 3, 3), (4, 3), (3,),
              lambda t, x, w: t.outer(x.reshape(-1), w).reshape(-1, 3, 3), True),
    "linalg.norm": (lambda x, w: np.linalg.norm(x * w, axis=-1, keepdims=True) + np.linalg.norm(w), (4, 3), (3,),
                    lambda t, x, w: t.linalg.norm(x * w, dim=-1, keepdim=True) + t.linalg.norm(w), True),
    "prod": (lambda x, w: np.prod(x * w, axis=-1), (4, 3), (3,), lambda t, x, w: t.prod(x * w, dim=-1), True),
    "cumprod": (lambda x, w: np.cumprod(x * w, axis=-1), (4, 3), (3,), lambda t, x, w: t.cumprod(x * w, dim=-1),
                False),
    "logaddexp": (lambda x, w: np.logaddexp(x, w), (4, 3), (3,), lambda t, x, w: t.logaddexp(x, w), True),
    "tile": (lambda x, w: np.tile(x * w, (1, 2)), (4, 3), (3,), lambda t, x, w: t.tile(x * w, (1, 2)), True),
    "repeat": (lambda x, w: np.repeat(x * w, 2, axis=-1), (4, 3), (3,),
               lambda t, x, w: t.repeat_interleave(x * w, 2, dim=-1), True),
    "broadcast_to": (lambda x, w: np.broadcast_to(x[:, :, None], (*x.shape, 2)) * w, (4, 3), (2,),
                     lambda t, x, w: t.broadcast_to(x[:, :, None], (*x.shape, 2)) * w, True),
    "roll": (lambda x, w: np.roll(x * w, 1, axis=-1), (4, 3), (3,), lambda t, x, w: t.roll(x * w, 1, dims=-1), True),
    "sort": (lambda x, w: np.sort(x * w, axis=-1), (4, 3), (3,), lambda t, x, w: t.sort(x * w, dim=-1).values, True),
    "take": (lambda x, w: np.take(x * w, [2, 0, 0], axis=1), (4, 3), (3,), lambda t, x, w: (x * w)[:, [2, 0, 0]], True),
    "take_along_axis": (lambda x, w: np.take_along_axis(x * w, np.argsort(x, axis=-1), axis=-1), (4, 3), (3,),
                        lambda t, x, w: t.take_along_dim(x * w, t.argsort(x, dim=-1), dim=-1), True),
    "hstack": (lambda x, w: np.hstack([x, x * w]), (4, 3), (3,), lambda t, x, w: t.hstack([x, x * w]), True),
    "vstack": (lambda x, w: np.vstack([x, x * w]), (4, 3), (3,), lambda t, x, w: t.vstack([x, x * w]), True),
    "diagonal": (lambda x, w: np.diagonal(x[:, :, None] * w, axis1=1, axis2=2), (4, 3), (3, 3),
                 lambda t, x, w: t.diagonal(x[:, :, None] * w, dim1=1, dim2=2), True),
    "trace": (lambda x, w: np.trace(x[:, :, None] * w, axis1=1, axis2=2), (4, 3), (3, 3),
              lambda t, x, w: t.diagonal(x[:, :, None] * w, dim1=1, dim2=2).sum(-1), True),
    "triu": (lambda x, w: np.triu(x[:, :, None] * w), (4, 3), (3, 3), lambda t, x, w: t.triu(x[:, :, None] * w), True),
    "arctan": (lambda x, w: np.arctan(x * w), (4, 3), (3,), lambda t, x, w: t.arctan(x * w), True),
    "log2": (lambda x, w: np.log2(x * x + w * w + 0.5), (4, 3), (3,), lambda t, x, w: t.log2(x * x + w * w + 0.5),
             True),
    "sinh": (lambda x, w: np.sinh(x * w), (4, 3), (3,), lambda t, x, w: t.sinh(x * w), True),
    "arcsinh": (lambda x, w: np.arcsinh(x * w), (4, 3), (3,), lambda t, x, w: t.asinh(x * w), True),
    "exp2": (lambda x, w: np.exp2(x * w), (4, 3), (3,), lambda t, x, w: t.exp2(x * w), True),
    "hypot": (lambda x, w: np.hypot(x, w), (4, 3), (3,), lambda t, x, w: t.hypot(x, w), True),
    "cbrt": (lambda x, w: np.cbrt(np.tanh(x) - 2) * w + np.cbrt(x * x + 1), (4, 3), (3,),
             lambda t, x, w: -((2 - t.tanh(x)) ** (1 / 3)) * w + (x * x + 1) ** (1 / 3), True),
    "fmax": (lambda x, w: np.fmax(x, w), (4, 3), (3,), lambda t, x, w: t.fmax(x, w), True),
    "linalg.inv": (lambda x, w: np.linalg.inv(x[:, :, None] * w + EYE), (4, 3), (3,),
                   lambda t, x, w: t.linalg.inv(x[:, :, None] * w + t.tensor(EYE)), False),
    "linalg.solve": (lambda x, w: np.linalg.solve(w @ w.T + EYE, x[..., None]), (4, 3), (3, 3),
                     lambda t, x, w: t.linalg.solve(w @ w.T + t.tensor(EYE), x[..., None]), False),
    "einsum-implicit": (lambda x, w: np.einsum("ij,jk", x, w), (4, 3), (3, 2), lambda t, x, w: t.einsum("ij,jk", x, w),
                        True),
    "median": (lambda x, w: np.median(x * w, axis=-1), (4, 3), (3,), lambda t, x, w: t.quantile(x * w, 0.5, dim=-1),
               True),
    "nan_to_num": (lambda x, w: np.nan_to_num(np.where(x > 0, x * w, np.nan)), (4, 3), (3,),
                   lambda t, x, w: t.nan_to_num(t.where(x > 0, x * w, np.nan)), True),
    "maximum.reduce": (lambda x, w: np.maximum.reduce(x * w, axis=-1), (4, 3), (3,),
                       lambda t, x, w: t.amax(x * w, dim=-1), True),
    "argmax": (lambda x, w: np.take_along_axis(x * w, np.argmax(x, axis=-1, keepdims=True), axis=-1), (4, 3), (3,),
               lambda t, x, w: t.take_along_dim(x * w, t.argmax(x, dim=-1, keepdim=True), dim=-1), True),
    "tril": (lambda x, w: np.tril(x[:, :, None] * w, -1), (4, 3), (3, 3),
             lambda t, x, w: t.tril(x[:, :, None] * w, -1), True),
    "arctan2": (lambda x, w: np.arctan2(x, w), (4, 3), (3,), lambda t, x, w: t.atan2(x, w), True),
}
X = np.random.default_rng(0).normal(size=(6, 8))


def _x(shape):
    return X.reshape(-1)[: int(np.prod(shape))].reshape(shape)


def _differentiates(f, x_shape, w_shape):
    try:
        errors = check_layer_gradients(Fn(f, w_shape), _x(x_shape))
    except lamina.LaminaError:
        return False
    return max(errors.values()) < 1e-6


def test_at_least_45_of_the_50_common_functions_differentiate():
    assert len(COMMON) == 50
    failing = [name for name, (f, xs, ws, _, _) in COMMON.items() if not _differentiates(f, xs, ws)]
    assert len(COMMON) - len(failing) >= 45, failing


@pytest.mark.parametrize("name", [name for name, case in COMMON.items() if case[3] is not None])
def test_the_common_functions_match_pytorch(name):
    torch = pytest.importorskip("torch", reason="compares against PyTorch's autograd: pip install -e '.[torch]'")
    f, x_shape, w_shape, g, _ = COMMON[name]
    layer, x = Fn(f, w_shape), _x(x_shape)
    out = layer(x)
    grad = np.random.default_rng(2).normal(size=out.shape)
    layer.w.zero_grad()
    dx = layer.backward(grad)
    xt, wt = (torch.tensor(v, requires_grad=True) for v in (x, layer.w.value))
    yt = g(torch, xt, wt)
    (yt * torch.tensor(grad)).sum().backward()
    for mine, theirs in ((out, yt), (dx, xt.grad), (layer.w.grad, wt.grad)):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-7, atol=1e-10)


# more of each family: name -> (f(x, w), x shape, w shape, whether the row has an ONNX form)
FAMILIES = {
    "arcsin-arccos-arctanh": (lambda x, w: np.arcsin(0.9 * np.tanh(x)) * w + np.arccos(0.9 * np.tanh(x * w))
                              + np.arctanh(0.9 * np.tanh(x)), (4, 3), (3,), True),
    "cosh-tan-arccosh": (lambda x, w: np.cosh(x * w) + np.tan(0.5 * np.tanh(x)) * w + np.arccosh(x * x + w * w + 1.5),
                         (4, 3), (3,), True),
    "log10-logaddexp2-fmin-degrees": (lambda x, w: np.log10(x * x + 1) * w + np.logaddexp2(x, w) + np.fmin(x, w)
                                      + np.deg2rad(x) * np.rad2deg(w) + np.fabs(x - w), (4, 3), (3,), True),
    "remainder": (lambda x, w: np.remainder(x * 3, w * w + 1) + (x * 2) % 1.5, (4, 3), (3,), True),
    "prod-with-zeros": (lambda x, w: np.prod(np.where(x > 0.5, 0.0, x) * w, axis=(0, 1), keepdims=True)
                        + np.prod(np.maximum(x, 0) * w, axis=0), (4, 3), (3,), True),
    "cumprod-with-zeros-and-axis-None": (lambda x, w: np.cumprod(np.where(x > 0.5, 0.0, x) * w, axis=0).sum(0)
                                         + np.cumprod(x * w)[-3:], (4, 3), (3,), False),
    "norms": (lambda x, w: np.linalg.norm(x * w, ord=1, axis=1) + np.linalg.norm(np.reshape(x * w, (-1, 2, 6)),
                                                                                   "fro", axis=(1, 2)), (4, 12), (12,),
              True),
    "quantile-percentile-median": (lambda x, w: np.quantile(x * w, [0.25, 0.9], axis=1).T
                                   + np.percentile(x * w, 30, axis=-1, keepdims=True)
                                   + np.median(x[:, :4] * w[:4], axis=-1, keepdims=True)
                                   + np.ptp(x * w, axis=1)[:, None],
                                   (4, 5), (5,), True),
    "column_stack-dstack-ravel-flips": (lambda x, w: np.column_stack([x, x * w])[:, ::2]
                                        + np.dstack([x, w * x])[..., 1].reshape(-1, 3, 1)[:, :, 0]
                                        + np.fliplr(np.flipud(np.ravel(x * w).reshape(-1, 3)))[::-1], (4, 3), (3,),
                                        True),
    "diag-diagonal-offsets-triu-k": (lambda x, w: np.diagonal(x[:, :, None] * w, 1, 1, 2) + np.diagonal(
        x[:, :, None] * w, -1, 2, 1) + np.triu(x[:, :, None] * w, 1).sum(-1)[:, 1:] + np.diag(w[0], 1)[1:, :2].sum(),
                                     (4, 3), (3, 3), True),
    "inner-tensordot-axes-einsum-vector": (lambda x, w: np.inner(x, w[0]) + np.tensordot(x, w, ([1], [1])).sum(-1)
                                           + np.einsum("ij,ij", x, x * w[0]) + np.outer(x[:, 0], w[0])[:, 0],
                                           (4, 3), (2, 3), True),
    "sort-take-axis-None-repeat-array-roll-axes": (lambda x, w: np.sort(x * w, axis=None)[-1]
                                                   + np.take(x * w, [1, 4], axis=None).sum()
                                                   + np.repeat(x * w, [1, 0, 2], axis=1)
                                                   + np.roll(x * w, (1, -2), axis=(0, 1)), (4, 3), (3,), False),
    "tile-broadcast": (lambda x, w: np.tile(x * w, (2, 1, 2)).sum(0) + np.broadcast_to(w, (2, 4, 3)).sum(0)[:, :1],
                       (4, 3), (3,), False),
    "ufunc-methods": (lambda x, w: np.add.reduce(x * w) + np.multiply.reduce(x * w, axis=1, keepdims=True)
                      + np.minimum.reduce(x * w, 1, keepdims=True) + np.add.accumulate(x * w, axis=1)
                      + np.multiply.accumulate(x * w, 1), (4, 3), (3,), False),
    "det-slogdet": (lambda x, w: np.linalg.det(x[:, :, None] * w + EYE)[:, None] * np.linalg.slogdet(w @ w.T + EYE)[1],
                    (4, 3), (3, 3), False),
    "constants": (lambda x, w: x * np.round(x * 3, 1) * np.floor(w) + np.sign(x) * np.ceil(w) + np.floor_divide(x, 0.5)
                  + (np.argmax(x) + np.argmin(x, axis=0) + np.argsort(x, axis=-1)[:, :1]), (4, 3), (3,), True),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_families_match_finite_differences(name):
    f, x_shape, w_shape, _ = FAMILIES[name]
    errors = check_layer_gradients(Fn(f, w_shape), _x(x_shape))
    assert max(errors.values()) < 1e-6, errors


ONNX_CASES = {**{name: case[:3] for name, case in COMMON.items() if case[4]},
              **{name: case[:3] for name, case in FAMILIES.items() if case[3]}}


@needs_onnx
@pytest.mark.parametrize("name", list(ONNX_CASES))
def test_the_onnx_forms_match_onnxruntime(name, tmp_path):
    f, x_shape, w_shape = ONNX_CASES[name]
    model = lamina.Model([Fn(f, w_shape)])
    model(_x(x_shape).astype(np.float32))
    assert onnx_difference(model, tmp_path) <= 1e-5


@pytest.mark.parametrize("name", ["cumprod", "linalg.inv", "linalg.solve"])
def test_rows_without_an_onnx_form_refuse_export(name, tmp_path):
    pytest.importorskip("onnx")
    f, x_shape, w_shape = COMMON[name][:3]
    model = lamina.Model([Fn(f, w_shape)])
    model(_x(x_shape))
    with pytest.raises(lamina.LaminaError, match=f"np.{name}.* has no ONNX mapping in lamina"):
        model.export_onnx(tmp_path / "m.onnx")


def test_integer_results_are_plain_arrays_usable_as_indices_and_masks():
    tape = Tape()
    x = tape.leaf(np.random.default_rng(3).normal(size=(4, 3)))
    with tracing(tape):
        best = np.argmax(x, axis=-1)
        order, rounded, bins = np.argsort(x, axis=0), np.round(x), np.searchsorted(np.array([-1.0, 1.0]), x)
        picked = x[np.arange(4), best] + x.max(axis=-1) * (best == 0)
    assert all(type(v) is np.ndarray for v in (best, order, rounded, bins))
    assert best.dtype.kind == "i" and np.array_equal(best, np.argmax(x.value, axis=-1))
    np.testing.assert_array_equal(picked.value, x.value.max(-1) * (1 + (best == 0)))


@pytest.mark.parametrize("forward, message", [
    (lambda x: np.linalg.norm(x, ord=2), r"np.linalg.norm\(ord=2\) on matrices"),
    (lambda x: np.quantile(x, 0.5, method="nearest"), "method='nearest'"),
    (lambda x: np.add.outer(x, x), r"np.add.outer cannot be followed"),
    (lambda x: np.maximum.reduce(x, initial=0.0), r"np.max\(initial=...\)"),
])
def test_what_the_new_rows_cannot_honour_is_refused(forward, message):
    layer = type("Odd", (lamina.Layer,), {"forward": lambda self, x: forward(x)})()
    with pytest.raises(lamina.LaminaError, match=message):
        layer(np.ones((4, 3)))


def test_the_supported_list_names_the_new_rows_with_their_columns():
    assert SUPPORTED["np.linalg.norm"] == ("yes", "yes") and SUPPORTED["np.linalg.inv"] == ("yes", "no")
    assert SUPPORTED["np.argmax"] == ("constant", "yes") and SUPPORTED["np.maximum.reduce"] == ("yes", "yes")
    assert SUPPORTED["np.cumprod"] == ("yes", "no")
