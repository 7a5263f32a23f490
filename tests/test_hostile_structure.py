"""Nesting in files, and the plugin load it used to break: deep model files, deep configs, deep metadata.

Each case runs as a stranger's file runs: in a fresh process (the plugins load lazily, once per
process, so the first file decides), within 3 GiB of address space and 20 s.
"""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from conftest import capped

import lamina
from lamina.app import config as runconfig
from lamina.checks import MAX_NESTING, describe, nesting


def plugin(name, config):
    return {"__lamina_plugin__": "layer", "type": name, "package": "lamina", "version": lamina.__version__,
            "config": config}


def nested_sequential(depth):
    """The JSON text of a Relu inside `depth` Sequentials (written as text: json.dumps recurses)."""
    outer = json.dumps(plugin("Sequential", {"layers": ["INNER"]}))
    start, end = outer.split('"INNER"')
    return start * depth + json.dumps(plugin("Relu", {})) + end * depth


def model_file(path, layer, **extra):
    """A model file written by hand (the way a forger would): config.json of one layer (as JSON text)
    and no arrays."""
    config = {"format": "lamina.model", "format_version": 1, "lamina_version": lamina.__version__,
              "layers": ["LAYER"], "input_shape": [1], "input_dtype": "float32", "weights": {}, "buffers": {},
              "plugins": {"lamina": lamina.__version__}, **extra}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config).replace('"LAYER"', layer))
    return path


RELU = json.dumps(plugin("Relu", {}))


def deep(depth, leaf=1):
    """{"a": {"a": ... leaf}} with `depth` tables."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


AFTERWARDS = """
import sys, warnings
import numpy as np
import lamina
warnings.simplefilter("error")  # a plugin recorded as failed would warn
try:
    lamina.load(sys.argv[1])
except lamina.LaminaError as err:
    print("refused:", type(err).__name__, err)
assert type(lamina.layer("Linear", 2)).__name__ == "Linear"
model = lamina.Model([lamina.layer("Linear", 2)])
model.predict(np.zeros((1, 3)))
model.save(sys.argv[2])
assert isinstance(lamina.load(sys.argv[2]), lamina.Model)
assert not lamina.get_registry().failures
print("usable")
"""


# -- a model file nested deep -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [160, 400, 3000])
def test_a_deeply_nested_file_loaded_first_is_refused_and_leaves_lamina_usable(tmp_path, depth):
    path = model_file(tmp_path / "nested.npz", nested_sequential(depth))
    assert path.stat().st_size < 400 * depth
    script = tmp_path / "afterwards.py"
    script.write_text(AFTERWARDS)
    result = capped(str(script), str(path), str(tmp_path / "plain.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: FileFormatError" in result.stdout, result.stdout
    levels = 3 * depth + 4  # config and layers; a record, its config and its layers per Sequential; Relu's two
    assert f"nests {levels:,} levels" in result.stdout and f"the limit of {MAX_NESTING}" in result.stdout
    assert str(path) in result.stdout
    assert result.stdout.rstrip().endswith("usable")


def test_info_on_a_deeply_nested_file_is_one_error_line(tmp_path):
    path = model_file(tmp_path / "nested.npz", nested_sequential(160))
    result = capped("-m", "lamina", "info", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("lamina: error:") and f"over the limit of {MAX_NESTING}" in result.stderr
    assert "Traceback" not in result.stderr and "not installed" not in result.stderr


def test_nesting_is_counted_outside_strings_and_up_to_the_limit(tmp_path):
    # Brackets inside strings (escaped quotes included) are text, not nesting.
    text = '"\\"[[[[{{{{' * 50
    allowed = deep(MAX_NESTING - 1, leaf=text)  # the config is one level, the metadata table the next
    path = model_file(tmp_path / "ok.npz", RELU, metadata=allowed)
    assert lamina.load(path).metadata == allowed
    path = model_file(tmp_path / "over.npz", RELU, metadata=deep(MAX_NESTING, leaf=text))
    with pytest.raises(lamina.FileFormatError, match=f"nests {MAX_NESTING + 1} levels.*the limit of {MAX_NESTING}"):
        lamina.load(path)


def test_composite_layers_nested_within_the_limit_load(tmp_path):
    depth = (MAX_NESTING - 4) // 3
    path = model_file(tmp_path / "nested.npz", nested_sequential(depth))
    model = lamina.load(path)
    assert model.predict(np.array([[-1.0], [2.0]], dtype=np.float32)).tolist() == [[0.0], [2.0]]


# -- metadata: every file that loads also saves ---------------------------------------------------------------


def test_metadata_nested_too_deep_is_refused_at_save_naming_its_key_path(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, 3)))
    model.metadata["labels"] = {"x": deep(600)}
    with pytest.raises(lamina.ArgumentError) as info:
        model.save(tmp_path / "m.npz")
    message = str(info.value)
    assert "Model.metadata.labels.x.a.a" in message and f"limit of {MAX_NESTING}" in message
    assert "603 levels" in message  # as the file would hold it: config.json > metadata > labels > 600 more
    assert not (tmp_path / "m.npz").exists()


def test_metadata_at_the_limit_loads_and_saves_again(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.predict(np.zeros((1, 3)))
    model.metadata["x"] = deep(MAX_NESTING - 2)  # config.json > metadata > 98 more: at the limit
    model.save(tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.metadata == model.metadata
    loaded.save(tmp_path / "again.npz")
    loaded.metadata["x"] = deep(MAX_NESTING - 1)  # one more
    with pytest.raises(lamina.ArgumentError, match=f"limit of {MAX_NESTING}"):
        loaded.save(tmp_path / "over.npz")


def test_a_forged_file_with_metadata_nested_600_deep_is_refused_at_load(tmp_path):
    path = model_file(tmp_path / "meta.npz", RELU, metadata=deep(600))
    result = capped("-m", "lamina", "info", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"nests 601 levels of lists and tables, over the limit of {MAX_NESTING}" in result.stderr


# -- lamina train configs ----------------------------------------------------------------------------------------


CONFIG = """
epochs = 1
output = "{output}"
{top}
[dataset]
name = "spirals"
n_samples = 30
{dataset}
[[layers]]
type = "Linear"
units = 3
{layer}
"""


@pytest.mark.parametrize("where, levels", [("top", 3001), ("dataset", 3002), ("layer", 3003)])
def test_a_deep_dotted_key_in_a_config_is_one_error_naming_the_key_and_the_limit(tmp_path, where, levels):
    key = ".".join(["x"] * 3000)
    parts = {"top": "", "dataset": "", "layer": ""}
    parts[where] = f"{'seed' if where == 'top' else 'extra'}.{key} = 1"
    config = tmp_path / "deep.toml"
    config.write_text(CONFIG.format(output=tmp_path / "out", **parts))
    result = capped("-m", "lamina", "train", str(config))
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.startswith("lamina: error:") and "Traceback" not in result.stderr
    assert f"nests {levels:,} levels" in result.stderr and f"over the limit of {MAX_NESTING}" in result.stderr
    assert str(config) in result.stderr and ".x.x.x" in result.stderr
    assert len(result.stderr) < 1000  # the key is named, not printed 3,000 times
    assert not (tmp_path / "out").exists()


def test_deep_inline_arrays_in_a_config_are_a_config_error(tmp_path):
    config = tmp_path / "deep.toml"
    config.write_text(CONFIG.format(output=tmp_path / "out", top="seed = " + "[" * 5000 + "]" * 5000,
                                    dataset="", layer=""))
    result = capped("-m", "lamina", "train", str(config))
    assert result.returncode == 1 and result.stderr.startswith("lamina: error:")
    assert "Traceback" not in result.stderr and f"limit of {MAX_NESTING}" in result.stderr


def test_a_config_nested_within_the_limit_is_accepted():
    layers = '{type = "Relu"}'
    for _ in range(20):
        layers = f'{{type = "Sequential", layers = [{layers}]}}'
    config = runconfig.parse(f'layers = [{layers}]\n[dataset]\nname = "spirals"\n', "ok.toml")
    assert nesting(config.data)[0] == 1 + 2 * 21  # the config, then a list and a table per layer


# -- the message helpers ----------------------------------------------------------------------------------------------


def test_describe_is_short_and_safe_for_any_value():
    class Loop:
        def __repr__(self):
            return repr(self)

    for value, start in ((deep(5000), "{'a': {'a': "), ([[[[[[1]]]]]] * 50, "[[[[")):
        text = describe(value)  # repr() of the first raises RecursionError
        assert text.startswith(start) and len(text) < 80, text
    assert describe(Loop()) == "<Loop object> (Loop)"
    assert describe(1.5) == "1.5 (float)"
    assert describe("x" * 100) == "'" + "x" * 56 + "... (str)"


def test_nesting_counts_lists_and_tables_and_names_the_deepest_path():
    assert nesting(1) == (0, "")
    assert nesting({"a": [1, {"b": []}], "c": {}}) == (4, ".a[1].b")
    assert nesting(deep(100_000))[0] == 100_000  # no recursion
