"""The plugin ecosystem: the conformance kit, check-plugins, the template package, and
control over what loads (allow- and deny-lists, tracing, --verbose)."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_distribution, python, run_python
from test_registry import layer_plugin, unique

import lamina
from lamina.testing import Case, check_plugin, format_failures, lamina_conformance

# -- the kit on broken classes: each property catches its own mistake ------------------------------


class Square(lamina.Layer):
    """A correct layer: y = w * x^2 per feature."""

    def __init__(self, width: int = 3) -> None:
        self.width = width
        self.w = None

    def parameters(self):
        return {} if self.w is None else {"w": self.w}

    def forward(self, x):
        if self.w is None:
            self.w = lamina.Parameter(np.ones(self.width, dtype=x.dtype))
        if x.shape[-1] != self.width:
            raise lamina.ShapeError(f"{type(self).__name__}(width={self.width}) got shape {x.shape}")
        self._x = x
        return self.w.value * x * x

    def backward(self, grad):
        self.w.grad += (grad * self._x * self._x).reshape(-1, self.width).sum(axis=0)
        return grad * 2 * self.w.value * self._x


class HalfGradient(Square):
    def backward(self, grad):
        return 0.5 * super().backward(grad)


class Overwrites(Square):
    def backward(self, grad):
        self.w.grad[...] = 0
        return super().backward(grad)


class Mutates(Square):
    def forward(self, x):
        y = super().forward(x)
        x += 0  # harmless
        x *= 1.0001
        return y


class Upcasts(Square):
    def forward(self, x):
        return super().forward(x).astype(np.float64)


class Unseeded(Square):
    def forward(self, x):
        return super().forward(x) + np.random.default_rng().normal(size=x.shape) * 1e-3


class NumpyShapeError(Square):
    def forward(self, x):
        self.w = self.w or lamina.Parameter(np.ones(self.width, dtype=x.dtype))
        return self.w.value * x * x  # broadcasting error from numpy, not a ShapeError


CASE = [Case({"width": 3}, (4, 3), wrong_shape=(4, 5))]


def failed(cls):
    return {r.property for r in check_plugin(cls, cases=CASE) if r.ok is False}


def test_a_correct_layer_passes_every_property():
    results = check_plugin(Square, cases=CASE)
    assert all(r.ok for r in results), format_failures(results)


@pytest.mark.parametrize(
    "cls, prop",
    [
        (HalfGradient, "gradients"),
        (Overwrites, "accumulates"),
        (Mutates, "no_mutation"),
        (Upcasts, "dtype"),
        (Unseeded, "seeded"),
        (NumpyShapeError, "shape_error"),
    ],
)
def test_each_broken_layer_fails_its_property_and_says_how(cls, prop):
    assert prop in failed(cls)


def test_failure_messages_name_the_property_the_size_and_the_shape():
    [result] = [r for r in check_plugin(HalfGradient, cases=CASE) if r.property == "gradients"]
    message = str(result)
    assert message.startswith("HalfGradient: gradients FAILED: the input gradient is off")
    assert "relative error 3.33e-01 (tolerance 1e-06) in training mode (input shape (4, 3))" in message


class SpuriousFlag(Square):
    """Raises numpy's invalid-value error from a finite product once, as some OpenBLAS kernels make it do."""

    raised = False

    def forward(self, x):
        if not SpuriousFlag.raised:
            SpuriousFlag.raised = True
            raise FloatingPointError("invalid value encountered in matmul")
        return super().forward(x)


class RealNaN(Square):
    def forward(self, x):
        y = super().forward(x)
        with np.errstate(invalid="ignore"):
            return y + (np.full_like(x, np.inf) @ np.zeros((x.shape[-1], x.shape[-1]), x.dtype))


def test_a_spurious_blas_invalid_flag_is_not_a_failure_but_a_real_nan_is():
    SpuriousFlag.raised = False
    results = check_plugin(SpuriousFlag, cases=CASE)
    assert SpuriousFlag.raised and all(r.ok for r in results), format_failures(results)
    [dtype] = [r for r in check_plugin(RealNaN, cases=CASE) if r.property == "dtype"]
    assert dtype.ok is False and "non-finite output" in str(dtype)


def test_losses_and_optimizers_are_checked_too():
    class WrongLoss(lamina.Loss):
        def forward(self, pred, y):
            self._d = pred - y
            return float(np.mean(self._d**2))

        def backward(self):
            return 2 * self._d  # forgot the mean's 1/size

    class Uphill(lamina.Optimizer):
        def __init__(self, lr: float = 0.1) -> None:
            self.lr = lr

        def update(self, param, state):
            param.value = param.value + self.lr * param.grad  # wrong direction, not in place

    assert "gradients" in {r.property for r in check_plugin(WrongLoss) if r.ok is False}
    assert {"in_place", "descends"} <= {r.property for r in check_plugin(Uphill) if r.ok is False}


# the function form of the pytest integration, exercised by this very suite
test_square_conformance = lamina_conformance(Square, sample_shapes=[(4, 3), (2, 5, 3)])


@pytest.mark.lamina_conformance(Square, cases=CASE)
def test_square_through_the_marker(lamina_check):
    lamina_check()


def test_the_kit_refuses_other_kinds():
    with pytest.raises(TypeError, match="checks Layer, Loss and Optimizer classes"):
        check_plugin(lamina.Metric)


# -- check-plugins -----------------------------------------------------------------------------------


def test_check_plugins_passes_every_built_in():
    result = run_python("-m", "lamina", "check-plugins", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(result.stdout)
    assert {r["kind"] for r in records} == {"layer", "loss", "optimizer"}
    assert len(records) == len(lamina.get_registry().plugins("layer")) + 10
    assert all(r["passed"] for r in records)


BROKEN_LAYER = """
import numpy as np
import lamina


class Doubler(lamina.Layer):
    '''y = 2 x, with a backward that is off by a factor of 2.'''

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return grad


@lamina.hookimpl
def register_layers(register):
    register(Doubler)
"""


def test_check_plugins_catches_a_wrong_third_party_layer(tmp_path):
    site = make_distribution(tmp_path / "site", "lamina-broken-math", "0.9",
                             {unique("lamina_broken_math"): BROKEN_LAYER})
    result = run_python("-m", "lamina", "check-plugins", "Doubler", pythonpath=site)
    assert result.returncode == 1
    assert "lamina-broken-math:Doubler" in result.stdout
    assert "lamina-broken-math:Doubler gradients: the input gradient is off from finite differences" in result.stdout
    everything = run_python("-m", "lamina", "check-plugins", pythonpath=site)
    assert everything.returncode == 1 and "Failed (1):" in everything.stdout


# -- the template package, end to end, in a temporary virtual environment --------------------------


@pytest.fixture(scope="module")
def template_env(tmp_path_factory):
    """A fresh venv that sees this environment's packages (lamina, numpy, pytest) through a
    .pth file, with examples/plugin-template pip-installed into it."""
    root = tmp_path_factory.mktemp("template-env")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_lamina_outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", str(ROOT / "examples" / "plugin-template")],
        check=True, capture_output=True, timeout=300,
    )
    return python, root


def test_the_template_package_passes_its_own_tests(template_env):
    python, root = template_env
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "examples" / "plugin-template" / "tests")],
        capture_output=True, text=True, cwd=root, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout and "failed" not in result.stdout


def test_the_template_plugins_work_by_name_in_lamina_and_lamina_train(template_env):
    python, root = template_env
    use = subprocess.run(
        [str(python), "-c", "import lamina; print(lamina.layer('Scale', init=2.0), lamina.loss('log_cosh'), "
         "lamina.get_registry().get('layer', 'Scale').package)"],
        capture_output=True, text=True, timeout=120,
    )
    assert use.returncode == 0, use.stderr
    assert use.stdout.split() == ["Scale(init=2.0)", "LogCosh()", "lamina-template"]
    out = root / "run"
    train = subprocess.run(
        [str(python), "-m", "lamina", "train", str(ROOT / "examples" / "plugin-template" / "example.toml"),
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, cwd=root, timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert json.loads((out / "metrics.json").read_text())["test"]["loss"] < 0.01
    check = subprocess.run([str(python), "-m", "lamina", "check-plugins", "Scale", "LogCosh"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = subprocess.run([str(python), "-m", "lamina", "list-plugins", "--kind", "loss"], capture_output=True,
                            text=True, timeout=120)
    assert any(line.split()[:4] == ["LogCosh", "loss", "lamina-template", "0.1.0"]
               for line in listed.stdout.splitlines())


# -- control over what loads ---------------------------------------------------------------------------


@pytest.fixture
def two_packages(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "lamina-alpha", "1.0", {unique("lamina_alpha"): layer_plugin("AlphaLayer")})
    make_distribution(site, "lamina-beta", "2.0",
                      {unique("lamina_beta"): "raise ImportError('beta must never be imported')\n"})
    return site


def test_the_allow_list_loads_only_the_named_distributions_and_the_built_ins(two_packages, monkeypatch):
    monkeypatch.syspath_prepend(str(two_packages))
    registry = lamina.Registry(allow="lamina-alpha")
    assert registry.get("layer", "AlphaLayer").package == "lamina-alpha"
    assert registry.get("layer", "Relu").package == "lamina"  # built-ins always load
    assert registry.failures == []  # beta was never imported
    [skip] = registry.skipped
    assert (skip.package, skip.reason) == ("lamina-beta", "not in LAMINA_PLUGINS (the allow-list)")


def test_the_deny_list_skips_a_distribution_without_importing_it(two_packages, monkeypatch):
    monkeypatch.syspath_prepend(str(two_packages))
    registry = lamina.Registry(deny="lamina_beta, lamina-gamma")
    assert registry.get("layer", "alphalayer").package == "lamina-alpha"
    assert registry.failures == []
    assert [(s.package, s.reason) for s in registry.skipped] == [("lamina-beta", "disabled by LAMINA_DISABLE_PLUGINS")]
    everything = lamina.Registry()
    with pytest.warns(lamina.PluginWarning, match="beta must never be imported"):
        everything.load()


def test_the_built_ins_cannot_be_disabled():
    registry = lamina.Registry(deny="lamina", allow="")
    assert registry.get("layer", "Linear").package == "lamina"


def test_list_plugins_shows_what_was_skipped_and_why(two_packages):
    import os

    env = dict(os.environ, LAMINA_DISABLE_PLUGINS="lamina-beta", PYTHONPATH=str(two_packages))
    result = subprocess.run([sys.executable, "-m", "lamina", "list-plugins", "--kind", "layer"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Skipped (1):" in result.stdout
    assert "lamina-beta 2.0 (plugin" in result.stdout and "disabled by LAMINA_DISABLE_PLUGINS" in result.stdout
    assert "Failed" not in result.stdout


def test_tracing_logs_each_registration_to_stderr(two_packages):
    import os

    env = dict(os.environ, LAMINA_TRACE_PLUGINS="1", LAMINA_PLUGINS="lamina-alpha", PYTHONPATH=str(two_packages))
    result = subprocess.run([sys.executable, "-c", "import lamina; lamina.layer('AlphaLayer')"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("lamina: registered layer 'AlphaLayer' from lamina-alpha 1.0 (plugin ")
               for line in lines)
    assert "lamina: registered layer 'Linear' with aliases 'Dense' from lamina 0.1.0 (plugin 'linear')" in lines
    assert any("skipped lamina-beta 2.0" in line for line in lines)
    quiet = run_python("-c", "import lamina; lamina.layer('Relu')")
    assert quiet.stderr == ""


def test_list_plugins_verbose_shows_modules_hooks_and_docstrings():
    result = run_python("-m", "lamina", "list-plugins", "--kind", "optimizer", "--verbose")
    assert result.returncode == 0, result.stderr
    assert "lamina 0.1.0, plugin 'optimizers': " in result.stdout and "optimizers.py" in result.stdout
    assert "hooks: register_optimizers" in result.stdout
    assert ("optimizer Adam: Adam (Kingma & Ba), "
            "with L2 weight decay added to the gradient as torch.optim.Adam:") in result.stdout


def test_a_plugin_named_like_a_built_in_never_shadows_it(tmp_path, monkeypatch):
    site = make_distribution(tmp_path / "site", "lamina-shadow", "1.0", {unique("lamina_shadow"): layer_plugin("Relu")})
    monkeypatch.syspath_prepend(str(site))
    registry = lamina.Registry()
    with pytest.raises(lamina.AmbiguousPluginError) as info:
        registry.get("layer", "Relu")
    assert "'lamina:Relu' or 'lamina-shadow:Relu'" in str(info.value)
    assert registry.get("layer", "lamina:relu").cls is lamina.plugins.Relu


# -- the kit on other kinds, and a layer that stays built for a rejected input ---------------------


def test_the_kit_refuses_a_callback_with_a_lamina_error():
    class EpochPrinter(lamina.Callback):
        pass

    with pytest.raises(lamina.ArgumentError, match="EpochPrinter is a callback; the conformance kit checks "
                                                   "Layer, Loss and Optimizer classes only"):
        check_plugin(EpochPrinter)
    with pytest.raises(lamina.ArgumentError, match="not a plugin class"):
        check_plugin(len)


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
    assert ("after rejecting an input of shape (4,) with a ShapeError, "
            "the correct input raised ShapeError") in result.detail
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


# -- check-plugins on a callback, and by distribution ----------------------------------------------


def test_check_plugins_on_a_callback_says_the_kit_does_not_cover_callbacks(printer_site):
    result = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', 'EpochPrinter']))",
                    printer_site)
    assert result.returncode == 1
    assert "unknown layer" not in result.stderr
    assert ("EpochPrinter is a callback; "
            "the conformance kit checks Layer, Loss and Optimizer classes only") in result.stderr


def test_check_plugins_package_checks_everything_one_distribution_registers(printer_site):
    result = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', '--package', "
                    "'lamina_printer']))",
                    printer_site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lamina-printer:Twice" in result.stdout and "Relu" not in result.stdout
    assert "All 1 plugins pass" in result.stdout
    assert "EpochPrinter is a callback" in result.stderr  # listed as not checked, not failed
    missing = python("from lamina.app.cli import main; raise SystemExit(main(['check-plugins', '--package', "
                     "'lamina-nope']))")
    assert missing.returncode == 1 and "no installed distribution of that name registers plugins" in missing.stderr
