"""Model files: round trips, resuming, atomic writes, damaged and foreign files, missing plugins."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from conftest import ROOT, make_distribution, python, run_python

import lamina
from lamina.plugins import Adam, CrossEntropy, Linear, Relu, Sigmoid, Softmax, Tanh

X = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
LABELS = np.random.default_rng(1).integers(0, 3, size=16)

IMAGES = np.random.default_rng(2).normal(size=(4, 2, 6, 6)).astype(np.float32)
IDS = np.random.default_rng(3).integers(0, 9, size=(4, 5))
SEQ = np.random.default_rng(4).normal(size=(4, 6, 4)).astype(np.float32)  # (batch, time, features)
SIGNALS = np.random.default_rng(5).normal(size=(4, 3, 12)).astype(np.float32)  # (batch, channels, length)

# Every built-in layer inside a small model, with an input it takes (the meta-test keeps this complete).
ROUND_TRIPS = {
    "lamina:Linear": (lambda: [Linear(4, weight_init="glorot_normal", bias_init=lamina.initializer("normal", std=0.1))],
                      X),
    "lamina:Sigmoid": (lambda: [Linear(3), Sigmoid()], X),
    "lamina:Relu": (lambda: [Linear(3), Relu()], X),
    "lamina:Tanh": (lambda: [Linear(3), Tanh()], X),
    "lamina:Softmax": (lambda: [Linear(3), Softmax()], X),
    "lamina:LeakyRelu": (lambda: [Linear(3), lamina.layer("LeakyRelu", alpha=0.2)], X),
    "lamina:Elu": (lambda: [Linear(3), lamina.layer("Elu", alpha=0.5)], X),
    "lamina:Gelu": (lambda: [Linear(3), lamina.layer("Gelu", approximate="tanh")], X),
    "lamina:Softplus": (lambda: [Linear(3), lamina.layer("Softplus")], X),
    "lamina:Silu": (lambda: [Linear(3), lamina.layer("Silu")], X),
    "lamina:LogSoftmax": (lambda: [Linear(3), lamina.layer("LogSoftmax")], X),
    "lamina:Dropout": (lambda: [Linear(3), lamina.layer("Dropout", 0.25)], X),
    "lamina:RandomFlip": (lambda: [lamina.layer("RandomFlip", "both", p=0.3), lamina.layer("Flatten"), Linear(2)],
                          IMAGES),
    "lamina:RandomCrop": (lambda: [lamina.layer("RandomCrop", (4, 5), padding=[1, 2]), lamina.layer("Flatten"),
                                   Linear(2)], IMAGES),
    "lamina:RandomTranslation": (lambda: [lamina.layer("RandomTranslation", [2, 1]), lamina.layer("Flatten"),
                                          Linear(2)], IMAGES),
    "lamina:GaussianNoise": (lambda: [Linear(3), lamina.layer("GaussianNoise", 0.2)], X),
    "lamina:RandomErasing": (lambda: [lamina.layer("RandomErasing", 0.7, scale=[0.1, 0.4], value=-1),
                                      lamina.layer("Flatten"), Linear(2)],
                             IMAGES),
    "lamina:LayerNorm": (lambda: [Linear(3), lamina.layer("LayerNorm", eps=1e-3)], X),
    "lamina:BatchNorm": (lambda: [Linear(3), lamina.layer("BatchNorm", momentum=0.3)], X),
    "lamina:Normalization": (lambda: [lamina.layer("Normalization", mean=[0.5, 1.0, -2.0, 0.0, 3.0], variance=2.0),
                                      Linear(3)], X),
    "lamina:Conv2D": (lambda: [lamina.layer("Conv2D", 3, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1))], IMAGES),
    "lamina:MaxPool2D": (lambda: [lamina.layer("MaxPool2D", 3, stride=2)], IMAGES),
    "lamina:AvgPool2D": (lambda: [lamina.layer("AvgPool2D", (2, 3))], IMAGES),
    "lamina:GlobalAvgPool2D": (lambda: [lamina.layer("Conv2D", 2, 3, padding="same"), lamina.layer("GlobalAvgPool2D")],
                               IMAGES),
    "lamina:Flatten": (lambda: [lamina.layer("Flatten"), Linear(2)], IMAGES),
    "lamina:Reshape": (lambda: [lamina.layer("Reshape", (2, 36, -1)), lamina.layer("Flatten")], IMAGES),
    "lamina:Embedding": (lambda: [lamina.layer("Embedding", 9, 4), lamina.layer("Flatten"), Linear(2)], IDS),
    "lamina:Sequential": (lambda: [lamina.layer("Sequential",
                                                [Linear(4), "Relu", {"type": "BatchNorm", "momentum": 0.3}]),
                                   Linear(2)], X),
    "lamina:Residual": (lambda: [Linear(4),
                                 lamina.layer("Residual",
                                              [{"type": "Sequential", "layers": [Linear(4), "Tanh"]}, "LayerNorm"])],
                        X),
    "lamina:Parallel": (lambda: [lamina.layer("Parallel", [[Linear(3), "Relu"], [Linear(2), "Dropout"]]), Linear(2)],
                        X),
    "lamina:Conv1D": (lambda: [lamina.layer("Conv1D", 3, 3, stride=2, padding=1, dilation=2, bias_init="normal")],
                      SIGNALS),
    "lamina:MaxPool1D": (lambda: [lamina.layer("MaxPool1D", 3, stride=2)], SIGNALS),
    "lamina:AvgPool1D": (lambda: [lamina.layer("AvgPool1D", 2)], SIGNALS),
    "lamina:GlobalAvgPool1D": (lambda: [lamina.layer("Conv1D", 2, 3, padding="same"), lamina.layer("GlobalAvgPool1D")],
                               SIGNALS),
    "lamina:GlobalMaxPool1D": (lambda: [lamina.layer("Conv1D", 2, 3), lamina.layer("GlobalMaxPool1D")], SIGNALS),
    "lamina:RNN": (lambda: [lamina.layer("RNN", 4, nonlinearity="relu", return_sequences=True), lamina.layer("Flatten"),
                            Linear(2)], SEQ),
    "lamina:LSTM": (lambda: [lamina.layer("LSTM", 4, bidirectional=True), Linear(2)], SEQ),
    "lamina:GRU": (lambda: [lamina.layer("GRU", 3, return_sequences=True, bidirectional=True), lamina.layer("GRU", 4)],
                   SEQ),
    "lamina:MultiHeadAttention": (lambda: [lamina.layer("MultiHeadAttention", 2, causal=True), Linear(2)], SEQ),
    "lamina:TransformerBlock": (lambda: [lamina.layer("TransformerBlock", 2, 8), Linear(2)], SEQ),
    "lamina:PositionalEmbedding": (lambda: [lamina.layer("Embedding", 9, 4), lamina.layer("PositionalEmbedding", 8),
                                            Linear(2)], IDS),
    "lamina:SinusoidalPositions": (lambda: [lamina.layer("SinusoidalPositions"), Linear(2)], SEQ),
}


def merged(name, **kwargs):
    """A graph model that merges two branches of X and a third of its own input with `name`."""
    a, b = lamina.Input((5,), name="a"), lamina.Input((3,), name="b")
    merge = lamina.layer(name, **kwargs)
    out = merge([Linear(3)(a), lamina.layer("Tanh")(Linear(3)(a)), b])
    return lamina.Model(inputs={"a": a, "b": b}, outputs={"out": Linear(2)(out), "raw": out})


PAIRS = {"a": X, "b": X[:, :3] * 2}
# The merge layers, in graph models (a merge takes a list of values).
ROUND_TRIPS.update({
    "lamina:Concatenate": (lambda: merged("Concatenate", axis=-1), PAIRS),
    "lamina:Add": (lambda: merged("Add"), PAIRS),
    "lamina:Multiply": (lambda: merged("Multiply"), PAIRS),
    "lamina:Average": (lambda: merged("Average"), PAIRS),
})


def test_every_registered_layer_has_a_round_trip_test():
    registered = {i.qualified_name for i in lamina.get_registry().plugins("layer")}
    assert registered - {"test-plugins:TestScaled"} == set(ROUND_TRIPS)


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_round_trip_gives_identical_predictions(name, tmp_path):
    lamina.seed(0)
    make, x = ROUND_TRIPS[name]
    made = make()
    model = made if isinstance(made, lamina.Model) else lamina.Model(made)
    model.set_training(True)
    model.forward(model.prepare_input(x, "test"))  # a training pass moves BatchNorm's running statistics
    model.set_training(False)
    before = model.predict(x)
    model.save(tmp_path / "model.npz")
    loaded = lamina.load(tmp_path / "model.npz")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert repr(loaded) == repr(model)
    after = loaded.predict(x)
    for key in (before if isinstance(before, dict) else [None]):
        np.testing.assert_array_equal(after if key is None else after[key], before if key is None else before[key])
    for (k1, p1), (k2, p2) in zip(model.parameters().items(), loaded.parameters().items()):
        assert k1 == k2 and p1.value.dtype == p2.value.dtype
    for (k1, b1), (k2, b2) in zip(model.buffers().items(), loaded.buffers().items()):
        assert k1 == k2
        np.testing.assert_array_equal(b1, b2)


def test_float64_models_stay_float64(tmp_path):
    model = lamina.Model([Linear(2)])
    model(X.astype(np.float64))
    model.save(tmp_path / "m.npz")
    assert lamina.load(tmp_path / "m.npz").dtype == np.float64


def test_an_unbuilt_model_round_trips_and_builds_later(tmp_path):
    lamina.Model([Linear(2), Relu()]).save(tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.parameters() == {} and loaded.predict(X).shape == (16, 2)


def test_the_file_is_a_zip_of_json_and_npy_that_numpy_reads_without_pickle(tmp_path):
    lamina.seed(0)
    model = lamina.Model([Linear(3), Softmax()])
    model.train(X, LABELS, optim="Adam", loss="CrossEntropy", metrics=["accuracy"], epochs=2, verbose=False)
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["format"] == "lamina.model" and config["lamina_version"] == lamina.__version__
    assert config["layers"][0]["type"] == "Linear" and config["layers"][0]["config"] == {
        "units": 3, "weight_init": "he_uniform", "bias_init": "zeros"}
    assert config["plugins"] == {"lamina": lamina.__version__}
    assert config["loss"]["type"] == "CrossEntropy" and config["metrics"][0]["type"] == "accuracy"
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        np.testing.assert_array_equal(data["weights/0.weight"], model.parameters()["0.weight"].value)


def test_loss_and_metrics_come_back_so_evaluate_needs_no_arguments(tmp_path):
    model = lamina.Model([Linear(3), Softmax()])
    model.train(X, LABELS, loss="CrossEntropy", metrics=["accuracy"], epochs=1, verbose=False)
    model.save(tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert isinstance(loaded.loss, CrossEntropy) and [m.name for m in loaded.metrics] == ["accuracy"]
    assert loaded.evaluate(X, LABELS) == pytest.approx(model.evaluate(X, LABELS))


def test_resuming_from_a_file_gives_exactly_the_weights_of_uninterrupted_training(tmp_path):
    def fresh():
        lamina.seed(11)
        return lamina.Model([Linear(8), Relu(), Linear(3), Softmax()])

    kwargs = dict(loss="CrossEntropy", batch_size=4, verbose=False)
    straight = fresh()
    straight.train(X, LABELS, optim=Adam(0.01), epochs=5, **kwargs)

    first = fresh()
    first.train(X, LABELS, optim=Adam(0.01), epochs=3, **kwargs)
    first.save(tmp_path / "checkpoint.npz", include_optimizer=True)
    lamina.seed(999)  # whatever happens in between, the file brings the generator back
    resumed = lamina.load(tmp_path / "checkpoint.npz")
    assert resumed.optimizer.iterations == 12
    resumed.train(X, LABELS, optim=resumed.optimizer, epochs=2, **kwargs)
    for a, b in zip(straight.parameters().values(), resumed.parameters().values()):
        assert a.value.tobytes() == b.value.tobytes()


def test_optimizer_state_needs_an_optimizer(tmp_path):
    with pytest.raises(lamina.ArgumentError, match="has no optimizer yet"):
        lamina.Model([Linear(2)]).save(tmp_path / "m.npz", include_optimizer=True)


class Scaled(lamina.Layer):
    """A third-party layer whose constructor argument is stored under another name."""

    def __init__(self, factor: float = 1.0, name: str = "scaled") -> None:
        self._factor = factor
        self.name = name

    def get_config(self):
        return {"factor": self._factor, "name": self.name}

    def forward(self, x):
        return self._factor * x

    def backward(self, grad):
        return self._factor * grad


class Unregistered(Scaled):
    pass


class Plugin:
    @lamina.hookimpl
    def register_layers(self, register):
        register(Scaled, name="TestScaled")


@pytest.fixture(autouse=True)
def test_plugins():
    """TestScaled is registered for these tests only, so other meta-tests never see it."""
    lamina.register_plugin(Plugin(), package="test-plugins", version="3.1")
    yield
    lamina.get_registry().remove_package("test-plugins")


def test_a_third_party_layer_with_get_config_saves_and_loads_like_a_built_in(tmp_path):
    model = lamina.Model([Linear(2), Scaled(2.5, name="double-ish")])
    before = model.predict(X)
    model.save(tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert loaded.layers[1].get_config() == {"factor": 2.5, "name": "double-ish"}
    np.testing.assert_array_equal(loaded.predict(X), before)
    config = lamina.files.load.read_config(tmp_path / "m.npz")
    assert config["plugins"]["test-plugins"] == "3.1"


def test_unregistered_layers_and_unstorable_arguments_are_named_on_save(tmp_path):
    with pytest.raises(lamina.ArgumentError,
                       match=r"Model.layers\[1\] is a Unregistered, which is not a registered layer"):
        lamina.Model([Linear(2), Unregistered()]).save(tmp_path / "m.npz")
    with pytest.raises(lamina.ArgumentError, match=r"Model.layers\[0\].config.factor is .*array"):
        lamina.Model([Scaled(np.ones(3))]).save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_missing_plugin_names_the_layer_the_package_and_what_to_install(tmp_path):
    path = tmp_path / "m.npz"
    lamina.Model([Linear(2), Scaled(2.0)]).save(path)
    rewrite_config(path, lambda c: c["layers"][1].update(package="lamina-foo", version="1.2"))
    with pytest.raises(lamina.MissingPluginError) as info:
        lamina.load(path)
    message = str(info.value)
    assert "needs the layer 'TestScaled' from lamina-foo 1.2" in message
    assert "lamina-foo is not installed; install it with: pip install 'lamina-foo>=1.2'" in message


def rewrite_config(path, change):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# -- atomic writes -----------------------------------------------------------------------------


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    lamina.Model([Linear(2)]).save(path)
    original = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        lamina.Model([Linear(7)]).save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # the temporary file is gone


# -- damaged and foreign files ------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    lamina.seed(0)
    model = lamina.Model([Linear(3), Relu(), Linear(2)])
    model(X)
    model.save(path)
    return path


def damage_member(path, member, data):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = data
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            archive.writestr(name, value)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a zip archive"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "not a zip archive"),
        (lambda p: p.write_bytes(b""), "not a zip archive"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)), "not a zip archive"),
        (lambda p: p.write_text("layers: [Linear]"), "not a zip archive"),
        (lambda p: np.savez(p, a=np.ones(3)), "it has no config.json"),
        (lambda p: damage_member(p, "config.json", b"{not json"), "config.json is not valid JSON"),
        (lambda p: damage_member(p, "config.json", b'{"format": "keras"}'), "not in lamina's format"),
        (lambda p: rewrite_config(p, lambda c: c.update(format_version=99)), "newer than this lamina reads"),
        (lambda p: rewrite_config(p, lambda c: c.pop("layers")), "malformed (KeyError"),
        (lambda p: rewrite_config(p, lambda c: c.update(layers="Linear")), "malformed"),
        (lambda p: rewrite_config(p, lambda c: c["weights"].pop("0.bias")), "do not fit the layers"),
        (lambda p: rewrite_config(p, lambda c: c.update(input_shape=[7])), "has shape (5, 3), the layer needs (7, 3)"),
        (lambda p: damage_member(p, "weights/0.weight.npy", b"\x93NUMPY garbage"),
         "'weights/0.weight.npy' is corrupted"),
    ],
    ids=["half", "100-bytes", "empty", "random", "text", "other-npz", "bad-json", "foreign-json",
         "future-format", "no-layers", "layers-not-list", "weights-mismatch", "wrong-shape", "bad-array"],
)
def test_damaged_or_foreign_files_get_an_error_that_says_so(saved, damage, expected):
    damage(saved)
    with pytest.raises(lamina.FileFormatError) as info:
        lamina.load(saved)
    assert expected in str(info.value) and str(saved) in str(info.value)


def test_a_file_with_a_pickled_array_is_refused_and_nothing_runs(saved, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    damage_member(saved, "weights/0.weight.npy", buffer.getvalue())
    with pytest.raises(lamina.FileFormatError, match="corrupted"):
        lamina.load(saved)
    assert not marker.exists()


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        lamina.load(tmp_path / "nope.npz")


# -- summary ---------------------------------------------------------------------------------------


def test_summary_lists_layers_output_shapes_and_parameter_counts():
    model = lamina.Model([Linear(8), Relu(), Linear(3), Softmax()])
    assert "call the model on data" in model.summary()
    model(X)
    lines = model.summary().splitlines()
    assert lines[0].split() == ["#", "Layer", "Output", "shape", "Params"]
    assert "Linear(units=8)" in lines[2] and "(None, 8)" in lines[2] and lines[2].endswith("48")
    assert "(None, 3)" in lines[4] and lines[4].endswith("27")
    assert lines[-1] == "Total params: 75"


# -- a real third-party distribution ------------------------------------------------------------


SAVE_SNAKE = """
import sys, lamina
lamina.seed(0)
model = lamina.Model([{"type": "Linear", "units": 3}, {"type": "Snake", "alpha": 0.5}])
model.predict([[1.0, 2.0]])
model.save(sys.argv[1])
print(lamina.load(sys.argv[1]).layers[1])
"""


def test_a_file_with_a_third_party_layer_loads_where_the_package_is_and_explains_where_not(tmp_path, snake_site):
    path = tmp_path / "snake.npz"
    saved = run_python("-c", SAVE_SNAKE, str(path), pythonpath=snake_site)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "Snake(alpha=0.5)"
    missing = run_python("-c", f"import lamina; lamina.load({str(path)!r})")
    assert "MissingPluginError" in missing.stderr
    assert "needs the layer 'Snake' from lamina-snake 0.1.0" in missing.stderr
    assert "pip install 'lamina-snake>=0.1.0'" in missing.stderr


def test_a_model_file_written_before_the_core_moved_into_wings_loads_and_predicts_the_same():
    # Written by lamina before core/ was grouped into protocols/, training/, files/ and app/
    # (a Normalization, BatchNorm's running statistics, Residual and Parallel blocks, the Adam
    # state and class names): the file format names plugins, never module paths.
    data = ROOT / "tests" / "data"
    model = lamina.load(data / "before_the_house.npz")
    x, _, _, _ = lamina.dataset("digits")
    expected = np.load(data / "before_the_house_predictions.npy")
    np.testing.assert_allclose(model.predict(x[:16]), expected, rtol=1e-5, atol=1e-6)  # float32, any BLAS kernel
    assert model.metadata["classes"][3] == "3"
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.state


# -- a file's plugins: installed but not loaded, missing, older or newer than the file's -----------


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
         "lamina-gamma 0.1.0 is installed but failed to load: ImportError: libgamma.so: "
         "cannot open shared object file"),
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


# -- a full disk, and a saved model loaded in a script ---------------------------------------------


def test_a_full_disk_names_the_file_and_the_step(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        lamina.atomic_write(tmp_path / "model.npz", b"data")
    assert (f"cannot write {tmp_path / 'model.npz'} (syncing the temporary file to disk): "
            "No space left on device") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_predict_in_a_script_after_loading_keeps_working(tmp_path):
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, lamina
        model = lamina.Model([lamina.layer("Linear", 2)])
        model.predict(np.ones((1, 3)))
        model.save("m.npz")
        print(lamina.load("m.npz").predict(np.ones((2, 3))).shape)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.strip() == "(2, 2)", result.stderr
