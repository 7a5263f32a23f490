"""ONNX export: every layer and combinator, traced forward-only layers, the example models, the
command line, and the errors; each exported file run in onnxruntime against model.predict.

Recurrent layers: test_onnx_recurrent.py; convolutions and pools: test_onnx_conv.py."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, needs_onnx, onnx_difference, run_onnx

import lamina
from lamina.app import config as runconfig

RNG = np.random.default_rng(0)
# onnxruntime has no double kernel for Erf (exact Gelu); Elu and Softplus, which it also lacks,
# are written out in other operators in double
NO_DOUBLE = {"Erf"}


def built(layers, shape, dtype=np.float32, train=True, high=None):
    """A model of `layers`, trained two small steps on random data (so no weight is trivial)."""
    model = lamina.Model(layers)
    n = 8
    if high is not None:
        x = RNG.integers(0, high, size=(n, *shape))
    else:
        x = RNG.normal(size=(n, *shape)).astype(dtype)
    out = model(x)
    if train and model.parameters():
        model.train(x, RNG.normal(size=out.shape).astype(out.dtype), loss="MSE", optim="Adam", epochs=2, batch_size=4,
                    verbose=False)
    return model


# name: (layers factory, input shape (no batch), integer ids below `high` or None)
CASES = {
    "Linear": (lambda: [lamina.layer("Linear", 5)], (4,), None),
    "Linear-3d": (lambda: [lamina.layer("Linear", 3)], (2, 4), None),
    "Sigmoid": (lambda: ["Sigmoid"], (5,), None),
    "Relu": (lambda: [lamina.layer("Linear", 5), "Relu"], (4,), None),
    "Tanh": (lambda: ["Tanh"], (5,), None),
    "Softmax": (lambda: [lamina.layer("Linear", 5), "Softmax"], (2, 4), None),
    "LeakyRelu": (lambda: [lamina.layer("Linear", 5), lamina.layer("LeakyRelu", 0.2)], (4,), None),
    "Elu": (lambda: [lamina.layer("Linear", 5), lamina.layer("Elu", 1.5)], (4,), None),
    "Gelu": (lambda: [lamina.layer("Linear", 5), "Gelu"], (4,), None),
    "Gelu-tanh": (lambda: [lamina.layer("Linear", 5), lamina.layer("Gelu", approximate="tanh")], (4,), None),
    "Softplus": (lambda: [lamina.layer("Linear", 5), "Softplus"], (4,), None),
    "Silu": (lambda: [lamina.layer("Linear", 5), "Silu"], (4,), None),
    "LogSoftmax": (lambda: [lamina.layer("Linear", 5), "LogSoftmax"], (4,), None),
    "Flatten": (lambda: ["Flatten", lamina.layer("Linear", 3)], (2, 3, 2), None),
    "Reshape": (lambda: [lamina.layer("Reshape", (3, -1)), lamina.layer("Linear", 2)], (12,), None),
    "Dropout": (lambda: [lamina.layer("Linear", 5), lamina.layer("Dropout", 0.5)], (4,), None),
    "RandomFlip": (lambda: [lamina.layer("RandomFlip", "both"), "Flatten", lamina.layer("Linear", 3)], (2, 6, 6), None),
    "RandomCrop": (lambda: [lamina.layer("RandomCrop", (4, 3)), "Flatten", lamina.layer("Linear", 3)], (2, 6, 6), None),
    "RandomCrop-padded": (lambda: [lamina.layer("RandomCrop", 7, padding=1), "Flatten", lamina.layer("Linear", 3)],
                          (2, 6, 6), None),
    "RandomCrop-identity": (lambda: [lamina.layer("RandomCrop", 6, padding=2), "Flatten", lamina.layer("Linear", 3)],
                            (2, 6, 6), None),
    "RandomTranslation": (lambda: [lamina.layer("RandomTranslation", 2), "Flatten", lamina.layer("Linear", 3)],
                          (2, 6, 6), None),
    "GaussianNoise": (lambda: [lamina.layer("Linear", 5), lamina.layer("GaussianNoise", 0.3)], (4,), None),
    "RandomErasing": (lambda: [lamina.layer("RandomErasing", p=1.0), "Flatten", lamina.layer("Linear", 3)], (2, 6, 6),
                      None),
    "BatchNorm": (lambda: [lamina.layer("Linear", 5), "BatchNorm"], (4,), None),
    "BatchNorm-2d": (lambda: ["BatchNorm", "Flatten"], (3, 4, 4), None),
    "LayerNorm": (lambda: [lamina.layer("Linear", 5), "LayerNorm"], (3, 4), None),
    "Normalization": (lambda: [lamina.layer("Normalization", mean=[0.5, -1.0, 2.0, 0.0], variance=[1.0, 4.0, 0.0, 9.0]),
                                lamina.layer("Linear", 3)], (4,), None),
    "Normalization-axes": (lambda: [lamina.layer("Normalization", axis=[1, 2], mean=1.5, variance=[[0.5], [2.0]]),
                                    "Flatten"],
                           (2, 3), None),
    "Embedding": (lambda: [lamina.layer("Embedding", 11, 4), "Flatten", lamina.layer("Linear", 2)], (3,), 11),
    "Sequential": (lambda: [lamina.layer("Sequential", [lamina.layer("Linear", 6), "Tanh", lamina.layer("Linear", 3)])],
                   (4,), None),
    "Residual": (lambda: [lamina.layer("Residual", ["LayerNorm", lamina.layer("Linear", 4), "Relu"])], (4,), None),
    "Parallel-concat": (lambda: [lamina.layer("Parallel",
                                              [[lamina.layer("Linear", 3)], ["Tanh", lamina.layer("Linear", 2)]])],
                        (4,), None),
    "Parallel-add": (lambda: [lamina.layer("Parallel", [["Tanh"], ["Sigmoid"], [lamina.layer("Linear", 4)]],
                                           merge="add")], (4,), None),
    "Parallel-mul": (lambda: [lamina.layer("Parallel", [["Tanh"], ["Sigmoid"], ["Relu"]], merge="mul")], (4,), None),
    "Parallel-axis": (lambda: [lamina.layer("Parallel", [["Tanh"], ["Sigmoid"]], axis=1)], (2, 3), None),
    "nested": (lambda: [lamina.layer("Residual", [lamina.layer("Sequential", [lamina.layer("Parallel", [
        [lamina.layer("Linear", 2)], [lamina.layer("Residual", ["Tanh"]), lamina.layer("Linear", 2)]]), "Relu"])])],
               (4,), None),
    "MultiHeadAttention": (lambda: [lamina.layer("MultiHeadAttention", 2)], (5, 4), None),
    "MultiHeadAttention-causal": (lambda: [lamina.layer("MultiHeadAttention", 2, causal=True)], (5, 4), None),
    "TransformerBlock": (lambda: [lamina.layer("TransformerBlock", 2, 12, dropout=0.1)], (5, 4), None),
    "TransformerBlock-post-relu-causal": (lambda: [lamina.layer("TransformerBlock", 2, 12, causal=True,
                                                                norm_first=False, activation="relu")], (5, 4), None),
    "PositionalEmbedding": (lambda: [lamina.layer("PositionalEmbedding", 9)], (5, 4), None),
    "SinusoidalPositions": (lambda: ["SinusoidalPositions", lamina.layer("Linear", 2)], (5, 4), None),
}
# Layers exported by the other ONNX test files (the merge layers, which take a list, in graph models:
# test_onnx_graph.py)
ELSEWHERE = {"RNN", "LSTM", "GRU", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Conv1D", "MaxPool1D",
             "AvgPool1D",
             "GlobalAvgPool1D", "GlobalMaxPool1D", "Concatenate", "Add", "Multiply", "Average"}


def test_every_registered_layer_exports_and_is_tested_here_or_beside():
    infos = [info for info in lamina.get_registry().plugins("layer")
             if info.cls.__module__.startswith("lamina.plugins")]
    covered = {name.split("-")[0] for name in CASES} | ELSEWHERE
    assert {info.name for info in infos} - covered == set(), "add an ONNX case for these layers"
    for info in infos:
        assert callable(getattr(info.cls, "to_onnx", None)) or info.cls._autodiff, info.name


@needs_onnx
@pytest.mark.parametrize("name", list(CASES))
def test_layer_exports_and_matches_predict_in_float32(name, tmp_path):
    make, shape, high = CASES[name]
    model = built(make(), shape, high=high)
    assert onnx_difference(model, tmp_path, high=high) <= 1e-5


@needs_onnx
@pytest.mark.parametrize("name", [name for name in CASES if CASES[name][2] is None])
def test_layer_exports_and_matches_predict_in_float64(name, tmp_path):
    make, shape, _ = CASES[name]
    model = built(make(), shape, dtype=np.float64)
    if model.dtype != np.float64:
        pytest.skip("no parameters: the model computes in float32 whatever its input")
    written = {node.op_type for node in _graph(model, tmp_path).node}
    missing = sorted(op for op in NO_DOUBLE if op in written)
    if missing:
        pytest.skip(f"onnxruntime has no double kernel for {', '.join(missing)}")
    assert onnx_difference(model, tmp_path) <= 1e-10


def _graph(model, tmp_path):
    import onnx

    return onnx.load(str(model.export_onnx(tmp_path / "probe.onnx"))).graph


# -- forward-only layers: traced, with no export code ---------------------------------------------------


class GatedUnit(lamina.Layer):
    """A gated linear unit written in numpy only: a * sigmoid(b), [a | b] = x @ W + c."""

    def __init__(self, units):
        self.units = units

    def build(self, x):
        self.weight = lamina.Parameter(lamina.rng().normal(size=(x.shape[-1], 2 * self.units)).astype(x.dtype))
        self.bias = lamina.Parameter(np.zeros(2 * self.units, x.dtype))

    def forward(self, x):
        a, b = np.split(x @ self.weight + self.bias, 2, axis=-1)
        return a * (1 / (1 + np.exp(-b)))


class Kitchen(lamina.Layer):
    """Most of the numpy a forward-only layer may use, in one forward."""

    def build(self, x):
        self.scale = lamina.Parameter(np.linspace(0.5, 1.5, x.shape[-1]).astype(x.dtype))

    def forward(self, x):
        h = x * self.scale
        centred = h - h.mean(axis=-1, keepdims=True)
        z = centred / np.sqrt(np.var(h, axis=-1, keepdims=True) + 1e-5)
        parts = [np.maximum(z, 0), np.abs(z) ** 1.5, np.clip(z, -0.5, 0.5), np.where(z > 0.1, z, -z),
                 np.tanh(z) + np.cos(z) - np.sin(z), np.log1p(np.square(z)), np.expm1(-np.abs(z)),
                 np.flip(z, axis=-1), np.cumsum(z, axis=-1), lamina.ops.softplus(z), lamina.ops.softmax(z),
                 lamina.ops.log_softmax(z), lamina.ops.silu(z), lamina.ops.elu(z), lamina.ops.leaky_relu(z, 0.1),
                 np.minimum(z, np.zeros_like(z)), np.ones_like(z) * np.max(z, axis=-1, keepdims=True)]
        joined = np.concatenate(parts, axis=-1)
        stacked = np.stack([joined[:, :4], joined[:, 4:8]], axis=1)  # (batch, 2, 4)
        swapped = np.einsum("bij->bji", stacked).reshape(x.shape[0], -1)
        padded = np.pad(swapped[:, ::2], ((0, 0), (1, 2)))
        picked = padded[:, [0, 2, 3]][..., None].squeeze(-1)
        summary = lamina.ops.logsumexp(joined, axis=-1, keepdims=True) + np.sum(joined, axis=-1, keepdims=True) * 0.01
        return np.concatenate([picked, summary, np.transpose(stacked, (0, 2, 1))[:, 1],
                               joined[:, -3:] @ np.eye(3, dtype=x.dtype)], axis=-1)


@needs_onnx
@pytest.mark.parametrize("opset", [17, 18, 21])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_only_layers_export_with_no_export_code(tmp_path, opset, dtype):
    model = lamina.Model([GatedUnit(3), Kitchen(), lamina.layer("Linear", 2)])
    model(RNG.normal(size=(4, 5)).astype(dtype))
    assert not hasattr(GatedUnit, "to_onnx") and not hasattr(Kitchen, "to_onnx")
    assert onnx_difference(model, tmp_path, opset=opset) <= (1e-10 if dtype == np.float64 else 1e-5)


@needs_onnx
def test_the_template_plugin_layer_exports(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "lamina_template_for_onnx", ROOT / "examples" / "plugin-template" / "src" / "lamina_template" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = lamina.Model([lamina.layer("Linear", 4), module.Scale(init=1.5), "Tanh"])
    model(RNG.normal(size=(3, 5)).astype(np.float32))
    assert onnx_difference(model, tmp_path) <= 1e-5


# -- what cannot be exported, and how it says so ----------------------------------------------------------


class BatchBaked(lamina.Layer):
    def forward(self, x):
        return x + np.zeros((x.shape[0], x.shape[1]), dtype=x.dtype)  # a constant as big as the batch


class Products(lamina.Layer):
    def forward(self, x):
        return np.cumprod(x, axis=-1)


class Branchy(lamina.Layer):
    def forward(self, x):
        return x if np.max(x) > 0 else -x


class HandWritten(lamina.Layer):
    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return 2 * grad


@needs_onnx
@pytest.mark.parametrize("layer, message", [
    (BatchBaked(), "layer 1 writes a graph that depends on the batch size"),
    (Products(), "np.cumprod has no ONNX mapping in lamina"),
    (Branchy(), "Python control flow on a value"),
    (HandWritten(), "has a hand-written backward and no to_onnx method.*write HandWritten forward-only.*add to_onnx"),
])
def test_what_cannot_be_exported_says_why_and_leaves_no_file(tmp_path, layer, message):
    model = lamina.Model([lamina.layer("Linear", 3), layer])
    model(RNG.normal(size=(2, 4)).astype(np.float32))
    target = tmp_path / "model.onnx"
    with pytest.raises(lamina.LaminaError, match=message):
        model.export_onnx(target)
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_bad_opsets_missing_folders_and_unbuilt_models_are_clear_errors(tmp_path):
    model = built([lamina.layer("Linear", 2)], (3,))
    for opset in (16, 22, "17", 17.0, True):
        with pytest.raises(lamina.ArgumentError, match="lamina writes ONNX opsets 17 to 21"):
            model.export_onnx(tmp_path / "m.onnx", opset=opset)
    with pytest.raises(lamina.LaminaError, match="the folder .* does not exist"):
        model.export_onnx(tmp_path / "missing" / "m.onnx")
    with pytest.raises(lamina.LaminaError, match="has not seen an input yet"):
        lamina.Model([lamina.layer("Linear", 2)]).export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_export_is_inference_whatever_mode_the_model_is_in(tmp_path):
    model = built([lamina.layer("Linear", 8), lamina.layer("Dropout", 0.5), "BatchNorm", lamina.layer("Linear", 2)],
                  (4,))
    model.set_training(True)
    path = model.export_onnx(tmp_path / "m.onnx")
    assert [layer.training for layer in model.layers] == [True] * 4  # the model's mode is left as it was
    x = RNG.normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x), model.predict(x), rtol=1e-5, atol=1e-6)


@needs_onnx
def test_the_file_is_checked_and_names_its_input_and_output(tmp_path):
    import onnx

    model = built([lamina.layer("Linear", 3), "Relu"], (4,))
    proto = onnx.load(str(model.export_onnx(tmp_path / "m.onnx", opset=19)))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 4
    assert {init.name for init in proto.graph.initializer} == {"0.weight", "0.bias"}  # named as in lamina's files
    assert proto.opset_import[0].version == 19


# -- the example models and the command line ------------------------------------------------------------


@needs_onnx
@pytest.mark.parametrize("config", sorted(path.name for path in (ROOT / "examples" / "configs").glob("*.toml")))
def test_the_example_models_export_and_match(tmp_path, config):
    settings = runconfig.read(ROOT / "examples" / "configs" / config)
    if config == "images.toml":  # its folder of PNG files is written by an example script first
        pytest.importorskip("PIL", reason="image_folder reads images with Pillow: pip install Pillow")
        out = tmp_path / "digits_png"
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "make_image_folder.py"), "--out", str(out)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        settings.data["dataset"]["path"] = str(out)
    data = runconfig.load_dataset(settings)
    settings = runconfig.count_classes(settings, data)  # units = "classes"
    model = runconfig.build_model(settings, data[0])
    if model.graph is not None:  # a config of [[inputs]] and [[nodes]]: one ONNX input and output per name
        assert graph_onnx_difference(model, data[0], tmp_path) <= 1e-5
        return
    x_train = np.asarray(data[0])
    model(x_train[:4])
    high = int(np.max(x_train)) + 1 if x_train.dtype.kind in "iu" else None
    assert onnx_difference(model, tmp_path, high=high, batches=(2, 5)) <= 1e-5


def graph_onnx_difference(model, x, tmp_path):
    """max|onnx - predict| / max|predict| of a graph model on the first rows of its data, input by name."""
    import onnxruntime

    rows = x if isinstance(x, dict) else dict(zip(model.input_names, [x]))
    feeds = {name: np.asarray(rows[name][:5]) for name in model.input_names}
    feeds = {name: v if v.dtype.kind in "iu" else v.astype(model.dtype) for name, v in feeds.items()}
    session = onnxruntime.InferenceSession(str(model.export_onnx(tmp_path / "graph.onnx")),
                                           providers=["CPUExecutionProvider"])
    got = dict(zip([out.name for out in session.get_outputs()], session.run(None, feeds)))
    expected = model.predict(feeds if model.input_format == "dict" else list(feeds.values())
                             if model.input_format == "list" else feeds[model.input_names[0]])
    expected = expected if isinstance(expected, dict) else dict(zip(model.output_names, [expected]))
    return max(float(np.abs(got[name] - value).max()) / max(float(np.abs(value).max()), 1e-30)
               for name, value in expected.items())


@needs_onnx
def test_lamina_export_writes_a_file_from_a_saved_model(tmp_path):
    model = built([lamina.layer("Linear", 3), "Softmax"], (4,))
    saved = model.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    result = subprocess.run([sys.executable, "-m", "lamina", "export", str(saved), str(out), "--opset", "18"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "opset 18" in result.stdout and "('batch', 4)" in result.stdout
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, x), model.predict(x), rtol=1e-5, atol=1e-7)
    result = subprocess.run([sys.executable, "-m", "lamina", "export", str(saved), str(tmp_path / "x.onnx"),
                             "--opset", "9"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "lamina writes ONNX opsets 17 to 21" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


class ScaledTanh(lamina.Layer):
    """docs/pages/writing-plugins.md's hand-written layer with to_onnx, verbatim."""

    def __init__(self, scale=2.0):
        self.scale = scale

    def forward(self, x):
        self._y = np.tanh(x)
        return self.scale * self._y

    def backward(self, grad):
        return grad * self.scale * (1 - self._y ** 2)

    def to_onnx(self, graph, x):
        return graph.op("Mul", graph.op("Tanh", x), graph.constant(self.scale, like=x))


@needs_onnx
def test_the_guides_examples_export(tmp_path):
    from test_composite import Highway  # the guide's forward-only layer made of layers

    model = built([lamina.layer("Linear", 4), ScaledTanh(1.5), Highway(), lamina.layer("Linear", 2)], (3,))
    assert onnx_difference(model, tmp_path) <= 1e-5


def test_without_the_onnx_package_export_says_what_to_install(tmp_path, monkeypatch):
    model = built([lamina.layer("Linear", 2)], (3,))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(lamina.LaminaError, match=r"needs the onnx package: pip install onnx"):
        model.export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


class LookUp(lamina.Layer):
    """A forward-only embedding: the ids index a table, as a Gather of the traced ids."""

    integer_input = True

    def __init__(self):
        self.table = lamina.Parameter(np.arange(24, dtype=np.float32).reshape(8, 3) / 10)

    def forward(self, ids):
        return self.table[ids].reshape(ids.shape[0], -1) * 2.0


@needs_onnx
def test_a_traced_index_stays_a_value_of_the_graph(tmp_path):
    model = lamina.Model([LookUp(), lamina.layer("Linear", 2)])
    model(RNG.integers(0, 8, size=(4, 3)))
    assert onnx_difference(model, tmp_path, high=8) <= 1e-5  # the example's ids are not baked in


class Forward(lamina.Layer):
    """A forward-only layer from a function, for the edge cases below."""

    def __init__(self, function, integer_input=False):
        self.function = function
        self.integer_input = integer_input

    def forward(self, x):
        return self.function(x)


TABLE = lamina.Parameter(np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3))
EDGES = {  # numpy's meaning, which the ONNX file must keep
    "empty axes": lambda x: x - x.mean(axis=(), keepdims=True) + np.sum(x, axis=()) + np.squeeze(x, axis=()),
    "positional mean, methods": lambda x: (np.mean(x, 1, None, None, True) + x.std(axis=-1, keepdims=True)
                                           + x.clip(min=0)),
    "booleans": lambda x: (((x > 0) + (x < -1)) * x + (x > 0).sum(axis=-1, keepdims=True)
                           + np.mean(x > 0.5, axis=-1, keepdims=True)),
    "predicates": lambda x: np.where(np.isfinite(x) & ~np.isnan(x), x, 0.0),
    "log1p, expm1 near 0": lambda x: (np.log1p(x * 1e-6) + np.expm1(x * 1e-6)) * 1e6,
}


@needs_onnx
@pytest.mark.parametrize("name", list(EDGES))
def test_numpy_edge_cases_keep_numpys_meaning(tmp_path, name):
    model = lamina.Model([lamina.layer("Linear", 4), Forward(EDGES[name])])
    model(RNG.normal(size=(3, 5)).astype(np.float32))
    assert onnx_difference(model, tmp_path) <= 1e-5


@needs_onnx
def test_integer_means_are_floats_as_in_numpy(tmp_path):
    model = lamina.Model([Forward(lambda ids: TABLE[ids].sum(axis=1)
                                  * ids.mean(axis=1, keepdims=True).astype(np.float32),
                                  integer_input=True)])
    model(RNG.integers(0, 10, size=(4, 3)))
    assert onnx_difference(model, tmp_path, high=10) <= 1e-6


class Then(lamina.Layer):
    """Hand-written, exporting a sublayer on a value made by graph.op (which has no example)."""

    def __init__(self):
        self.act = lamina.layer("Gelu")

    def forward(self, x):
        return self.act(np.tanh(x))

    def backward(self, grad):
        raise NotImplementedError

    def to_onnx(self, graph, x):
        return graph.layer(self.act, graph.op("Tanh", x), "act")


def _in_place(x):
    y = x * 2
    y += 1
    return y


@needs_onnx
@pytest.mark.parametrize("layer, message", [
    (Forward(_in_place), r"layer 1 \(Forward\): an in-place operation .* write y = y \+ 1"),
    (Forward(lambda x: np.pad(x, ((0, 0), (1, 1)), constant_values=((0, 0), (1, 2)))), "a different constant per side"),
    (Forward(lambda x: x[:, : int(x[0, 0] > 0) + 1]), r"int\(\) of a value"),
    (Forward(lambda x: x[np.where(x > 0)]), "np.where with one argument"),
    (Then(), "has no example .* export sublayers on the layer's own input"),
])
def test_more_that_cannot_be_exported_names_the_layer(tmp_path, layer, message):
    model = lamina.Model([lamina.layer("Linear", 3), layer])
    model(RNG.normal(size=(2, 4)).astype(np.float32))
    with pytest.raises(lamina.LaminaError, match=message):
        model.export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_big_endian_weights_are_exported_converted(tmp_path):
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 3), "Tanh", lamina.layer("Linear", 2)])
    model.predict(np.ones((2, 4), dtype=">f4"))  # weights take the first input's dtype: big-endian
    assert str(model.dtype) == ">f4"
    path = model.export_onnx(tmp_path / "model.onnx")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x), model.predict(x), rtol=1e-5, atol=1e-6)
    assert str(model.dtype) == ">f4"  # the model's own arrays are left as they were


@needs_onnx
def test_export_refuses_examples_past_its_limit_before_making_them(tmp_path, monkeypatch):
    model = lamina.Model([lamina.layer("Conv1D", 4, 3, padding=2000)])
    model.predict(np.ones((1, 2, 8), dtype=np.float32))
    monkeypatch.setenv("LAMINA_MAX_LOAD_BYTES", str(2**20))  # the example pass may hold 64 KiB
    with pytest.raises(lamina.LaminaError, match=r"ONNX export: the example pass through layers\[0\] Conv1D\(.*"
                                                 r"LAMINA_MAX_LOAD_BYTES"):
        model.export_onnx(tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
