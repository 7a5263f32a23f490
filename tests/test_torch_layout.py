"""State dicts in PyTorch's layout: a torch.nn model's state_dict() loads into the equivalent lamina
model with layout="torch" and both predict the same, and lamina's state_dict(layout="torch") loads
into the torch model with load_state_dict(strict=True) and both predict the same."""
from __future__ import annotations

import numpy as np
import pytest

import lamina

torch = pytest.importorskip("torch", reason="compares with PyTorch's state dicts: pip install -e '.[torch]'")
nn = torch.nn


class LastStates:
    """torch's GRU/LSTM/RNN as lamina's (return_sequences=False): the last states of both
    directions side by side. A mixin, so that the state-dict names stay the module's."""

    def forward(self, x):
        _, h_n = super().forward(x)
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        return torch.cat(list(h_n), dim=1)


class LastGRU(LastStates, nn.GRU):
    pass


class LastLSTM(LastStates, nn.LSTM):
    pass


class Sequences(nn.RNN):
    """torch's RNN as lamina's with return_sequences=True: every step's state."""

    def forward(self, x):
        return super().forward(x)[0]


class SelfAttention(nn.MultiheadAttention):
    """mha(x, x, x) as lamina's MultiHeadAttention computes it, optionally causal."""

    def __init__(self, *args, causal=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal = causal

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=x.dtype) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask)[0]


class Residual(nn.Module):
    """lamina's Residual in torch: x + layers(x), the layers in `self.layers` (names "layers.0.weight")."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.layers(x)


def images(rng):
    return rng.normal(size=(3, 3, 6, 6))


def signals(rng):
    return rng.normal(size=(3, 3, 7))


def ids(rng):
    return rng.integers(0, 10, size=(3, 5))


def sequences(rng):
    return rng.normal(size=(3, 5, 4))


def tokens(rng):
    return rng.normal(size=(3, 5, 8))


def rows(rng):
    return rng.normal(size=(4, 6))


# name: (torch model, lamina layers in a dtype (for Embedding), input maker)
PAIRS = {
    "conv2d-batchnorm-linear-layernorm": (
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(36, 5), nn.LayerNorm(5)),
        lambda dtype: [lamina.layer("Conv2D", 4, 3, padding=1), lamina.layer("BatchNorm"), "Relu",
                 lamina.layer("MaxPool2D", 2), "Flatten", lamina.layer("Linear", 5), lamina.layer("LayerNorm")],
        images),
    "conv1d-same": (
        lambda: nn.Sequential(nn.Conv1d(3, 4, 4, padding="same"), nn.BatchNorm1d(4), nn.Tanh(), nn.Flatten(),
                              nn.Linear(28, 3)),
        lambda dtype: [lamina.layer("Conv1D", 4, 4, padding="same"), lamina.layer("BatchNorm"), "Tanh", "Flatten",
                 lamina.layer("Linear", 3)],
        signals),
    "embedding-gru-linear": (
        lambda: nn.Sequential(nn.Embedding(10, 6), LastGRU(6, 5, batch_first=True), nn.Linear(5, 3)),
        lambda dtype: [lamina.layer("Embedding", 10, 6, dtype=dtype), lamina.layer("GRU", 5),
                 lamina.layer("Linear", 3)],
        ids),
    "bidirectional-lstm": (
        lambda: nn.Sequential(LastLSTM(4, 3, batch_first=True, bidirectional=True), nn.Linear(6, 6)),
        lambda dtype: [lamina.layer("LSTM", 3, bidirectional=True), lamina.layer("Linear", 6)],
        sequences),
    "bidirectional-gru": (
        lambda: nn.Sequential(LastGRU(4, 3, batch_first=True, bidirectional=True)),
        lambda dtype: [lamina.layer("GRU", 3, bidirectional=True)],
        sequences),
    "rnn-relu-sequences": (
        lambda: nn.Sequential(Sequences(4, 3, nonlinearity="relu", batch_first=True, bidirectional=True)),
        lambda dtype: [lamina.layer("RNN", 3, nonlinearity="relu", return_sequences=True, bidirectional=True)],
        sequences),
    "multihead-attention": (  # a square Linear after it: a missed transpose would not change a shape
        lambda: nn.Sequential(SelfAttention(8, 2, batch_first=True), nn.Linear(8, 8)),
        lambda dtype: [lamina.layer("MultiHeadAttention", 2), lamina.layer("Linear", 8)],
        tokens),
    "causal-attention": (
        lambda: nn.Sequential(SelfAttention(8, 4, batch_first=True, causal=True)),
        lambda dtype: [lamina.layer("MultiHeadAttention", 4, causal=True)],
        tokens),
    "transformer-norm-first-gelu": (  # lamina's defaults but dropout
        lambda: nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True,
                                                         norm_first=True), nn.Linear(8, 8)),
        lambda dtype: [lamina.layer("TransformerBlock", 2, 16, dropout=0.0), lamina.layer("Linear", 8)],
        tokens),
    "transformer-post-norm-relu": (  # torch's defaults but batch_first and dropout
        lambda: nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)),
        lambda dtype: [lamina.layer("TransformerBlock", 2, 16, dropout=0.0, norm_first=False, activation="relu")],
        tokens),
    "nested-sequential-residual": (
        lambda: nn.Sequential(nn.Sequential(nn.Linear(6, 6), nn.Tanh()), Residual(nn.Linear(6, 6), nn.ReLU()),
                              nn.Linear(6, 2)),
        lambda dtype: [lamina.layer("Sequential", [lamina.layer("Linear", 6), "Tanh"]),
                 lamina.layer("Residual", [lamina.layer("Linear", 6), "Relu"]), lamina.layer("Linear", 2)],
        rows),
}


def built(name: str, dtype=np.float64):
    """The torch model in eval mode, the lamina model built, and an input, all in `dtype`."""
    make_torch, make_lamina, make_input = PAIRS[name]
    torch.manual_seed(0)
    theirs = make_torch().to(getattr(torch, np.dtype(dtype).name)).eval()
    x = make_input(np.random.default_rng(1))
    if x.dtype.kind == "f":
        x = x.astype(dtype)
    lamina.seed(0)
    ours = lamina.Model(make_lamina(np.dtype(dtype).name))
    ours.build(x)
    return theirs, ours, x


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Random values for every float entry: weights away from their initial ones, variances positive."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.5, 1.5, size=shape) if name.endswith(("running_var", "variance"))
            else rng.normal(scale=0.4, size=shape) for name, shape in shapes.items()}


def numpy_state(module) -> dict[str, np.ndarray]:
    return {name: tensor.detach().numpy() for name, tensor in module.state_dict().items()}


def torch_predict(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


# torch warns that its own even-kernel "same" padding copies the input
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", PAIRS)
def test_a_torch_state_dict_loads_into_the_equivalent_model_and_predicts_the_same(name):
    theirs, ours, x = built(name)
    state = {key: value for key, value in numpy_state(theirs).items() if not key.endswith("num_batches_tracked")}
    randomized = random_state({key: value.shape for key, value in state.items()}, seed=2)
    theirs.load_state_dict({key: torch.from_numpy(value) for key, value in randomized.items()}, strict=False)
    report = ours.load_state_dict(numpy_state(theirs), layout="torch")
    assert report.ok
    np.testing.assert_allclose(ours.predict(x), torch_predict(theirs, x), rtol=1e-5, atol=1e-9)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", PAIRS)
def test_lamina_state_dict_in_torch_layout_loads_strictly_into_torch_and_predicts_the_same(name):
    theirs, ours, x = built(name)
    ours.load_state_dict(random_state({key: value.shape for key, value in ours.state_dict().items()}, seed=3))
    state = ours.state_dict(layout="torch")
    assert sorted(state) == sorted(theirs.state_dict())  # torch's names
    theirs.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
    np.testing.assert_allclose(torch_predict(theirs, x), ours.predict(x), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["conv2d-batchnorm-linear-layernorm", "embedding-gru-linear",
                                  "transformer-norm-first-gelu"])
def test_float32_models_agree_within_float32_rounding(name):
    theirs, ours, x = built(name, np.float32)
    state = random_state({key: value.shape for key, value in ours.state_dict(layout="torch").items()
                          if not key.endswith("num_batches_tracked")}, seed=4)
    ours.load_state_dict(state, layout="torch")  # float64 values, cast to the model's float32
    assert all(value.dtype == np.float32 for value in ours.state_dict().values())
    theirs.load_state_dict({key: torch.from_numpy(value) for key, value in ours.state_dict(layout="torch").items()})
    np.testing.assert_allclose(ours.predict(x), torch_predict(theirs, x), rtol=1e-5, atol=1e-5)


def test_a_square_linear_is_transposed_not_taken_as_it_is():
    theirs, ours, x = built("multihead-attention")
    weight = np.arange(64, dtype=np.float64).reshape(8, 8)  # torch's (out, in)
    ours.load_state_dict({**numpy_state(theirs), "1.weight": weight}, layout="torch")
    np.testing.assert_array_equal(ours.parameters()["1.weight"].value, weight.T)
    np.testing.assert_array_equal(ours.state_dict(layout="torch")["1.weight"], weight)


def test_batchnorm_writes_num_batches_tracked_and_loading_ignores_it():
    theirs, ours, _ = built("conv2d-batchnorm-linear-layernorm")
    state = ours.state_dict(layout="torch")
    assert state["1.num_batches_tracked"].shape == () and state["1.num_batches_tracked"].dtype == np.int64
    given = numpy_state(theirs)
    given["1.num_batches_tracked"] = np.array(12345)  # any count: lamina does not use it
    assert ours.load_state_dict(given, layout="torch").ok
    del given["1.num_batches_tracked"]
    assert ours.load_state_dict(given, layout="torch").ok  # not missing either


def test_a_torch_dict_missing_and_with_extra_names_is_reported_in_torch_names():
    theirs, ours, _ = built("multihead-attention")
    given = numpy_state(theirs)
    del given["0.out_proj.bias"]
    given["0.out_proj.extra"] = np.zeros(3)
    given["1.weight"] = np.zeros((8, 4))
    with pytest.raises(lamina.ShapeError) as caught:
        ours.load_state_dict(given, layout="torch")
    message = str(caught.value)
    assert "'0.out_proj.bias'" in message and "'0.out_proj.extra'" in message
    assert "'1.weight' (the model's (8, 8), the state's (8, 4))" in message
    report = ours.load_state_dict(given, strict=False, layout="torch")
    assert (report.missing, report.unexpected, report.mismatched) == (["0.out_proj.bias"], ["0.out_proj.extra"],
                                                                       ["1.weight"])
    np.testing.assert_array_equal(ours.parameters()["0.out_proj_weight"].value, given["0.out_proj.weight"])


def test_a_torch_state_dict_given_as_lamina_layout_suggests_the_torch_layout():
    theirs, ours, _ = built("conv2d-batchnorm-linear-layernorm")
    with pytest.raises(lamina.ShapeError, match="layout='torch'"):
        ours.load_state_dict(numpy_state(theirs))


# -- through files: the safetensors package writes torch's weights, lamina reads them, and back ------------


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", ["conv2d-batchnorm-linear-layernorm", "embedding-gru-linear", "multihead-attention",
                                  "transformer-norm-first-gelu"])
def test_weights_saved_by_the_safetensors_package_load_with_the_torch_layout_and_back(name, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch", reason="the reference: pip install safetensors")
    theirs, ours, x = built(name, np.float32)
    state = {key: value for key, value in numpy_state(theirs).items() if not key.endswith("num_batches_tracked")}
    randomized = random_state({key: value.shape for key, value in state.items()}, seed=5)
    theirs.load_state_dict({key: torch.from_numpy(value.astype(np.float32)) for key, value in randomized.items()},
                           strict=False)
    safetensors_torch.save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    assert ours.load_weights(tmp_path / "torch.safetensors", layout="torch").ok
    np.testing.assert_allclose(ours.predict(x), torch_predict(theirs, x), rtol=1e-5, atol=1e-5)
    ours.load_state_dict(random_state({k: v.shape for k, v in ours.state_dict().items()}, seed=6))
    ours.save_weights(tmp_path / "lamina.safetensors", layout="torch")
    theirs.load_state_dict(safetensors_torch.load_file(str(tmp_path / "lamina.safetensors")), strict=True)
    np.testing.assert_allclose(torch_predict(theirs, x), ours.predict(x), rtol=1e-5, atol=1e-5)
