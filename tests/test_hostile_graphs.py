"""Hostile graph model files: each refused with a FileFormatError naming the place in config.json,
within 20 s and 3 GiB of address space (a fresh process, as a stranger's file runs)."""
from __future__ import annotations

import json
import zipfile

import pytest
from conftest import capped

import lamina

LOAD = """
import sys
import lamina
try:
    lamina.load(sys.argv[1])
except lamina.LaminaError as err:
    print("refused:", type(err).__name__, err)
else:
    print("loaded")
"""


def plugin(name, config=None):
    return {"__lamina_plugin__": "layer", "type": name, "package": "lamina", "version": lamina.__version__,
            "config": config or {}}


def graph(nodes, inputs=None, outputs=None):
    return {"input_format": "array", "inputs": inputs or [{"name": "x", "shape": [3], "dtype": None}],
            "nodes": nodes, "output_format": "array",
            "outputs": outputs or [{"name": "output", "ref": ["node", len(nodes) - 1]}]}


def node(layer=0, *refs, listed=False):
    return {"layer": layer, "inputs": [list(r) for r in refs] or [["input", 0]], "list": listed}


def graph_file(path, description, layers=("Relu",), weights=None, text=None):
    """A model file written by hand, as a forger would: config.json only (`text` replaces the graph's JSON)."""
    config = {"format": "lamina.model", "format_version": 2, "lamina_version": lamina.__version__,
              "layers": [plugin(name) for name in layers], "input_shape": None, "input_dtype": None,
              "weights": weights or {}, "buffers": {}, "plugins": {"lamina": lamina.__version__}, "graph": "GRAPH"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config).replace('"GRAPH"', text or json.dumps(description)))
    return path


CASES = {
    "cycle": (graph([node(0, ("node", 1)), node(0, ("node", 0))]), r"graph.nodes\[0\].inputs\[0\]\[1\].*no cycles"),
    "self": (graph([node(0, ("node", 0))]), r"graph.nodes\[0\].inputs\[0\]\[1\] .*no cycles"),
    "dangling": (graph([node(0, ("node", 7))]), r"graph.nodes\[0\].inputs\[0\]\[1\]"),
    "input out of range": (graph([node(0, ("input", 3))]), r"graph.nodes\[0\].inputs\[0\]\[1\] is 3.*input's index"),
    "layer out of range": (graph([node(5)]), r"graph.nodes\[0\].layer is 5"),
    "negative layer": (graph([node(-1)]), r"graph.nodes\[0\].layer is -1"),
    "layer as text": (graph([{"layer": "0", "inputs": [["input", 0]], "list": False}]), r"graph.nodes\[0\].layer"),
    "reference kind": (graph([node(0, ("layer", 0))]), r"graph.nodes\[0\].inputs\[0\] is .*\['input', i\]"),
    "unused node": (graph([node(0), node(0)], outputs=[{"name": "o", "ref": ["node", 0]}]),
                    r"graph.nodes\[1\] feeds no output"),
    "unused input": ({**graph([node(0)], inputs=[{"name": "x", "shape": [3], "dtype": None},
                                                 {"name": "y", "shape": [3], "dtype": None}]), "input_format": "list"},
                     r"graph.inputs\[1\] feeds no output"),
    "repeated name": ({**graph([node(0), node(0, ("input", 1))],
                               inputs=[{"name": "x", "shape": [3], "dtype": None}] * 2,
                               outputs=[{"name": "o", "ref": ["node", 0]}, {"name": "p", "ref": ["node", 1]}]),
                       "input_format": "list", "output_format": "list"}, r"graph.inputs\[1\].name is 'x'"),
    "zero size": (graph([node(0)], inputs=[{"name": "x", "shape": [0], "dtype": None}]), r"graph.inputs\[0\].shape"),
    "huge shape": (graph([node(0)], inputs=[{"name": "x", "shape": [10**6, 10**6], "dtype": None}]),
                   r"graph.inputs\[0\].shape"),
    "odd dtype": (graph([node(0)], inputs=[{"name": "x", "shape": [3], "dtype": "(1000000000,)f8"}]),
                  r"graph.inputs\[0\].dtype"),
    "no list flag": (graph([node(0, ("input", 0), ("input", 0))]), r"graph.nodes\[0\].inputs has 2 references"),
    "nodes not a list": ({**graph([node(0)]), "nodes": {"0": 1}},
                         r"graph.nodes is \{'0': 1\} \(dict\), expected a list of nodes"),
    "graph not a table": ([1, 2], r"config.json graph is \[1, 2\] \(list\), expected a table"),
    "keywords the layer refuses": (graph([{**node(0), "kwargs": {"reverse": True}}]),
                                   r"graph.nodes\[0\] cannot be called as it says .*reverse"),
    "a keyword named like the input": (graph([{**node(0), "kwargs": {"x": 1}}]),
                                        r"graph.nodes\[0\] cannot be called as it says"),
    "input of a shape the layer refuses": (graph([node(0, ("input", 0), ("input", 0), listed=True)]),
                                           r"graph.nodes\[0\] cannot be called as it says"),
    "array of two outputs": (graph([node(0)], outputs=[{"name": "o", "ref": ["node", 0]},
                                                       {"name": "p", "ref": ["input", 0]}]), r"graph.output_format"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_graph_is_refused_naming_its_place_in_the_file(tmp_path, case):
    description, message = CASES[case]
    path = graph_file(tmp_path / "m.npz", description)
    with pytest.raises(lamina.FileFormatError, match=message) as info:
        lamina.load(path)
    assert str(path) in str(info.value) and "save the model again" in str(info.value)


def test_layers_out_of_first_use_order_or_unused_are_refused(tmp_path):
    path = graph_file(tmp_path / "order.npz", graph([node(1), node(0, ("node", 0))]), layers=("Relu", "Tanh"))
    with pytest.raises(lamina.FileFormatError, match=r"graph.nodes\[0\].layer is 1.*order of first use"):
        lamina.load(path)
    path = graph_file(tmp_path / "unused.npz", graph([node(0)]), layers=("Relu", "Tanh"))
    with pytest.raises(lamina.FileFormatError, match=r"uses 1 of the file's 2 layers"):
        lamina.load(path)


def run(tmp_path, text=None, description=None, layers=("Relu",)):
    path = graph_file(tmp_path / "m.npz", description, layers=layers, text=text)
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    result = capped(str(script), str(path))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.startswith("refused: FileFormatError"), result.stdout[:2000]
    return result.stdout


def test_a_million_nodes_are_refused_before_any_is_built(tmp_path):
    one = json.dumps(node(0))
    text = json.dumps(graph(["NODES"])).replace('"NODES"', ", ".join([one] * 10**6))
    out = run(tmp_path, text=text)
    assert "graph.nodes has 1,000,000 items, expected 1 to" in out


def test_a_huge_fan_in_is_refused(tmp_path):
    refs = [["input", 0]] * 10**6
    out = run(tmp_path, description=graph([{"layer": 0, "inputs": refs, "list": True}]), layers=("Concatenate",))
    assert "graph.nodes[0].inputs has 1,000,000 items" in out


def test_a_huge_fan_out_of_many_wide_nodes_is_refused_by_the_references_limit(tmp_path):
    wide = {"layer": 0, "inputs": [["input", 0]] * 1000, "list": True}
    out = run(tmp_path, description=graph([wide] * 1500), layers=("Concatenate",))
    assert "brings the references to" in out


def test_a_chain_of_concatenations_that_would_build_huge_arrays_is_refused_within_the_pass(tmp_path):
    # each node doubles the row: 2**40 values after 40 nodes, far past the load-time pass
    nodes = [node(0, ("input", 0), ("input", 0), listed=True)]
    nodes += [node(0, ("node", j), ("node", j), listed=True) for j in range(40)]
    out = run(tmp_path, description=graph(nodes), layers=("Concatenate",))
    assert "the load-time pass" in out and "over its limit" in out


def test_deep_nesting_inside_the_graph_is_refused(tmp_path):
    text = json.dumps(graph([node(0)])).replace('"list": false', '"list": ' + "[" * 5000 + "]" * 5000)
    out = run(tmp_path, text=text)
    assert "levels of lists and tables" in out
