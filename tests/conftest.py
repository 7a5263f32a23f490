"""Shared test helpers: fake installed distributions and plugin modules."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Bounded hypothesis profiles: "ci" (the default, and what .ci/run uses) is derandomised so that
# CI is reproducible; "dev" draws fresh examples each run; "fuzz" is for long local runs.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=20, derandomize=True, **_common)
settings.register_profile("dev", max_examples=20, **_common)
settings.register_profile("fuzz", max_examples=500, **_common)  # fuzzers: 10x, 5,000 each
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent


def make_distribution(site: Path, package: str, version: str, modules: dict[str, str]) -> Path:
    """Write a real installed distribution into `site`: its modules and a dist-info folder
    whose entry_points.txt puts each module in the `lamina` group (entry point = module name)."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    points = "".join(f"{module} = {module}\n" for module in modules)
    (info / "entry_points.txt").write_text(f"[lamina]\n{points}")
    importlib.invalidate_caches()
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install fake distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def run_python(*args: str, pythonpath: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python ARGS` in a fresh interpreter (a fresh registry), optionally with extra sys.path."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture(scope="session")
def snake_site(tmp_path_factory):
    """examples/lamina-snake, installed by pip as a real distribution into a temporary folder."""
    target = tmp_path_factory.mktemp("snake-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(ROOT / "examples" / "lamina-snake")],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("lamina_snake-0.1.0.dist-info"))
    return target


# -- ONNX export: run the exported file in onnxruntime ---------------------------------------------
try:
    import onnx  # noqa: F401
    import onnxruntime
except ImportError:  # the onnx extra and onnxruntime are optional: their tests skip
    onnxruntime = None

needs_onnx = pytest.mark.skipif(onnxruntime is None, reason="ONNX export: pip install -e '.[onnx]' onnxruntime")


def run_onnx(path, x):
    """The exported file's output for `x`, computed by onnxruntime on the CPU."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    if x.dtype == np.float64:  # onnxruntime's extended fusions (attention) lose double precision (~1e-8)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def onnx_difference(model, tmp_path, batches=(2, 7), opset=17, high=None, seed=0, name="model.onnx"):
    """Export `model`, run the file in onnxruntime on random inputs of each batch size, and
    return the largest max|onnx - predict| / max|predict| (integer inputs: 0 <= x < high)."""
    path = model.export_onnx(tmp_path / name, opset=opset)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in batches:
        shape = (batch, *model.input_shape)
        if np.dtype(model.input_dtype).kind in "iu":
            x = rng.integers(0, high, size=shape).astype(np.int64)
        else:
            x = rng.normal(size=shape).astype(model.dtype)
        expected = model.predict(x)
        got = run_onnx(path, x)
        assert got.shape == expected.shape, (got.shape, expected.shape)
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
        scale = max(float(np.abs(expected).max()), 1e-30)
        worst = max(worst, float(np.abs(got - expected).max()) / scale)
    return worst


# -- plugins and `lamina train` runs in a fresh interpreter -------------------------------------


def python(code: str, site=None, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (a fresh registry) with `site` on the path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join(str(s) for s in (site if isinstance(site, list) else [site]))
    environ.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environ, cwd=ROOT, timeout=120)


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
    """lamina-printer 0.2: a callback that echoes each epoch's loss (EpochPrinter) and a layer (Twice)."""
    return make_distribution(tmp_path_factory.mktemp("printer"), "lamina-printer", "0.2",
                             {"lamina_printer": CALLBACK_PLUGIN})


RUN_CONFIG = """
epochs = {epochs}
batch_size = 8
output = "{output}"
[dataset]
name = "spirals"
n_samples = {samples}
[[layers]]
type = "Linear"
units = 16
[[layers]]
type = "Relu"
[[layers]]
type = "Linear"
units = 3
[loss]
type = "CrossEntropy"
from_logits = true
[optimizer]
type = "Adam"
"""


def config_file(tmp_path, epochs=3, samples=90, output=None):
    """A `lamina train` config of a small classifier on the spirals, writing into `output`."""
    path = tmp_path / "run.toml"
    path.write_text(RUN_CONFIG.format(epochs=epochs, samples=samples, output=output or (tmp_path / "out")))
    return path


# -- hostile inputs: every case a result or a LaminaError, in bounded time and memory --------------

CAP_SECONDS = 20
CAP_ADDRESS_SPACE = 3 * 2**30


def _cap_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CAP_ADDRESS_SPACE, CAP_ADDRESS_SPACE))


def capped(*args: str, cwd: Path = ROOT, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run `python ARGS` (e.g. "-m", "lamina", "predict", ...) as a hostile-input case must run: within
    3 GiB of address space (RLIMIT_AS) and 20 s, one BLAS thread. Going over the time raises
    subprocess.TimeoutExpired (the test fails); going over the memory shows as a MemoryError traceback
    in stderr (assert `"Traceback" not in result.stderr`)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    environ.update({"OPENBLAS_NUM_THREADS": "1", **env})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=environ,
                          input=stdin, timeout=CAP_SECONDS, preexec_fn=_cap_address_space)


def reference(module: str, install: str) -> object:
    """A test reference package (scikit-learn, ...), or a skip saying how to install it: not installed,
    or not importable here (scipy, under scikit-learn, trips over a stubbed-out torch module)."""
    try:
        return importlib.import_module(module)
    except Exception as err:  # ImportError, or whatever a half-usable install raises
        pytest.skip(f"{module} is the reference here ({install}): {type(err).__name__}", allow_module_level=True)
