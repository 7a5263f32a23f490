"""Text: the `text` and `moby_dick` datasets, model metadata (the vocabulary) in model files,
`lamina.app.generate` and `lamina generate`."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from conftest import run_python

import lamina

PATTERN = "the cat sat on the mat. " * 40


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "pattern.txt"
    path.write_text(PATTERN, encoding="utf-8")
    return path


def test_text_windows_targets_and_vocabulary(text_file):
    data = lamina.dataset("text", path=str(text_file), seq_len=8, test_split=0.25)
    x, y, x_test, y_test = data
    vocabulary = data.metadata["vocabulary"]
    assert vocabulary == "".join(sorted(set(PATTERN))) and data.metadata["seq_len"] == 8
    assert x.shape[1] == y.shape[1] == 8 and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character
    assert "".join(vocabulary[i] for i in x[0]) == PATTERN[:8]
    train_chars, test_chars = len(x) * 8, len(x_test) * 8
    assert test_chars <= 0.25 * len(PATTERN) + 8 and train_chars <= 0.75 * len(PATTERN)
    overlapping = lamina.dataset("text", path=str(text_file), seq_len=8, stride=2)[0]
    assert len(overlapping) > 3 * len(x)


@pytest.mark.parametrize("options, message", [
    ({"seq_len": 600}, "too few for windows of seq_len=600"),
    ({"encoding": "klingon"}, "not a known text encoding"),
    ({"seq_len": 0}, "seq_len"),
])
def test_text_errors(text_file, options, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.dataset("text", path=str(text_file), **options)


def test_moby_dick_ships_with_lamina():
    data = lamina.dataset("moby_dick")
    x, _, x_test, _ = data
    text = "".join(data.metadata["vocabulary"][i] for i in x[0])
    assert text.startswith("MOBY-DICK; or, THE WHALE.\nBy Herman Melville")
    assert len(data.metadata["vocabulary"]) == 80 and len(x) > 4000 and len(x_test) > 400


def trained(text_file, epochs=30):
    data = lamina.dataset("text", path=str(text_file), seq_len=12, test_split=0.1, stride=1)  # every alignment
    x, y, _, _ = data
    lamina.seed(0)
    model = lamina.Model([
        {"type": "Embedding", "num_embeddings": len(data.metadata["vocabulary"]), "dim": 16},
        {"type": "PositionalEmbedding", "max_len": 12},
        {"type": "TransformerBlock", "num_heads": 2, "ff_units": 32, "dropout": 0.0, "causal": True},
        {"type": "Linear", "units": len(data.metadata["vocabulary"])},
    ])
    model.metadata.update(data.metadata)
    model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=epochs, batch_size=32, verbose=False)
    return model


def test_generate_continues_what_the_model_learnt_and_the_vocabulary_travels(text_file, tmp_path):
    model = trained(text_file)
    assert lamina.generate(model, "the cat sat on ", length=12, temperature=0) == "the cat sat on the mat. the"
    model.save(tmp_path / "lm.npz")
    loaded = lamina.load(tmp_path / "lm.npz")
    assert loaded.metadata == model.metadata
    assert (lamina.generate(loaded, "the ", length=40, temperature=0.5, seed=1)
            == lamina.generate(model, "the ", length=40, temperature=0.5, seed=1))
    sample = lamina.generate(loaded, length=30, seed=3)
    assert len(sample) == 30 and set(sample) <= set(PATTERN)


@pytest.mark.parametrize("call, message", [
    (lambda m: lamina.generate(m, "the dog"), r"characters the model never saw \('d', 'g'\)"),
    (lambda m: lamina.generate(m, "the", length=-1), "length"),
    (lambda m: lamina.generate(m, "the", temperature=-0.5), "temperature"),
    (lambda m: lamina.generate(lamina.Model([lamina.layer("Linear", 2)]), "x"),
     r"no vocabulary in model.metadata\['vocabulary'\]"),
])
def test_generate_errors(text_file, call, message):
    model = trained(text_file, epochs=1)
    with pytest.raises(lamina.ArgumentError, match=message):
        call(model)


def test_a_file_with_malformed_metadata_is_refused(tmp_path):
    model = lamina.Model([lamina.layer("Linear", 2)])
    model(np.ones((1, 3)))
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["metadata"] = ["not", "a", "table"]
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(lamina.FileFormatError, match="'metadata' is not a table"):
        lamina.load(tmp_path / "bad.npz")


CONFIG = """
seed = 0
epochs = 15
batch_size = 32
output = "{output}"

[dataset]
name = "text"
path = "{path}"
seq_len = 12
stride = 1

[[layers]]
type = "Embedding"
num_embeddings = {size}
dim = 16

[[layers]]
type = "GRU"
units = 32
return_sequences = true

[[layers]]
type = "Linear"
units = {size}

[loss]
type = "CrossEntropy"
from_logits = true

[optimizer]
type = "Adam"
lr = 0.02
"""


def test_lamina_train_then_lamina_generate(text_file, tmp_path):
    config = tmp_path / "lm.toml"
    size = len(set(PATTERN))
    config.write_text(CONFIG.format(output=(tmp_path / "run").as_posix(), path=text_file.as_posix(), size=size))
    trainedrun = run_python("-m", "lamina", "train", str(config), "--quiet", cwd=tmp_path)
    assert trainedrun.returncode == 0, trainedrun.stderr
    model_file = tmp_path / "run" / "model.npz"
    result = run_python("-m", "lamina", "generate", str(model_file), "--prompt", "the cat ", "--length", "20",
                        "--temperature", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the cat sat on the mat")
    bad = run_python("-m", "lamina", "generate", str(model_file), "--prompt", "zebra", cwd=tmp_path)
    assert bad.returncode != 0 and "characters the model never saw" in bad.stderr


def test_resume_of_a_sequence_model_reaches_the_uninterrupted_weights(text_file, tmp_path):
    data = lamina.dataset("text", path=str(text_file), seq_len=12, stride=4)
    x, y = data[0][:64], data[1][:64]
    size = len(data.metadata["vocabulary"])

    def make():
        lamina.seed(5)
        return lamina.Model([
            {"type": "Embedding", "num_embeddings": size, "dim": 8},
            {"type": "SinusoidalPositions"},
            {"type": "LSTM", "units": 8, "return_sequences": True},
            {"type": "TransformerBlock", "num_heads": 2, "ff_units": 16, "dropout": 0.2, "causal": True},
            {"type": "Linear", "units": size},
        ])

    options = dict(optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), batch_size=16, verbose=False)
    whole = make()
    whole.train(x, y, epochs=4, **options)
    first = make()
    first.train(x, y, epochs=2, callbacks=[lamina.Checkpoint(tmp_path / "ck.npz")], **options)
    resumed = make()
    resumed.train(x, y, epochs=4, resume_from=tmp_path / "ck.npz", **options)
    for a, b in zip(resumed.parameters().values(), whole.parameters().values()):
        assert a.value.tobytes() == b.value.tobytes()


def test_one_step_sequences_and_flattened_labels_train():
    x = np.random.default_rng(0).integers(0, 5, size=(6, 1))
    model = lamina.Model([{"type": "Embedding", "num_embeddings": 5, "dim": 4}, {"type": "Linear", "units": 5}])
    history = model.train(x, (x + 1) % 5, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=2,
                          metrics=["accuracy"], validation_split=0.3, verbose=False)
    assert np.isfinite(history["val_loss"]).all()


def test_generate_refuses_corrupt_vocabularies_and_non_finite_scores(text_file):
    model = trained(text_file, epochs=1)
    for vocabulary in ("aab", "a\ud800c"):
        broken = lamina.Model([lamina.layer("Linear", 2)])
        broken.metadata["vocabulary"] = vocabulary
        with pytest.raises(lamina.ArgumentError, match="repeats a character or holds one that is not valid text"):
            lamina.generate(broken, "a")
    model.parameters()["3.bias"].value[:] = np.nan
    with pytest.raises(lamina.ArgumentError, match="not finite"):
        lamina.generate(model, "the ")


def test_generate_lengths_without_a_prompt(text_file):
    model = trained(text_file, epochs=1)
    assert lamina.generate(model, length=0) == ""
    assert len(lamina.generate(model, length=5, seed=0)) == 5


def test_text_splits_that_leave_no_training_window(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 3)
    with pytest.raises(lamina.ArgumentError, match="leave .* for training, fewer than one window"):
        lamina.dataset("text", path=str(path), seq_len=4, test_split=0.9)
    x, _, x_test, _ = lamina.dataset("text", path=str(path), seq_len=20, test_split=0.0)
    assert len(x) and len(x_test) == 0
