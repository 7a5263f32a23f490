"""Regression tests for what a plugin author and a newcomer ran into in their first hour.

Each test names the bug it pins: the message a user sees now instead of a silent or
misleading outcome.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest
from conftest import ROOT, make_distribution

import lamina
from lamina.testing import check_layer_gradients, check_plugin

GAMMA = """
    import os
    import lamina

    if os.environ.get("GAMMA_BROKEN"):
        raise ImportError("libgamma.so: cannot open shared object file")

    class Gamma(lamina.Layer):
        def forward(self, x):
            return 2 * x

        def backward(self, grad):
            return 2 * grad

    @lamina.hookimpl
    def register_layers(register):
        register(Gamma)
"""


def python(code: str, site=None, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (a fresh registry) with `site` on the path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join(str(s) for s in (site if isinstance(site, list) else [site]))
    environ.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environ, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def gamma_file(tmp_path_factory):
    """A model file that needs the layer Gamma from lamina-gamma 0.1.0, and that package."""
    root = tmp_path_factory.mktemp("gamma")
    site = make_distribution(root / "site", "lamina-gamma", "0.1.0", {"lamina_gamma": GAMMA})
    path = root / "model.npz"
    done = python(f"""
        import lamina
        model = lamina.Model([lamina.layer("Linear", 2), "Gamma"])
        model.predict([[1.0, 2.0]])
        model.save({str(path)!r})
    """, site)
    assert done.returncode == 0, done.stderr
    return path, site


# -- 1. an installed plugin that was skipped or failed is not "not installed" -------------------


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"LAMINA_DISABLE_PLUGINS": "lamina-gamma"},
         "lamina-gamma 0.1.0 is installed but was not loaded: disabled by LAMINA_DISABLE_PLUGINS; "
         "remove lamina-gamma from LAMINA_DISABLE_PLUGINS"),
        ({"LAMINA_PLUGINS": "lamina-other"},
         "lamina-gamma 0.1.0 is installed but was not loaded: not in LAMINA_PLUGINS (the allow-list); "
         "add lamina-gamma to LAMINA_PLUGINS"),
        ({"GAMMA_BROKEN": "1"},
         "lamina-gamma 0.1.0 is installed but failed to load: ImportError: libgamma.so: cannot open shared object file"),
    ],
    ids=["denied", "not-allowed", "import-failed"],
)
def test_a_skipped_or_broken_plugin_is_reported_as_such_by_load_and_info(gamma_file, env, expected):
    path, site = gamma_file
    loaded = python(f"""
        import warnings, lamina
        warnings.simplefilter("ignore")
        try:
            lamina.load({str(path)!r})
        except lamina.MissingPluginError as err:
            print(err)
    """, site, **env)
    assert expected in loaded.stdout, loaded.stdout + loaded.stderr
    assert "not installed" not in loaded.stdout
    info = python(f"from lamina.app.cli import main; main(['info', {str(path)!r}])", site, **env)
    assert expected in info.stdout, info.stdout + info.stderr


def test_a_plugin_that_is_really_missing_still_says_what_to_install(gamma_file):
    path, _ = gamma_file
    loaded = python(f"""
        import lamina
        try:
            lamina.load({str(path)!r})
        except lamina.MissingPluginError as err:
            print(err)
    """)
    assert "lamina-gamma is not installed; install it with: pip install 'lamina-gamma>=0.1.0'" in loaded.stdout


# -- 2. a hook without @lamina.hookimpl is a plugin failure ---------------------------------------


UNMARKED = """
    import lamina

    class Unmarked(lamina.Layer):
        def forward(self, x):
            return x

    def register_layers(register):   # the marker is missing
        register(Unmarked)
"""


def test_an_unmarked_hook_fails_the_plugin_with_the_fix(site):
    make_distribution(site, "lamina-unmarked", "0.1", {"lamina_unmarked_mod": UNMARKED})
    registry = lamina.Registry()
    with pytest.warns(lamina.PluginWarning, match="decorate register_layers with @lamina.hookimpl"):
        registry.load()
    [failure] = registry.failures
    assert failure.package == "lamina-unmarked"
    assert "defines register_layers without the @lamina.hookimpl marker" in failure.error


def test_a_plugin_module_that_registers_nothing_fails(site):
    make_distribution(site, "lamina-empty", "0.1", {"lamina_empty_mod": "import lamina\n"})
    registry = lamina.Registry()
    with pytest.warns(lamina.PluginWarning):
        registry.load()
    [failure] = registry.failures
    assert "registers nothing: it implements none of lamina's hooks" in failure.error


def test_list_plugins_strict_fails_on_an_unmarked_hook(site):
    make_distribution(site, "lamina-unmarked", "0.1", {"lamina_unmarked_mod2": UNMARKED})
    listed = python("from lamina.app.cli import main; raise SystemExit(main(['list-plugins', '--strict']))", site)
    assert listed.returncode == 1
    assert "Failed to load (1):" in listed.stdout
    assert "decorate register_layers with @lamina.hookimpl" in listed.stdout


def test_register_plugin_with_nothing_registered_raises():
    empty = types.SimpleNamespace(register_layers=lambda register: None)
    with pytest.raises(lamina.PluginError, match="without the @lamina.hookimpl marker"):
        lamina.register_plugin(empty, package="lamina-test-empty")


# -- 5. a file written with a newer plugin warns under an older one ---------------------------------


def test_loading_under_an_older_plugin_version_warns_naming_both(gamma_file, tmp_path):
    path, _ = gamma_file
    old = make_distribution(tmp_path / "old", "lamina-gamma", "0.0.9", {"lamina_gamma": GAMMA})
    loaded = python(f"""
        import lamina
        model = lamina.load({str(path)!r})   # the user's line
        print(type(model.layers[1]).__name__)
    """, old)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "Gamma"
    assert "PluginWarning" in loaded.stderr
    assert "the file was written with lamina-gamma 0.1.0, but 0.0.9 is installed" in loaded.stderr
    assert "<string>:3:" in loaded.stderr  # 10. it points at the user's call, not lamina's files
    info = python(f"from lamina.app.cli import main; main(['info', {str(path)!r}])", old)
    assert "lamina-gamma 0.1.0: installed (0.0.9), OLDER than the file's 0.1.0" in info.stdout


def test_the_same_or_a_newer_plugin_version_loads_silently(gamma_file, tmp_path):
    path, site = gamma_file
    newer = make_distribution(tmp_path / "new", "lamina-gamma", "0.10.0", {"lamina_gamma": GAMMA})
    for where in (site, newer):
        loaded = python(f"import lamina; lamina.load({str(path)!r})", where)
        assert loaded.returncode == 0 and "Warning" not in loaded.stderr, loaded.stderr


def test_versions_compare_by_release_numbers():
    from lamina.files.records import older

    assert older("0.0.9", "0.1.0") and older("1.2.9", "1.2.10") and older("1.0rc1", "1.0.1")
    assert not older("1.0", "1.0.0") and not older("2.0", "1.9.9") and not older("", "1.0")


# -- 6. one naming rule; the kit refuses other kinds with a LaminaError -----------------------------


@pytest.mark.parametrize(
    "registration",
    ["register(Dup); register(Dup, name='dup')", "register(Dup, aliases=['DUP'])", "register(Dup, name='d', aliases=['D'])"],
)
def test_names_equal_up_to_case_are_one_error_whichever_way_they_come(registration):
    namespace: dict = {"lamina": lamina}
    exec(textwrap.dedent(f"""
        class Dup(lamina.Layer):
            def forward(self, x):
                return x

        @lamina.hookimpl
        def register_layers(register):
            {registration}
    """), namespace)
    plugin = types.SimpleNamespace(register_layers=namespace["register_layers"])
    with pytest.raises(lamina.PluginError, match="differ in more than case"):
        lamina.register_plugin(plugin, package="lamina-test-dup")


def test_the_kit_refuses_a_callback_with_a_lamina_error():
    class EpochPrinter(lamina.Callback):
        pass

    with pytest.raises(lamina.ArgumentError, match="EpochPrinter is a callback; the conformance kit checks "
                                                   "Layer, Loss and Optimizer classes only"):
        check_plugin(EpochPrinter)
    with pytest.raises(lamina.ArgumentError, match="not a plugin class"):
        check_plugin(len)


# -- 10. warnings point at the user's call ---------------------------------------------------------


def test_a_plugin_failure_warning_points_at_the_users_line(site):
    make_distribution(site, "lamina-broken", "0.1", {"lamina_broken_mod": "raise ImportError('nope')\n"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lamina.Registry().get("layer", "Relu")  # this line
    [warning] = [w for w in caught if issubclass(w.category, lamina.PluginWarning)]
    assert warning.filename == __file__, warning.filename


# -- 8. a gradient check on float32 weights refuses instead of reporting a false error ----------------


def test_gradient_check_refuses_a_layer_built_in_float32():
    layer = lamina.layer("Linear", 3)
    layer(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(lamina.ArgumentError, match=r"parameters weight \(float32\), bias \(float32\) are not float64"):
        check_layer_gradients(layer, np.random.default_rng(0).normal(size=(2, 4)))
    fresh = lamina.layer("Linear", 3)
    assert max(check_layer_gradients(fresh, np.random.default_rng(0).normal(size=(2, 4))).values()) < 1e-7


# -- 9. a rejected input leaves the layer as it was ---------------------------------------------------


class BuildsThenRejects(lamina.Layer):
    """Builds its weight from the first input, then checks the input: the planted bug."""

    def __init__(self) -> None:
        self.w = None

    def parameters(self):
        return {} if self.w is None else {"w": self.w}

    def forward(self, x):
        if self.w is None:
            self.w = lamina.Parameter(np.ones(x.shape[-1], dtype=x.dtype))
        if x.ndim != 2 or x.shape[-1] != self.w.shape[0]:
            raise lamina.ShapeError(f"BuildsThenRejects needs (batch, {self.w.shape[0]}), got {x.shape}")
        self._x = x
        return x * self.w.value

    def backward(self, grad):
        self.w.grad += (grad * self._x).sum(axis=0)
        return grad * self.w.value


class ChecksThenBuilds(BuildsThenRejects):
    def forward(self, x):
        if x.ndim != 2:
            raise lamina.ShapeError(f"ChecksThenBuilds needs (batch, features), got {x.shape}")
        return super().forward(x)


class BypassesTheBaseCall(BuildsThenRejects):
    """Calls forward directly, so the base class cannot undo what a rejected input built."""

    def __call__(self, x):
        return self.forward(x)


def test_the_kit_catches_a_layer_that_stays_built_for_a_rejected_input():
    [result] = [r for r in check_plugin(BypassesTheBaseCall, sample_shapes=[(4, 3)]) if r.property == "rejected_input"]
    assert result.ok is False
    assert "after rejecting an input of shape (4,) with a ShapeError, the correct input raised ShapeError" in result.detail
    [result] = [r for r in check_plugin(ChecksThenBuilds, sample_shapes=[(4, 3)]) if r.property == "rejected_input"]
    assert result.ok is True, result.detail


def test_the_base_class_undoes_what_a_rejected_first_input_built():
    [result] = [r for r in check_plugin(BuildsThenRejects, sample_shapes=[(4, 3)]) if r.property == "rejected_input"]
    assert result.ok is True, result.detail
    layer = BuildsThenRejects()
    with pytest.raises(lamina.ShapeError):
        layer(np.ones(4))
    assert layer.w is None and layer.parameters() == {}
    assert layer(np.ones((2, 3))).shape == (2, 3)


def test_the_built_ins_pass_rejected_input_where_they_reject_something():
    results = {}
    for info in lamina.get_registry().plugins("layer"):
        if info.package == "lamina":
            for r in check_plugin(info.cls):
                if r.property == "rejected_input":
                    results.setdefault(info.name, []).append(r.ok)
    assert all(ok is not False for oks in results.values() for ok in oks), results
    assert {"Conv2D", "BatchNorm", "MaxPool2D", "Reshape"} <= {name for name, oks in results.items() if True in oks}


# -- 3. check-plugins on other kinds, and by distribution ----------------------------------------------


CALLBACK_PLUGIN = """
    import numpy as np
    import lamina

    class EpochPrinter(lamina.Callback):
        def on_epoch_end(self, epoch, logs):
            lamina.echo(f"epoch {epoch + 1}: loss {logs['loss']:.3f}")

    class Twice(lamina.Layer):
        def forward(self, x):
            return 2 * x

        def backward(self, grad):
            return 2 * grad

    @lamina.hookimpl
    def register_callbacks(register):
        register(EpochPrinter)

    @lamina.hookimpl
    def register_layers(register):
        register(Twice)
"""


@pytest.fixture(scope="module")
def printer_site(tmp_path_factory):
    return make_distribution(tmp_path_factory.mktemp("printer"), "lamina-printer", "0.2", {"lamina_printer": CALLBACK_PLUGIN})


def test_check_plugins_on_a_callback_says_the_kit_does_not_cover_callbacks(printer_site):
    result = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', 'EpochPrinter']))", printer_site)
    assert result.returncode == 1
    assert "unknown layer" not in result.stderr
    assert "EpochPrinter is a callback; the conformance kit checks Layer, Loss and Optimizer classes only" in result.stderr


def test_check_plugins_package_checks_everything_one_distribution_registers(printer_site):
    result = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', '--package', 'lamina_printer']))",
                    printer_site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lamina-printer:Twice" in result.stdout and "Relu" not in result.stdout
    assert "All 1 plugins pass" in result.stdout
    assert "EpochPrinter is a callback" in result.stderr  # listed as not checked, not failed
    missing = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', '--package', 'lamina-nope']))")
    assert missing.returncode == 1 and "no installed distribution of that name registers plugins" in missing.stderr


# -- 4. lamina train reports the rows it trained on ------------------------------------------------------


def test_lamina_train_reports_rows_trained_on_and_held_out(tmp_path):
    config = tmp_path / "xor.toml"
    config.write_text(textwrap.dedent("""
        epochs = 2
        validation_split = 0.1
        [dataset]
        name = "spirals"
        n_samples = 200
        test_split = 0.2
        [[layers]]
        type = "Linear"
        units = 3
        [loss]
        type = "CrossEntropy"
        from_logits = true
    """))
    result = python(f"from lamina.app.cli import main; main(['train', {str(config)!r}, '--out', {str(tmp_path / 'out')!r}])")
    # spirals(200 samples, 3 classes) has 201 rows, 160 of them for training: 144 train, 16 validate
    x_train = lamina.dataset("spirals", n_samples=200, test_split=0.2)[0]
    held = len(x_train) - int(len(x_train) * 0.9)
    assert f"trained 2 epochs on {len(x_train) - held} samples ({held} held out for validation)" in result.stdout, result.stdout + result.stderr


# -- 7. empty inputs are ShapeErrors everywhere ------------------------------------------------------------


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda m: m.train(np.zeros((0, 3)), np.zeros((0, 1)), verbose=False), "x has no rows (shape (0, 3)), so there is nothing to train on"),
        (lambda m: m.train(np.ones((4, 3)), np.ones((4, 1)), validation_data=(np.zeros((0, 3)), np.zeros((0, 1))), verbose=False),
         "validation_data's x_val has no rows"),
        (lambda m: m.evaluate(np.zeros((0, 3)), np.zeros((0, 1)), loss="MSE"), "nothing to evaluate"),
        (lambda m: m.predict(np.zeros((0, 3))), "nothing to predict"),
        (lambda m: m.predict([]), "nothing to predict"),
    ],
    ids=["train", "validation", "evaluate", "predict", "predict-list"],
)
def test_empty_inputs_raise_a_shape_error_saying_there_is_nothing_to_do(call, expected):
    model = lamina.Model([lamina.layer("Linear", 1)])
    with pytest.raises(lamina.ShapeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        call(model)


def test_empty_data_files_are_errors_naming_the_file(tmp_path):
    (tmp_path / "header.csv").write_text("a,b,label\n")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(lamina.ArgumentError, match="header.csv'\\): the file has a header row but no data rows"):
        lamina.dataset("csv", path=tmp_path / "header.csv")
    with pytest.raises(lamina.ShapeError, match="empty.npz'\\): the array 'x' has no rows"):
        lamina.dataset("npz", path=tmp_path / "empty.npz")
    model = lamina.Model([lamina.layer("Linear", 1)])
    model.predict(np.ones((1, 3)))
    model.save(tmp_path / "model.npz")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    for name in ("header.csv", "empty.npz", "empty.npy"):
        result = subprocess.run([sys.executable, "-m", "lamina", "predict", "model.npz", name, "--out", "o.csv"],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 1 and result.stderr.startswith("lamina: error:"), result.stderr
        assert "no rows" in result.stderr or "no data rows" in result.stderr
        assert "Traceback" not in result.stderr


# -- 3 (docs). lamina.echo, the checks toolbox, dataset options ----------------------------------------------


class Announcer(lamina.Callback):
    def on_epoch_end(self, epoch, logs):
        lamina.echo("announcing epoch", epoch + 1)


def test_echo_prints_above_the_bar_and_is_silent_when_training_quietly(capsys):
    model = lamina.Model([lamina.layer("Linear", 1)])
    x, y = np.ones((8, 2)), np.ones((8, 1))
    model.train(x, y, epochs=2, batch_size=4, callbacks=[Announcer()], verbose=True)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["announcing epoch 1", "announcing epoch 2"]
    assert "epoch 2/2" in captured.err  # the bars, on stderr, untouched
    model.train(x, y, epochs=2, callbacks=[Announcer()], verbose=False)
    assert capsys.readouterr().out == ""


def test_echo_is_silent_under_quiet_on_the_command_line(printer_site, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('epochs = 2\ncallbacks = ["EpochPrinter"]\n[dataset]\nname = "xor"\n[[layers]]\ntype = "Linear"\nunits = 1\n')
    loud = python(f"from lamina.app.cli import main; main(['train', {str(config)!r}, '--out', {str(tmp_path / 'a')!r}])", printer_site)
    assert "epoch 2: loss" in loud.stdout, loud.stderr
    quiet = python(f"from lamina.app.cli import main; main(['train', {str(config)!r}, '--quiet', '--out', {str(tmp_path / 'b')!r}])", printer_site)
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout + quiet.stderr


def test_early_stopping_says_why_it_stopped_through_echo(capsys):
    model = lamina.Model([lamina.layer("Linear", 1)])
    x = np.random.default_rng(0).normal(size=(16, 2))
    stop = lamina.callback("EarlyStopping", monitor="loss", patience=0, min_delta=1e9)
    model.train(x, x[:, :1], epochs=5, callbacks=[stop], verbose=True)
    assert "EarlyStopping: stopped after epoch 2: loss has not improved for 0 epochs (best" in capsys.readouterr().out


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda c: c.boolean(1, "shared", "Noise"), "Noise(shared=1): shared must be True or False, got 1 (int)"),
        (lambda c: c.boolean(None, "shared", "Noise"), "shared must be True or False, got None (NoneType)"),
        (lambda c: c.non_negative_int(-1, "patience", "Stop"), "Stop(patience=-1): patience must be an int >= 0, got -1 (int)"),
        (lambda c: c.non_negative_int(2.0, "patience", "Stop"), "patience must be an int >= 0, got 2.0 (float)"),
        (lambda c: c.one_of("hoizontal", "mode", "Flip", ["horizontal", "vertical"]),
         "Flip(mode='hoizontal'): mode must be 'horizontal' or 'vertical', got 'hoizontal' (str). Did you mean 'horizontal'?"),
        (lambda c: c.one_of([1], "mode", "Flip", ["a", "b", "c"]), "mode must be 'a', 'b' or 'c', got [1] (list)."),
    ],
)
def test_the_checks_toolbox_refuses_with_lamina_style_messages(call, expected):
    with pytest.raises(lamina.ArgumentError) as info:
        call(lamina.checks)
    assert expected in str(info.value)


def test_the_checks_toolbox_passes_good_values_through():
    checks = lamina.checks
    assert checks.boolean(np.bool_(True), "f", "O") is True and checks.non_negative_int(0, "n", "O") == 0
    assert checks.one_of("min", "mode", "O", ("min", "max")) == "min"


def test_evaluate_takes_dataset_options(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 3)])
    model.predict(np.ones((1, 2)))
    model.save(tmp_path / "model.npz")
    base = ["evaluate", "model.npz", "--data", "spirals", "--loss", "CrossEntropy", "--json"]
    results = {}
    for options in ([], ["--data-option", "n_samples=90", "--data-option", "test_split=0.5"]):
        result = subprocess.run([sys.executable, "-m", "lamina", *base, *options], capture_output=True, text=True,
                                cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        results[len(options)] = result.stdout
    assert results[0] != results[4]  # another dataset was scored
    bad = subprocess.run([sys.executable, "-m", "lamina", *base, "--data-option", "n_samples"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 1 and "expected KEY=VALUE" in bad.stderr
