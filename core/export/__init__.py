"""ONNX export: `Model.export_onnx(path)` and the `Graph` builder that layers write with.

A built-in or third-party layer becomes exportable in one of two ways: written forward-only
(its numpy code is traced into ONNX nodes; `SUPPORTED` says what maps, name -> (training, export)), or with a method
`to_onnx(self, graph, x) -> y` that adds its nodes to `graph` (a `Graph`) and returns the
name of its output value.
"""
from lamina.autodiff import SUPPORTED
from lamina.export.exporter import INPUT, OPSETS, OUTPUT, export_layer, export_onnx, to_proto
from lamina.export.graph import Graph, Node
from lamina.export.symbolic import Symbolic

__all__ = ["INPUT", "OPSETS", "OUTPUT", "SUPPORTED", "Graph", "Node", "Symbolic", "export_layer", "export_onnx",
           "to_proto"]
