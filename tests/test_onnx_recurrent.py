"""ONNX export of RNN, LSTM and GRU: the file's output against model.predict, in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_onnx, onnx_difference

import lamina

pytestmark = needs_onnx

# (layer name, extra constructor arguments): every cell, RNN with both nonlinearities.
CELLS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
CELL_IDS = ["RNN-tanh", "RNN-relu", "LSTM", "GRU"]
EACH_CELL = pytest.mark.parametrize("name, kwargs", CELLS, ids=CELL_IDS)
SHAPES = pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequence"])
DIRECTIONS = pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])


def trained(name, kwargs, dtype=np.float32, steps=6, units=4, **options):
    """A one-layer model trained two steps on random data, so that its weights are no longer the initial draw."""
    lamina.seed(0)
    model = lamina.Model([lamina.layer(name, units, **kwargs, **options)])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, steps, 3)).astype(dtype)
    y = rng.normal(size=model.predict(x).shape).astype(dtype)
    model.train(x, y, optim=lamina.optimizer("Adam", lr=0.05), epochs=2, verbose=False)
    return model


@EACH_CELL
@SHAPES
@DIRECTIONS
def test_float32_file_computes_predict(name, kwargs, return_sequences, bidirectional, tmp_path):
    model = trained(name, kwargs, return_sequences=return_sequences, bidirectional=bidirectional)
    assert onnx_difference(model, tmp_path) <= 1e-5


@EACH_CELL
@DIRECTIONS
def test_float64_file_computes_predict(name, kwargs, bidirectional, tmp_path):
    model = trained(name, kwargs, dtype=np.float64, return_sequences=True, bidirectional=bidirectional)
    try:
        difference = onnx_difference(model, tmp_path)
    except Exception as error:  # onnxruntime's own exception classes
        if "NOT_IMPLEMENTED" in str(error) or "does not support double" in str(error):
            pytest.skip(f"onnxruntime runs {name} in float32 only on the CPU ({str(error).rsplit(': ', 1)[-1]})")
        raise
    assert difference <= 1e-10


@pytest.mark.parametrize("name, kwargs", CELLS[:1] + CELLS[2:], ids=["RNN-tanh", "LSTM", "GRU"])
@DIRECTIONS
def test_float64_file_matches_onnx_reference(name, kwargs, bidirectional, tmp_path):
    # onnxruntime runs these operators in float32 only; onnx's reference evaluator (numpy) checks
    # the float64 file instead. It knows no Relu activation, hence no RNN-relu here.
    from onnx.reference import ReferenceEvaluator

    model = trained(name, kwargs, dtype=np.float64, return_sequences=True, bidirectional=bidirectional)
    path = model.export_onnx(tmp_path / "model.onnx")
    x = np.random.default_rng(2).normal(size=(7, 6, 3))
    got = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    expected = model.predict(x)
    assert got.dtype == np.float64
    assert np.abs(got - expected).max() <= 1e-10 * np.abs(expected).max()


@EACH_CELL
@pytest.mark.parametrize("opset", [17, 21])
def test_opsets_17_and_21_write_one_recurrent_node(name, kwargs, opset, tmp_path):
    import onnx

    model = trained(name, kwargs, return_sequences=True, bidirectional=True)
    assert onnx_difference(model, tmp_path, opset=opset) <= 1e-5
    ops = [node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    assert ops.count(name) == 1 and len(ops) == 5, ops  # Transpose, the cell, Transpose, Reshape, Identity


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequence"])
def test_a_single_time_step_exports(return_sequences, tmp_path):
    model = trained("LSTM", {}, steps=1, return_sequences=return_sequences, bidirectional=True)
    assert onnx_difference(model, tmp_path) <= 1e-5


def test_embedding_gru_linear_exports(tmp_path):
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Embedding", 10, 3), lamina.layer("GRU", 5, bidirectional=True),
                          lamina.layer("Linear", 2)])
    rng = np.random.default_rng(1)
    model.train(rng.integers(0, 10, size=(6, 4)), rng.normal(size=(6, 2)), epochs=2, verbose=False)
    assert onnx_difference(model, tmp_path, high=10) <= 1e-5
