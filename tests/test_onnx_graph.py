"""ONNX export of graph models: one ONNX input and output per name, shared layers' weights stored
once, the merge layers; each file run in onnxruntime against model.predict."""
from __future__ import annotations

import numpy as np
import pytest

import lamina

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def run(path, feeds):
    """onnxruntime's outputs for `feeds` (a dict by input name), by output name."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    if any(x.dtype == np.float64 for x in feeds.values()):  # extended fusions lose double precision
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def inputs(model, rows, seed=0, dtype=np.float32):
    """Random rows for each input of a graph model, by name (integers below 5 for integer inputs)."""
    rng = np.random.default_rng(seed)
    found = {}
    for name, symbol in zip(model.input_names, model.graph.inputs):
        shape = (rows, *symbol.shape)
        integer = symbol.dtype is not None and symbol.dtype.kind in "iu"
        found[name] = rng.integers(0, 5, size=shape) if integer else rng.normal(size=shape).astype(dtype)
    return found


def by_name(model, values):
    """The model's outputs (in its structure) as a dict by name."""
    if model.output_format == "dict":
        return values
    return dict(zip(model.output_names, values if model.output_format == "list" else [values]))


def structured(model, feeds):
    """`feeds` (by name) in the structure the model takes."""
    if model.input_format == "dict":
        return feeds
    values = [feeds[name] for name in model.input_names]
    return values if model.input_format == "list" else values[0]


def difference(model, tmp_path, batches=(2, 7), opset=17, dtype=np.float32):
    """Export `model` and return the largest max|onnx - predict| / max|predict| over its outputs
    and the batch sizes; checks the file's input and output names, dtypes and shapes."""
    path = model.export_onnx(tmp_path / "graph.onnx", opset=opset)
    proto = onnx.load(str(path))
    assert [value.name for value in proto.graph.input] == list(model.input_names)
    assert [value.name for value in proto.graph.output] == list(model.output_names)
    worst = 0.0
    for seed, batch in enumerate(batches):
        feeds = inputs(model, batch, seed, dtype)
        expected = by_name(model, model.predict(structured(model, feeds)))
        got = run(path, feeds)
        assert list(got) == list(model.output_names)
        for name, value in expected.items():
            assert got[name].shape == value.shape and got[name].dtype == value.dtype, name
            scale = max(float(np.abs(value).max()), 1e-30)
            worst = max(worst, float(np.abs(got[name] - value).max()) / scale)
    return worst


def trained(model, seed=0):
    """`model` after two small Adam steps on random data (no weight left at its initial value)."""
    feeds = inputs(model, 8, seed=100 + seed, dtype=model.dtype)
    out = by_name(model, model.predict(structured(model, feeds)))
    rng = np.random.default_rng(seed)
    targets = {name: rng.normal(size=value.shape).astype(value.dtype) for name, value in out.items()}
    y = {"dict": targets, "list": list(targets.values())}.get(model.output_format, next(iter(targets.values())))
    model.train(structured(model, feeds), y, loss="MSE", optim="Adam", epochs=2, batch_size=4, verbose=False)
    return model


def shared_encoder(dtype=None):
    """The issue's model, its encoder used on both inputs: dict inputs by name, dict outputs by name."""
    a, b = lamina.Input((6,), name="a", dtype=dtype), lamina.Input((1, 2, 3), name="b", dtype=dtype)
    enc, tanh = lamina.layer("Linear", 5), lamina.layer("Tanh")
    h = lamina.layer("Concatenate")([tanh(enc(a)), tanh(enc(lamina.layer("Flatten")(b)))])
    return lamina.Model(inputs={"a": a, "b": b},
                        outputs={"cls": lamina.layer("Linear", 3)(h), "box": lamina.layer("Linear", 4)(h)})


def test_a_two_input_two_output_model_with_a_shared_encoder_matches_onnxruntime(tmp_path):
    lamina.seed(0)
    model = trained(shared_encoder())
    assert difference(model, tmp_path) <= 1e-5
    graph = onnx.load(str(tmp_path / "graph.onnx")).graph
    # the weights once each, named as model.parameters() names them: the encoder's "0.weight" once
    assert [init.name for init in graph.initializer if not init.name.endswith("shape")] == list(model.parameters())
    readers = [node for node in graph.node if "0.weight" in node.input]
    assert len(readers) == 2  # read by each use
    for value in (*graph.input, *graph.output):  # a free batch axis, the rest fixed
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_a_list_input_model_with_every_merge_layer_matches_onnxruntime(tmp_path):
    lamina.seed(1)
    left, right = lamina.Input((5,), name="left"), lamina.Input((5,))
    enc = lamina.layer("Linear", 4)
    ea, eb = enc(left), enc(right)
    merged = [lamina.layer(name)([ea, eb]) for name in ("Multiply", "Add", "Average")]
    model = trained(lamina.Model(inputs=[left, right],
                                 outputs=[lamina.layer("Linear", 1)(lamina.layer("Concatenate")(merged)), merged[1]]))
    assert model.input_names == ("left", "input_1") and model.output_names == ("output_0", "output_1")
    assert difference(model, tmp_path) <= 1e-5


def test_an_output_that_feeds_another_output_and_an_input_used_twice(tmp_path):
    lamina.seed(2)
    x = lamina.Input((4,), name="x")
    first = lamina.layer("Linear", 4)(x)
    second = lamina.layer("Linear", 2)(lamina.layer("Relu")(lamina.layer("Add")([first, x])))
    model = trained(lamina.Model(inputs=x, outputs={"first": first, "second": second}))
    assert difference(model, tmp_path) <= 1e-5


@pytest.mark.parametrize("opset", [17, 21])
def test_a_graph_model_in_float64_matches_to_1e_10(tmp_path, opset):
    lamina.seed(3)
    model = shared_encoder(dtype="float64")
    assert model.dtype == np.float64
    assert difference(model, tmp_path, opset=opset, dtype=np.float64) <= 1e-10


def test_one_input_one_output_graph_names_them_as_a_chain_does(tmp_path):
    lamina.seed(4)
    x = lamina.Input((3,))
    model = lamina.Model(inputs=x, outputs=lamina.layer("Linear", 2)(x))
    assert difference(model, tmp_path) <= 1e-5
    graph = onnx.load(str(tmp_path / "graph.onnx")).graph
    assert ([v.name for v in graph.input], [v.name for v in graph.output]) == (["input"], ["output"])


def test_integer_and_float_inputs_together(tmp_path):
    lamina.seed(5)
    ids, features = lamina.Input((3,), name="ids", dtype="int64"), lamina.Input((2,), name="features")
    embedded = lamina.layer("Flatten")(lamina.layer("Embedding", 5, 2)(ids))
    model = trained(lamina.Model(inputs={"ids": ids, "features": features},
                                 outputs=lamina.layer("Linear", 1)(lamina.layer("Concatenate")([embedded, features]))))
    assert difference(model, tmp_path) <= 1e-5
    graph = onnx.load(str(tmp_path / "graph.onnx")).graph
    assert [v.type.tensor_type.elem_type for v in graph.input] == [onnx.TensorProto.INT64, onnx.TensorProto.FLOAT]


# Every merge layer on one shared Linear(3) applied to Inputs of these row shapes
MERGES = {
    "Concatenate": ({}, [(4,), (4,)]),
    "Concatenate-axis": ({"axis": 1}, [(1, 3), (2, 3), (3, 3)]),
    "Concatenate-axis-negative": ({"axis": -2}, [(1, 3), (2, 3)]),
    "Add": ({}, [(3,), (3,), (3,)]),
    "Multiply": ({}, [(2, 3), (2, 3), (2, 3)]),
    "Average": ({}, [(4,), (4,), (4,)]),
}


def test_every_merge_layer_has_a_case_here():
    merges = {info.name for info in lamina.get_registry().plugins("layer")
              if info.cls.__module__ == "lamina.plugins.layers.merge"}
    assert merges and merges == {name.split("-")[0] for name in MERGES}


@pytest.mark.parametrize("name", list(MERGES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_merge_layer_exports_and_matches_predict(name, dtype, tmp_path):
    kwargs, shapes = MERGES[name]
    lamina.seed(6)
    values = [lamina.Input(shape, dtype=dtype) for shape in shapes]
    shared = lamina.layer("Linear", 3)  # weights in `dtype`, so that the model computes in it
    model = lamina.Model(inputs=values, outputs=lamina.layer(name.split("-")[0], **kwargs)([shared(v) for v in values]))
    assert model.dtype == dtype
    assert difference(model, tmp_path, dtype=dtype) <= (1e-10 if dtype == np.float64 else 1e-6)


def test_an_input_and_an_output_of_one_name_are_refused_with_the_fix(tmp_path):
    x = lamina.Input((3,), name="y")
    model = lamina.Model(inputs=x, outputs={"y": lamina.layer("Linear", 2)(x)})
    with pytest.raises(lamina.LaminaError, match=r"an input and an output both named 'y'.*rename the input"):
        model.export_onnx(tmp_path / "m.onnx")


def test_a_graph_node_called_with_keywords_exports_with_them(tmp_path):
    # tied embeddings: the node emb(h, reverse=True) is the Embedding's transposed matrix product
    lamina.seed(0)
    ids = lamina.Input((5,), dtype="int64", name="ids")
    emb = lamina.layer("Embedding", 11, 4)
    model = lamina.Model(inputs=ids, outputs=emb(lamina.layer("Tanh")(emb(ids)), reverse=True))
    x = np.random.default_rng(0).integers(0, 11, (3, 5))
    path = model.export_onnx(tmp_path / "tied.onnx")
    found = run(path, {"ids": x})["output"]
    assert found.shape == (3, 5, 11)
    np.testing.assert_allclose(found, model.predict(x), rtol=1e-5, atol=1e-6)


def test_a_graph_block_exports_its_nodes_keywords(tmp_path):
    class TiedBlock(lamina.GraphBlock):  # logits through the same Embedding: emb(h, reverse=True) inside a block
        integer_input = True

        def __init__(self, vocabulary=11, dim=4):
            self.vocabulary, self.dim = vocabulary, dim

        def graph(self, x):
            emb = lamina.layer("Embedding", self.vocabulary, self.dim)
            return emb(lamina.layer("Tanh")(emb(x)), reverse=True)

    lamina.seed(0)
    model = lamina.Model([TiedBlock()])
    x = np.random.default_rng(0).integers(0, 11, (3, 5))
    expected = model.predict(x)
    path = model.export_onnx(tmp_path / "block.onnx")
    found = run(path, {"input": x})["output"]
    assert found.shape == expected.shape == (3, 5, 11)
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
