"""Conv2D's working layouts, and Conv1D's and Conv2D's chunks and kept buffers: every path gives
PyTorch's values."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins.layers import _spatial

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_step(layer, x, g, **kwargs):
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    tw = torch.from_numpy(layer.weight.value.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.value.copy()).requires_grad_()
    ty = F.conv2d(tx, tw, tb, **kwargs)
    ty.backward(torch.from_numpy(np.ascontiguousarray(g)))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def _check_steps(layer, inputs, **kwargs):
    """Forward and backward on each input in turn (gradients zeroed between): PyTorch's values."""
    rng = np.random.default_rng(1)
    for x in inputs:
        if layer.weight is not None:
            layer.zero_grad()
        y = layer(x)
        g = rng.normal(size=y.shape)
        dx = layer.backward(g)
        ty, tdx, tdw, tdb = _torch_step(layer, x, g, **kwargs)
        np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, tdw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, tdb, rtol=1e-10, atol=1e-12)


# (channels, kernel, width): one input channel and a wide image take the tap-rows layout,
# 16 channels the channels-last one.
@pytest.mark.parametrize("channels, width", [(1, 12), (16, 6)])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 21])
def test_both_layouts_in_one_or_many_chunks_over_several_steps(monkeypatch, channels, width, chunk_bytes):
    monkeypatch.setattr(_spatial, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    layer = lamina.layer("Conv2D", 3, 5, padding=2, bias_init="normal")
    # Two steps on new data through the kept buffers, then a channels-last input (a view).
    inputs = [rng.normal(size=(4, channels, 7, width)), rng.normal(size=(4, channels, 7, width)),
              np.ascontiguousarray(rng.normal(size=(4, 7, width, channels))).transpose(0, 3, 1, 2)]
    _check_steps(layer, inputs, padding=2)


def test_a_new_batch_size_and_no_padding_with_a_channels_last_input():
    rng = np.random.default_rng(0)
    layer = lamina.layer("Conv2D", 2, 3, bias_init="normal")
    first = np.ascontiguousarray(rng.normal(size=(3, 5, 6, 4))).transpose(0, 3, 1, 2)
    _check_steps(layer, [first, rng.normal(size=(2, 4, 5, 6)), first[:1]])
    np.testing.assert_array_equal(first, np.ascontiguousarray(first))  # the input is not written to


def test_the_first_layer_skips_the_input_gradient_and_release_drops_the_buffers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6))
    layer = lamina.layer("Conv2D", 2, 3, padding=1, bias_init="normal")
    layer(x)
    layer.needs_input_grad = False
    g = rng.normal(size=(2, 2, 6, 6))
    assert layer.backward(g) is None
    _, _, tdw, tdb = _torch_step(layer, x, g, padding=1)
    np.testing.assert_allclose(layer.weight.grad, tdw, rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad, tdb, rtol=1e-10)
    layer.release()
    assert not {"_xp", "_xpad", "_cols"} & set(vars(layer))


def test_a_frozen_weight_still_gets_the_bias_gradient_and_the_input_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6))
    layer = lamina.layer("Conv2D", 2, 3, padding=1)
    layer(x)
    layer.weight.trainable = False
    g = rng.normal(size=(2, 2, 6, 6))
    dx = layer.backward(g)
    _, tdx, _, tdb = _torch_step(layer, x, g, padding=1)
    assert not layer.weight.grad.any()
    np.testing.assert_allclose(layer.bias.grad, tdb, rtol=1e-10)
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 21])
@pytest.mark.parametrize("kwargs", [dict(padding=2), dict(stride=2, dilation=2, padding=1)])
def test_conv1d_in_one_or_many_chunks_over_several_steps(monkeypatch, chunk_bytes, kwargs):
    monkeypatch.setattr(_spatial, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    layer = lamina.layer("Conv1D", 3, 3, bias_init="normal", **kwargs)
    for x in (rng.normal(size=(4, 2, 9)), rng.normal(size=(4, 2, 9)), rng.normal(size=(3, 2, 11))):
        if layer.weight is not None:
            layer.zero_grad()
        y = layer(x)
        g = rng.normal(size=y.shape)
        dx = layer.backward(g)
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(layer.weight.value.copy()).requires_grad_()
        tb = torch.from_numpy(layer.bias.value.copy()).requires_grad_()
        ty = F.conv1d(tx, tw, tb, **kwargs)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 21])
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2), padding=(1, 3)),  # rows at stride 1, dilated
    dict(kernel_size=3, padding=0),  # valid: the input wider than the output
    dict(kernel_size=(2, 3), stride=2, padding=1),  # strided along the width: one product per tap
    dict(kernel_size=3, dilation=2, padding=(2, 0)),
])
def test_channels_last_strides_dilations_and_paddings(monkeypatch, chunk_bytes, kwargs):
    monkeypatch.setattr(_spatial, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    layer = lamina.layer("Conv2D", 3, bias_init="normal", **kwargs)
    torch_kwargs = {key: value for key, value in kwargs.items() if key != "kernel_size"}
    _check_steps(layer, [rng.normal(size=(3, 16, 7, 9)), rng.normal(size=(3, 16, 7, 9))], **torch_kwargs)


@pytest.mark.parametrize("name, shape", [("Conv2D", (0, 3, 8, 8)), ("Conv2D", (0, 16, 8, 8)), ("Conv1D", (0, 3, 8))])
def test_an_empty_batch_gives_empty_outputs_and_gradients(name, shape):
    layer = lamina.layer(name, 4, 3, padding=1)
    layer(np.ones((2, *shape[1:])))
    y = layer(np.ones(shape))
    assert y.shape == (0, 4, *shape[2:])
    assert layer.backward(np.ones(y.shape)).shape == shape
