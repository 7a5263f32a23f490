"""MultiHeadAttention, TransformerBlock, PositionalEmbedding, SinusoidalPositions: gradients,
errors, and with PyTorch installed, outputs and gradients equal to torch.nn's to 1e-10."""
from __future__ import annotations

import math

import numpy as np
import pytest

import lamina
from lamina.testing import check_layer_gradients

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="compares with PyTorch: pip install -e '.[torch]'")
RNG = np.random.default_rng(0)


def run(layer, x, grad):
    """(output, input gradient, {name: parameter gradient}) of one training step."""
    layer.training = True
    out = layer(x)
    for param in layer.parameters().values():
        param.zero_grad()
    dx = layer.backward(grad)
    return out, dx, {name: p.grad.copy() for name, p in layer.parameters().items()}


def close(a, b, tolerance=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.abs(b).max()), 1e-30)
    assert float(np.abs(a - b).max()) / scale < tolerance, float(np.abs(a - b).max()) / scale


@pytest.mark.parametrize("kwargs, shape", [
    ({"num_heads": 2}, (2, 3, 4)),
    ({"num_heads": 3, "causal": True}, (1, 5, 6)),
    ({"num_heads": 1}, (3, 1, 2)),
])
@pytest.mark.parametrize("training", [True, False])
def test_attention_gradients_match_finite_differences(kwargs, shape, training):
    layer = lamina.layer("MultiHeadAttention", **kwargs)
    x = RNG.normal(size=shape)
    layer(x)
    errors = check_layer_gradients(layer, x, training=training)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("kwargs", [
    {"norm_first": True},
    {"norm_first": False, "causal": True, "activation": "relu"},
])
def test_transformer_block_gradients_match_finite_differences(kwargs):
    layer = lamina.layer("TransformerBlock", 2, 6, dropout=0.0, **kwargs)
    x = RNG.normal(size=(2, 4, 4))
    layer(x)
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < 1e-7, errors
    assert set(errors) == {"input", *layer.parameters()}


def test_causal_attention_does_not_look_ahead():
    layer = lamina.layer("MultiHeadAttention", 2, causal=True)
    x = RNG.normal(size=(1, 6, 4))
    before = layer(x)
    changed = x.copy()
    changed[:, 4:] += 10.0  # the future of positions 0-3
    after = layer(changed)
    np.testing.assert_allclose(after[:, :4], before[:, :4], rtol=1e-12)
    assert not np.allclose(after[:, 4:], before[:, 4:])


def test_attention_dropout_only_in_training_and_seeded():
    layer = lamina.layer("MultiHeadAttention", 2, dropout=0.5)
    x = RNG.normal(size=(2, 5, 4))
    layer.training = False
    np.testing.assert_array_equal(layer(x), layer(x))
    layer.training = True
    lamina.seed(3)
    a = layer(x)
    lamina.seed(3)
    np.testing.assert_array_equal(a, layer(x))
    assert not np.allclose(a, layer(x))


def test_positional_embeddings():
    x = np.zeros((2, 4, 6))
    table = lamina.layer("SinusoidalPositions")(x)[0]
    np.testing.assert_allclose(table[1, 0], math.sin(1.0))
    np.testing.assert_allclose(table[2, 1], math.cos(2.0))
    np.testing.assert_allclose(table[3, 2], math.sin(3.0 / 10000 ** (2 / 6)))
    learned = lamina.layer("PositionalEmbedding", 5)
    y = learned(np.ones((3, 4, 2), dtype=np.float32))
    assert y.dtype == np.float32 and learned.weight.shape == (5, 2)
    np.testing.assert_allclose(y[1] - 1, learned.weight.value[:4], atol=1e-7)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: lamina.layer("MultiHeadAttention", 3), (2, 4, 4), "width 4 .* does not split into 3 heads"),
    (lambda: lamina.layer("MultiHeadAttention", 2), (2, 4),
     r"needs input of shape \(batch, time, features\), got \(2, 4\)"),
    (lambda: lamina.layer("PositionalEmbedding", 3), (2, 4, 2), "got a sequence of 4 steps .* raise max_len"),
    (lambda: lamina.layer("TransformerBlock", 2, 8), (5, 4), r"TransformerBlock\(num_heads=2\) needs input of shape"),
])
def test_shape_errors_say_what_and_how(make, shape, message):
    with pytest.raises(lamina.ShapeError, match=message):
        make()(np.zeros(shape))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_heads": 0, "ff_units": 8}, "num_heads"),
    ({"num_heads": 2, "ff_units": 8, "activation": "tanh"}, "activation"),
    ({"num_heads": 2, "ff_units": 8, "dropout": 1.5}, "dropout"),
])
def test_transformer_block_arguments_are_checked(kwargs, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.layer("TransformerBlock", **kwargs)


def test_a_small_causal_transformer_learns_to_copy_by_name(tmp_path):
    lamina.seed(0)
    ids = np.random.default_rng(1).integers(0, 8, size=(64, 6))
    model = lamina.Model([
        {"type": "Embedding", "num_embeddings": 8, "dim": 16}, {"type": "PositionalEmbedding", "max_len": 6},
        {"type": "TransformerBlock", "num_heads": 2, "ff_units": 32, "dropout": 0.0, "causal": True},
        {"type": "Linear", "units": 8},
    ])
    history = model.train(ids, ids, optim=lamina.optimizer("Adam", lr=0.01),
                          loss=lamina.loss("CrossEntropy", from_logits=True),
                          epochs=40, batch_size=16, metrics=["accuracy"], verbose=False)
    assert history["accuracy"][-1] > 0.9
    model.save(tmp_path / "copy.npz")
    np.testing.assert_array_equal(lamina.load(tmp_path / "copy.npz").predict(ids), model.predict(ids))
    assert "2.attention.in_proj_weight" in model.parameters()


# -- PyTorch parity ---------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("heads, causal, shape", [(2, False, (3, 5, 4)), (4, True, (2, 6, 8)), (1, True, (1, 3, 3))])
def test_attention_equals_torch(heads, causal, shape):
    x = RNG.normal(size=shape)
    layer = lamina.layer("MultiHeadAttention", heads, causal=causal)
    layer(x)
    grad = RNG.normal(size=shape)
    out, dx, grads = run(layer, x, grad)
    mha = torch.nn.MultiheadAttention(shape[-1], heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(layer.in_proj_weight.value))
        mha.in_proj_bias.copy_(torch.tensor(layer.in_proj_bias.value))
        mha.out_proj.weight.copy_(torch.tensor(layer.out_proj_weight.value))
        mha.out_proj.bias.copy_(torch.tensor(layer.out_proj_bias.value))
    tx = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(shape[1], dtype=torch.float64) if causal else None
    tout, _ = mha(tx, tx, tx, attn_mask=mask, need_weights=False)
    tout.backward(torch.tensor(grad))
    close(out, tout.detach().numpy())
    close(dx, tx.grad.numpy())
    close(grads["in_proj_weight"], mha.in_proj_weight.grad.numpy())
    close(grads["in_proj_bias"], mha.in_proj_bias.grad.numpy())
    close(grads["out_proj_weight"], mha.out_proj.weight.grad.numpy())
    close(grads["out_proj_bias"], mha.out_proj.bias.grad.numpy())


@needs_torch
@pytest.mark.parametrize("norm_first, causal, activation",
                         [(True, False, "gelu"), (False, True, "relu"), (True, True, "relu")])
def test_transformer_block_equals_torch(norm_first, causal, activation):
    shape, heads, ff = (2, 5, 8), 2, 12
    x = RNG.normal(size=shape)
    block = lamina.layer("TransformerBlock", heads, ff, dropout=0.0, causal=causal, norm_first=norm_first,
                         activation=activation)
    block(x)
    for param in block.parameters().values():  # away from LayerNorm's ones and zeros
        param.value[...] = RNG.normal(scale=0.5, size=param.shape)
    grad = RNG.normal(size=shape)
    out, dx, grads = run(block, x, grad)
    ref = torch.nn.TransformerEncoderLayer(shape[-1], heads, ff, dropout=0.0, activation=activation, batch_first=True,
                                           norm_first=norm_first, dtype=torch.float64)
    mapping = {
        "self_attn.in_proj_weight": ("attention.in_proj_weight", False),
        "self_attn.in_proj_bias": ("attention.in_proj_bias", False),
        "self_attn.out_proj.weight": ("attention.out_proj_weight", False),
        "self_attn.out_proj.bias": ("attention.out_proj_bias", False),
        "linear1.weight": ("linear1.weight", True), "linear1.bias": ("linear1.bias", False),
        "linear2.weight": ("linear2.weight", True), "linear2.bias": ("linear2.bias", False),
        "norm1.weight": ("norm1.weight", False), "norm1.bias": ("norm1.bias", False),
        "norm2.weight": ("norm2.weight", False), "norm2.bias": ("norm2.bias", False),
    }
    assert set(mapping) == {name for name, _ in ref.named_parameters()}
    assert {mine for mine, _ in mapping.values()} == set(block.parameters())
    with torch.no_grad():
        for theirs, (mine, transposed) in mapping.items():
            value = block.parameters()[mine].value
            ref.get_parameter(theirs).copy_(torch.tensor(value.T if transposed else value))
    tx = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(shape[1], dtype=torch.float64) if causal else None
    tout = ref(tx, src_mask=mask, is_causal=causal)
    tout.backward(torch.tensor(grad))
    close(out, tout.detach().numpy())
    close(dx, tx.grad.numpy())
    for theirs, (mine, transposed) in mapping.items():
        expected = ref.get_parameter(theirs).grad.numpy()
        close(grads[mine], expected.T if transposed else expected)


def test_a_forged_huge_positional_embedding_is_refused_by_the_loading_budget(tmp_path):
    model = lamina.Model([lamina.layer("PositionalEmbedding", 4)])
    model(np.zeros((1, 2, 3), dtype=np.float32))
    model.save(tmp_path / "pos.npz")
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "pos.npz") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["layers"][0]["config"]["max_len"] = 10**9
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(lamina.FileFormatError, match="budget|exceed|bytes"):
        lamina.load(tmp_path / "forged.npz", max_bytes=10**8)


@pytest.mark.parametrize("make", [lambda: lamina.layer("MultiHeadAttention", 2),
                                  lambda: lamina.layer("TransformerBlock", 2, 8, dropout=0.0)])
def test_empty_sequences_are_a_shape_error_naming_the_layer(make):
    layer = make()
    layer(np.ones((2, 3, 4), dtype=np.float32))
    for target in (layer, make()):  # built, and on a first call
        with pytest.raises(lamina.ShapeError, match=r"(MultiHeadAttention|TransformerBlock)\(num_heads=2\) needs "
                                                    r"sequences of at least one time step, got shape \(2, 0, 4\)"):
            target(np.ones((2, 0, 4), dtype=np.float32))


def test_while_building_attention_returns_its_output_shape_without_scores():
    from lamina.protocols.layer import building

    layer = lamina.layer("MultiHeadAttention", 2, causal=True)
    x = np.ones((3, 5, 4), dtype=np.float32)
    real = layer(x)
    with building():
        shaped = layer(x)
    assert shaped.shape == real.shape and shaped.dtype == real.dtype
