"""`lamina list-plugins` (and `python -m lamina`), run as a user would, in a subprocess."""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
from conftest import config_file, make_distribution, python, run_python
from test_registry import UNMARKED, layer_plugin, unique

import lamina
import lamina.plugins.layers.linear

BUILTINS = {
    ("Linear", "layer"), ("Sigmoid", "layer"), ("Relu", "layer"), ("Softmax", "layer"),
    ("Tanh", "layer"), ("MSE", "loss"), ("SGD", "optimizer"),
}


def lamina_cli(*args: str, pythonpath: Path | None = None):
    return run_python("-m", "lamina", *args, pythonpath=pythonpath)


def test_list_plugins_prints_a_table_of_every_plugin_with_package_and_version():
    result = lamina_cli("list-plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PACKAGE", "VERSION", "ALIASES"]
    rows = {tuple(line.split()[:4]) for line in lines[2:]}
    for name, kind in BUILTINS:
        assert (name, kind, "lamina", lamina.__version__) in rows
    assert "Failed" not in result.stdout


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "lamina"
    result = run_python(str(script), "list-plugins", "--kind", "optimizer")
    assert result.returncode == 0, result.stderr
    assert "SGD" in result.stdout and "Linear" not in result.stdout


def test_kind_filters_the_listing():
    result = lamina_cli("list-plugins", "--kind", "loss")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert names == ["BinaryCrossEntropy", "CrossEntropy", "Huber", "L1", "MSE"]


def test_json_lists_objects_with_name_kind_package_and_version():
    result = lamina_cli("list-plugins", "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert {(r["name"], r["kind"]) for r in records} >= BUILTINS
    for record in records:
        assert {"name", "kind", "package", "version"} <= set(record)
    linear = next(r for r in records if r["name"] == "Linear")
    assert linear["aliases"] == ["Dense"] and linear["qualified_name"] == "lamina:Linear"
    # What the docs' plugin catalogue is built from: how to call each plugin and its whole docstring.
    assert linear["signature"] == "Linear(units, weight_init='he_uniform', bias_init='zeros')"
    assert linear["docstring"] == inspect.cleandoc(lamina.plugins.layers.linear.Linear.__doc__)
    assert linear["doc"] == linear["docstring"].splitlines()[0] and "\n" in linear["docstring"]
    assert all(r["signature"].startswith(r["name"] + "(") and isinstance(r["docstring"], str) for r in records)


def test_signatures_of_functions_and_builtins_are_robust():
    from lamina.app.cli import _signature

    assert _signature("f", lambda a, b=2: a) == "f(a, b=2)"
    assert _signature("len", len) == "len(obj, /)"

    def opaque():
        pass

    opaque.__signature__ = "not a Signature"  # as good as a C object whose signature Python cannot tell
    assert _signature("opaque", opaque) == "opaque(...)"


def test_unknown_kind_is_a_usage_error_listing_the_kinds():
    result = lamina_cli("list-plugins", "--kind", "metricz")
    assert result.returncode == 2
    assert "invalid choice: 'metricz'" in result.stderr and "'layer'" in result.stderr


@pytest.fixture
def broken_site(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "lamina-broken", "0.2", {unique("lamina_broken"): "raise ImportError('needs libfoo')\n"})
    make_distribution(site, "lamina-clash", "1.5", {unique("lamina_clash"): layer_plugin("Tanh")})
    return site


def test_failed_plugins_are_listed_with_their_error_and_strict_fails(broken_site):
    result = lamina_cli("list-plugins", pythonpath=broken_site)
    assert result.returncode == 0, result.stderr
    assert "Failed to load (1):" in result.stdout
    assert "lamina-broken 0.2" in result.stdout and "ImportError: needs libfoo" in result.stdout
    assert "Warning" not in result.stderr  # listed once, in the table, not warned as well
    strict = lamina_cli("list-plugins", "--strict", pythonpath=broken_site)
    assert strict.returncode == 1
    as_json = lamina_cli("list-plugins", "--json", "--strict", pythonpath=broken_site)
    assert as_json.returncode == 1
    assert "lamina-broken 0.2" in as_json.stderr
    json.loads(as_json.stdout)  # stdout stays valid JSON


def test_a_name_shared_by_two_packages_is_flagged_with_the_qualified_names(broken_site):
    result = lamina_cli("list-plugins", "--kind", "layer", pythonpath=broken_site)
    tanh_rows = [line for line in result.stdout.splitlines() if line.startswith("Tanh")]
    assert len(tanh_rows) == 2
    assert any("use 'lamina:Tanh'" in row for row in tanh_rows)
    assert any("use 'lamina-clash:Tanh'" in row for row in tanh_rows)
    records = json.loads(lamina_cli("list-plugins", "--json", pythonpath=broken_site).stdout)
    assert [r["ambiguous"] for r in records if r["name"] == "Tanh"] == [True, True]


def test_version_and_help():
    assert lamina_cli("--version").stdout.strip() == f"lamina {lamina.__version__}"
    result = lamina_cli("--help")
    assert result.returncode == 0 and "list-plugins" in result.stdout
    assert lamina_cli().returncode == 2  # a command is required


# -- list-plugins --strict -------------------------------------------------------------------------


def test_list_plugins_strict_fails_on_an_unmarked_hook(site):
    make_distribution(site, "lamina-unmarked", "0.1", {"lamina_unmarked_mod2": UNMARKED})
    listed = python("from lamina.app.cli import main; raise SystemExit(main(['list-plugins', '--strict']))", site)
    assert listed.returncode == 1
    assert "Failed to load (1):" in listed.stdout
    assert "decorate register_layers with @lamina.hookimpl" in listed.stdout


# -- train --epochs --------------------------------------------------------------------------------


@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_train_refuses_epochs_below_one_as_a_usage_error(epochs, tmp_path, capsys):
    """--epochs 0 would train nothing: it is refused (exit 2, naming the option), not ignored."""
    from lamina.app.cli import main

    config = config_file(tmp_path, epochs=1, samples=30)
    with pytest.raises(SystemExit) as exit:
        main(["train", str(config), "--epochs", epochs])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --epochs: expected a whole number of epochs >= 1" in err
    assert not (tmp_path / "out" / "model.npz").exists()
