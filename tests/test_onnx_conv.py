"""ONNX export of the convolution and pooling layers, 1-D and 2-D: the file's output against
model.predict, in onnxruntime (float32, and float64 where it has the operator) and in onnx's
reference evaluator (float64, every operator)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_onnx, onnx_difference

import lamina

pytestmark = needs_onnx


class Scale(lamina.Layer):
    """y = x * one weight per channel, forward-only (traced on export): put first, it gives a
    model of parameterless pools the dtype of its input, float64 included."""

    def build(self, x):
        self.weight = lamina.Parameter(
            np.linspace(0.5, 1.5, x.shape[1]).reshape(-1, *[1] * (x.ndim - 2)).astype(x.dtype))

    def forward(self, x):
        return self.weight * x  # (x * self.weight fails to export: the Parameter reaches Symbolic untraced)


# (layers as (name, kwargs), input shape without the batch axis): every option of each layer,
# odd and even kernels, and sizes that leave a partial window at the end (dropped, floor mode).
CASES = {
    "Conv2D": [
        ([("Conv2D", {"filters": 3, "kernel_size": 3})], (2, 7, 6)),
        ([("Conv2D", {"filters": 3, "kernel_size": 3, "padding": 1})], (2, 5, 6)),
        ([("Conv2D", {"filters": 2, "kernel_size": (2, 3), "padding": (1, 2)})], (3, 5, 4)),
        ([("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"})], (2, 5, 6)),
        ([("Conv2D", {"filters": 3, "kernel_size": 4, "padding": "same"})], (2, 5, 6)),
        ([("Conv2D", {"filters": 2, "kernel_size": (2, 4), "padding": "same", "dilation": (3, 1)})], (2, 7, 6)),
        ([("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "valid", "stride": 2})], (2, 8, 7)),
        ([("Conv2D", {"filters": 2, "kernel_size": (3, 2), "stride": (2, 3), "dilation": (1, 2), "padding": 1})],
         (3, 8, 9)),
    ],
    "Conv1D": [
        ([("Conv1D", {"filters": 3, "kernel_size": 3})], (2, 9)),
        ([("Conv1D", {"filters": 3, "kernel_size": 2, "padding": 1})], (2, 6)),
        ([("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "same"})], (2, 7)),
        ([("Conv1D", {"filters": 2, "kernel_size": 4, "padding": "same", "dilation": 2})], (3, 9)),
        ([("Conv1D", {"filters": 3, "kernel_size": (3,), "padding": "valid", "stride": 2})], (2, 10)),
        ([("Conv1D", {"filters": 2, "kernel_size": 2, "stride": 3, "dilation": 2, "padding": 2})], (3, 11)),
    ],
    "MaxPool2D": [
        ([("MaxPool2D", {"pool_size": 2})], (2, 6, 8)),
        ([("MaxPool2D", {"pool_size": 3})], (2, 7, 8)),
        ([("MaxPool2D", {"pool_size": 2, "stride": 1})], (2, 5, 4)),
        ([("MaxPool2D", {"pool_size": (2, 3), "stride": (1, 2)})], (2, 5, 8)),
        ([("MaxPool2D", {"pool_size": 3, "stride": 2})], (2, 8, 7)),
    ],
    "AvgPool2D": [
        ([("AvgPool2D", {"pool_size": 2})], (2, 6, 8)),
        ([("AvgPool2D", {"pool_size": 3})], (2, 7, 8)),
        ([("AvgPool2D", {"pool_size": 2, "stride": 1})], (2, 5, 4)),
        ([("AvgPool2D", {"pool_size": (2, 3), "stride": (1, 2)})], (2, 5, 8)),
        ([("AvgPool2D", {"pool_size": 3, "stride": 2})], (2, 8, 7)),
    ],
    "MaxPool1D": [
        ([("MaxPool1D", {"pool_size": 2})], (3, 8)),
        ([("MaxPool1D", {"pool_size": 3})], (3, 8)),
        ([("MaxPool1D", {"pool_size": 3, "stride": 1})], (2, 5)),
        ([("MaxPool1D", {"pool_size": (2,), "stride": 3})], (2, 9)),
    ],
    "AvgPool1D": [
        ([("AvgPool1D", {"pool_size": 2})], (3, 8)),
        ([("AvgPool1D", {"pool_size": 3})], (3, 8)),
        ([("AvgPool1D", {"pool_size": 3, "stride": 1})], (2, 5)),
        ([("AvgPool1D", {"pool_size": (2,), "stride": 3})], (2, 9)),
    ],
    "GlobalAvgPool2D": [([("GlobalAvgPool2D", {})], (3, 5, 4))],
    "GlobalAvgPool1D": [([("GlobalAvgPool1D", {})], (3, 7))],
    "GlobalMaxPool1D": [([("GlobalMaxPool1D", {})], (3, 7))],
    "chains": [
        ([("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}), ("MaxPool2D", {"pool_size": 2}),
          ("Conv2D", {"filters": 3, "kernel_size": 2, "stride": 2}), ("GlobalAvgPool2D", {})], (2, 9, 8)),
        ([("Conv2D", {"filters": 3, "kernel_size": 3, "padding": 1}), ("AvgPool2D", {"pool_size": 2, "stride": 1})],
         (1, 6, 6)),
        ([("Conv1D", {"filters": 4, "kernel_size": 4, "padding": "same"}), ("AvgPool1D", {"pool_size": 2}),
          ("Conv1D", {"filters": 3, "kernel_size": 3, "dilation": 2}), ("GlobalMaxPool1D", {})], (2, 16)),
        ([("Conv1D", {"filters": 3, "kernel_size": 3}), ("MaxPool1D", {"pool_size": 3, "stride": 2}),
          ("GlobalAvgPool1D", {})],
         (2, 12)),
    ],
}
PARAMS = [pytest.param(layers, shape, id=f"{group}-{i}") for group, cases in CASES.items()
          for i, (layers, shape) in enumerate(cases)]
EACH_CASE = pytest.mark.parametrize("layers, shape", PARAMS)


def built(layers, shape, dtype=np.float32, scale=False):
    """A model of `layers` (with a Scale first if `scale`), built on random input of `shape` and
    given random weights and biases, so that no value is trivial."""
    model = lamina.Model(([Scale()] if scale else []) + [lamina.layer(name, **kwargs) for name, kwargs in layers])
    rng = np.random.default_rng(1)
    model(rng.normal(size=(2, *shape)).astype(dtype))
    for param in model.parameters().values():
        param.value[...] = rng.normal(scale=0.5, size=param.shape)
    assert model.dtype == dtype
    return model


def has_weights(layers):
    return any(name.startswith("Conv") for name, _ in layers)


@EACH_CASE
def test_float32_file_computes_predict(layers, shape, tmp_path):
    model = built(layers, shape)
    assert onnx_difference(model, tmp_path) <= 1e-5


@EACH_CASE
def test_float64_file_computes_predict_in_onnxruntime(layers, shape, tmp_path):
    # A Scale first makes a model of pools float64 (their own models take float32).
    model = built(layers, shape, np.float64, scale=not has_weights(layers))
    try:
        difference = onnx_difference(model, tmp_path)
    except Exception as error:  # onnxruntime's own exception classes
        message = str(error)
        if "NOT_IMPLEMENTED" in message and "Could not find an implementation for " in message:
            op = message.split("Could not find an implementation for ", 1)[1].split("(", 1)[0]
            pytest.skip(f"onnxruntime has no float64 {op} on the CPU")
        raise
    assert difference <= 1e-10


@EACH_CASE
def test_float64_file_matches_onnx_reference(layers, shape, tmp_path):
    # onnx's reference evaluator (numpy) runs every operator in float64, Conv and AveragePool too.
    from onnx.reference import ReferenceEvaluator

    model = built(layers, shape, np.float64, scale=not has_weights(layers))
    path = model.export_onnx(tmp_path / "model.onnx")
    for batch in (1, 4):
        x = np.random.default_rng(batch).normal(size=(batch, *shape))
        got = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
        expected = model.predict(x)
        assert got.dtype == np.float64 and got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-10 * np.abs(expected).max()


@pytest.mark.parametrize("opset", [17, 21])
@pytest.mark.parametrize("dims", [1, 2])
def test_opsets_17_and_21_write_one_node_per_layer(dims, opset, tmp_path):
    import onnx

    conv, pool, average, glob = (("Conv1D", "MaxPool1D", "AvgPool1D", "GlobalMaxPool1D") if dims == 1
                                 else ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"))
    layers = [(conv, {"filters": 3, "kernel_size": 2, "padding": "same"}), (pool, {"pool_size": 2}),
              (average, {"pool_size": 2, "stride": 1}), (glob, {})]
    model = built(layers, (2, 8) if dims == 1 else (2, 8, 6))
    assert onnx_difference(model, tmp_path, opset=opset) <= 1e-5
    nodes = onnx.load(str(tmp_path / "model.onnx")).graph.node
    reduce = "ReduceMax" if dims == 1 else "ReduceMean"
    assert [node.op_type for node in nodes] == ["Conv", "MaxPool", "AveragePool", reduce, "Identity"]
    conv_node = nodes[0]
    attributes = {a.name: list(a.ints) for a in conv_node.attribute}
    # "same" with an even kernel: PyTorch's split, the odd pixel at the end of each axis
    assert attributes["pads"] == [0] * dims + [1] * dims
    if opset >= 18:  # the reduction's axes: an input from opset 18, an attribute before
        assert len(nodes[3].input) == 2
    else:
        assert len(nodes[3].input) == 1 and sorted(a.name for a in nodes[3].attribute) == ["axes", "keepdims"]


def test_weights_are_stored_as_they_are(tmp_path):
    # lamina's Conv2D and Conv1D weights are laid out as ONNX's (filters, channels, *kernel): no copy, no transpose.
    import onnx
    from onnx import numpy_helper

    model = built([("Conv2D", {"filters": 3, "kernel_size": (2, 3)}), ("Conv2D", {"filters": 2, "kernel_size": 1})],
                  (4, 5, 5))
    path = model.export_onnx(tmp_path / "model.onnx")
    stored = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer}
    assert {name: array.shape for name, array in stored.items()} == {
        "0.weight": (3, 4, 2, 3), "0.bias": (3,), "1.weight": (2, 3, 1, 1), "1.bias": (2,)}
    for name, param in model.parameters().items():
        np.testing.assert_array_equal(stored[name], param.value)

