"""The shape of the core: small functions, one-way imports, options defined once, explicit
state, and a one-process training step that does no distribution work."""
from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import attrs
import numpy as np
import pytest
from conftest import ROOT

import lamina
from lamina.app import config as runconfig
from lamina.protocols.strategy import Strategy
from lamina.training.options import config_keys, defaults

CORE = ROOT / "core"


def functions(folder):
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_no_function_in_core_is_longer_than_60_lines():
    long = [f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in functions(CORE) if node.end_lineno - node.lineno + 1 > 60]
    assert long == []


def test_model_training_files_and_export_import_each_other_only_at_module_level():
    wings = ("lamina.model", "lamina.training", "lamina.files", "lamina.export", "lamina.protocols")
    hidden = []
    for path, node in functions(CORE):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.module:
                names = [inner.module, *(f"{inner.module}.{alias.name}" for alias in inner.names)]
            else:
                continue
            if any(name.startswith(wings) for name in names):
                hidden.append(f"{path.relative_to(ROOT)}:{node.name} imports {', '.join(names)}")
    assert hidden == []


def module_name(path):
    """lamina's name for a file of core/ ("lamina.training.loop"; a folder's __init__ is the folder)."""
    parts = path.relative_to(CORE).with_suffix("").parts
    return ".".join(("lamina", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def import_graph():
    """Which lamina modules each module of core/ imports, read from the source: every import
    statement, at the top, inside functions and under `if TYPE_CHECKING:` alike; `from lamina.x
    import y` is an import of lamina.x.y when y is a module, else of lamina.x."""
    files = {module_name(path): path for path in sorted(CORE.rglob("*.py"))}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                             for alias in node.names)
        graph[name] = sorted(found & set(files) - {name})
    return graph


def find_cycle(graph):
    """One cycle of the graph as a list of modules (the first again at the end), or None."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for target in graph[node]:
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in graph:
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_reads_every_kind_of_import():
    graph = import_graph()
    assert "lamina.protocols.layer" in graph["lamina.model"]  # from lamina.protocols.layer import Layer
    assert "lamina.trace" in graph["lamina.protocols.layer"]  # from lamina import trace: a package
    assert "lamina.hookspecs" in graph["lamina.registry"]
    assert "lamina.errors" in graph["lamina.checks"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None


def test_no_module_of_lamina_imports_itself_through_others():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"lamina's modules import each other in a circle: {' -> '.join(cycle)}"


def test_model_is_the_front_door_that_training_files_and_export_stay_behind():
    graph = import_graph()
    behind = [name for name in graph if name.startswith(("lamina.training", "lamina.files", "lamina.export"))]
    assert [name for name in behind if "lamina.model" in graph[name]] == []
    assert ({"lamina.training.loop", "lamina.files.save", "lamina.files.load", "lamina.export.exporter"}
            <= set(graph["lamina.model"]))


def test_looking_up_a_layer_does_not_import_the_conformance_kit():
    code = ("import sys, lamina; lamina.layer('Relu'); "
            "print(sorted(m for m in sys.modules if m.startswith('lamina.testing')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_training_options_are_defined_once():
    options = [a.name for a in attrs.fields(lamina.TrainOptions)]
    signature = list(inspect.signature(lamina.Model.train).parameters)
    assert signature == ["self", "x", "y", *options]
    assert all(inspect.signature(lamina.Model.train).parameters[k].default == v for k, v in defaults().items())
    assert set(config_keys()) <= set(runconfig.KEYS)
    assert {"epochs", "batch_size", "shuffle", "validation_split", "clip_grad_norm"} <= set(config_keys())


def test_train_refuses_an_unknown_option_and_a_duplicate():
    model = lamina.Model([lamina.layer("Linear", 1)])
    with pytest.raises(lamina.ArgumentError, match="unknown option 'epoch'. Did you mean 'epochs'?"):
        model.train(np.ones((2, 1)), np.ones((2, 1)), epoch=3)
    with pytest.raises(lamina.ArgumentError, match="optim was given twice"):
        model.train(np.ones((2, 1)), np.ones((2, 1)), "SGD", optim="SGD")


def test_positional_options_keep_the_blog_posts_order():
    model = lamina.Model([lamina.layer("Linear", 1)])
    history = model.train(np.ones((4, 2)), np.ones((4, 1)), lamina.optimizer("SGD", lr=0.1), "MSE", 3, verbose=False)
    assert len(history) == 3 and type(model.optimizer).__name__ == "SGD"


def test_the_one_process_strategy_does_no_work():
    local = Strategy()
    rows = np.arange(5)
    assert local.shard(rows, 5) is rows
    sums = [1.0, 2.0]
    assert local.reduce_step([], sums) is sums
    a, b = np.ones(3), np.zeros(3)
    assert all(x is y for x, y in zip(local.batch_gradient_sums(a, b), (a, b)))


def test_every_built_in_layer_declares_what_forward_keeps_and_release_drops_it():
    for info in lamina.get_registry().plugins("layer"):
        if info.package != "lamina":
            continue
        assert isinstance(info.cls.keeps, tuple), f"{info.name} does not declare keeps"
    model = lamina.Model([lamina.layer("Linear", 4), "Relu", lamina.layer("BatchNorm"), lamina.layer("Dropout", 0.5),
                          lamina.layer("Linear", 2), "Softmax"])
    model.predict(np.ones((3, 5)))
    left = {f"{i}.{name}" for i, layer in enumerate(model.layers) for name in layer.keeps if name in vars(layer)}
    assert left == set()


def test_a_layer_without_keeps_still_releases_its_underscore_arrays():
    class Old(lamina.Layer):
        def forward(self, x):
            self._x, self._note = x, "kept"
            return x

        def backward(self, grad):
            return grad

    layer = Old()
    layer(np.ones(2))
    layer.release()
    assert not hasattr(layer, "_x") and layer._note == "kept"


def test_optimizer_state_is_a_mapping_per_parameter_and_adamw_decay_is_in_update():
    param = lamina.Parameter(np.ones(3))
    param.grad[...] = 0.0
    adamw = lamina.optimizer("AdamW", lr=0.1, weight_decay=0.5)
    assert adamw.state == {}
    adamw.step([param])
    assert set(adamw.state) == {param} and adamw.state[param]["step"] == 1
    np.testing.assert_allclose(param.value, 0.95)  # zero gradient: only the decoupled decay moved it
    assert not hasattr(type(adamw), "gradient")


def test_defaults_come_from_the_registry_by_kind():
    assert lamina.KINDS["loss"].default == "MSE" and lamina.KINDS["optimizer"].default == "SGD"
    model = lamina.Model([lamina.layer("Linear", 1)])
    model.train(np.ones((2, 1)), np.ones((2, 1)), epochs=1, verbose=False)
    assert (type(model.loss).__name__, type(model.optimizer).__name__) == ("MSE", "SGD")


def test_core_names_no_built_in_plugin():
    names = {info.name for info in lamina.get_registry().plugins() if info.package == "lamina"}
    names -= {"Checkpoint"}  # core's own class, registered by name by the built-ins
    quoted = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "registry.py":  # the documented defaults table
            continue
        tree = ast.parse(path.read_text())
        exported = {id(c) for node in tree.body if isinstance(node, ast.Assign)  # __all__ lists core's own names
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                    for c in ast.walk(node)}
        # ONNX operator names (graph.op("Relu", ...), _op("Tanh"), _boolean("Add", "Or")) are ONNX's, not
        # lamina's plugins
        onnx_ops = {id(node.args[0]) for node in ast.walk(tree) if isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("op", "_op", "_boolean")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                    and id(node) not in exported and id(node) not in onnx_ops):
                quoted.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert quoted == []


def test_no_name_in_lamina_is_both_a_module_and_a_function():
    import pkgutil
    modules = {m.name for m in pkgutil.iter_modules([str(CORE)])}
    both = [name for name in modules if name in vars(lamina) and not inspect.ismodule(vars(lamina)[name])]
    assert both == [], f"lamina.{both[0]} is a module of core/ and also something else in lamina's namespace"


def test_the_top_of_core_holds_at_most_twelve_modules_the_rest_live_in_wings():
    top = sorted(p.stem for p in CORE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= 12, top
    wings = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").is_file())
    assert {"protocols", "training", "files", "app", "export", "testing"} <= set(wings)
    for wing in wings:  # each wing says what it holds
        assert ast.get_docstring(ast.parse((CORE / wing / "__init__.py").read_text())), wing


def test_every_wing_is_a_package_that_a_plain_install_ships():
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    wings = {"lamina." + p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(wings - listed)
    assert missing == [], f"pyproject.toml's packages leave out {missing}: pip install . would miss them"
