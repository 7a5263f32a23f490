"""`"classes"` in `lamina train` configs (the dataset's class count), CSV files with class
names, and the runs a newcomer makes on text, a folder of images and a CSV file."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina.app import cli
from lamina.app import config as runconfig

TEXT_CONFIG = """\
seed = 0
epochs = 1
batch_size = 16

[dataset]
name = "text"
path = "story.txt"
seq_len = 8

[[layers]]
type = "Embedding"
num_embeddings = "classes"
dim = 8

[[layers]]
type = "Linear"
units = "classes"

[loss]
type = "CrossEntropy"
from_logits = true
"""

IRIS = """sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,setosa
4.9,3.0,1.4,0.2,setosa
4.7,3.2,1.3,0.2,setosa
5.0,3.6,1.4,0.2,setosa
7.0,3.2,4.7,1.4,versicolor
6.4,3.2,4.5,1.5,versicolor
6.9,3.1,4.9,1.5,versicolor
5.5,2.3,4.0,1.3,versicolor
6.3,3.3,6.0,2.5,virginica
5.8,2.7,5.1,1.9,virginica
7.1,3.0,5.9,2.1,virginica
6.5,3.0,5.8,2.2,virginica
"""

CSV_CONFIG = """\
seed = 0
epochs = 30
batch_size = 4
metrics = ["accuracy"]
output = "runs/iris"

[dataset]
name = "csv"
path = "iris.csv"
test_split = 0.25

[[layers]]
type = "Sequential"
layers = [{type = "Linear", units = 8}, "Relu", {type = "Linear", units = "classes"}]

[[layers]]
type = "Softmax"

[loss]
type = "CrossEntropy"

[optimizer]
type = "Adam"
lr = 0.05
"""


def lamina_main(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_text_config_with_classes_trains_and_generates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative paths in a config start in the current folder
    Path("story.txt").write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    Path("char.toml").write_text(TEXT_CONFIG)
    status, out, err = lamina_main(capsys, "train", "char.toml")
    assert status == 0, err
    assert f"output folder: {tmp_path.resolve() / 'runs' / 'char'}" in out.splitlines()[0]
    model = lamina.load(tmp_path / "runs" / "char" / "model.npz")
    vocabulary = "".join(sorted(set("the cat sat on the mat. ")))
    assert model.layers[0].num_embeddings == len(vocabulary) == model.layers[-1].units  # the file holds the number
    status, out, err = lamina_main(capsys, "generate", "runs/char/model.npz", "--prompt", "the ", "--length", "12",
                                   "--seed", "1")
    assert status == 0, err
    text = out.rstrip("\n")
    assert text.startswith("the ") and len(text) == 16 and set(text) <= set(vocabulary)


def write_images(Image, root: Path, classes: dict[str, int], size: tuple[int, int] = (6, 5)) -> None:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_an_image_folder_config_with_classes_trains_and_predicts_names(tmp_path, monkeypatch, capsys):
    Image = pytest.importorskip("PIL.Image", reason="image_folder needs Pillow: pip install Pillow")
    monkeypatch.chdir(tmp_path)
    write_images(Image, tmp_path / "pets", {"cat": 4, "dog": 4, "owl": 4})
    Path("pets.toml").write_text(
        'epochs = 2\nbatch_size = 4\n[dataset]\nname = "image_folder"\npath = "pets"\ntest_split = 0.25\n'
        '[[layers]]\ntype = "Flatten"\n[[layers]]\ntype = "Linear"\nunits = "classes"\n'
        '[loss]\ntype = "CrossEntropy"\nfrom_logits = true\n'
    )
    status, out, err = lamina_main(capsys, "train", "pets.toml", "--out", "pets-run")
    assert status == 0, err
    assert out.startswith(f"output folder: {tmp_path.resolve() / 'pets-run'}")
    assert lamina.load("pets-run/model.npz").layers[-1].units == 3
    status, out, err = lamina_main(capsys, "predict", "pets-run/model.npz", "pets")
    assert status == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 12 and {line[1] for line in lines} <= {"cat", "dog", "owl"}


def test_a_csv_with_class_names_trains_evaluates_and_predicts_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("iris.csv").write_text(IRIS)
    Path("iris.toml").write_text(CSV_CONFIG)
    status, out, err = lamina_main(capsys, "train", "iris.toml")
    assert status == 0, err
    model = lamina.load("runs/iris/model.npz")
    assert model.metadata["classes"] == ["setosa", "versicolor", "virginica"]  # travelled from the dataset
    assert model.layers[0].layers[-1].units == 3  # resolved inside the Sequential's layers

    status, out, err = lamina_main(capsys, "evaluate", "runs/iris/model.npz", "--data", "iris.csv")
    assert status == 0, err
    assert out.splitlines()[0].startswith("scoring the test split: 3 of 12 rows of iris.csv, "
                                          "the rows lamina train holds out with test_split=0.25, seed=0")
    status, out, err = lamina_main(capsys, "evaluate", "runs/iris/model.npz", "--data", "iris.csv", "--all-rows",
                                   "--json")
    assert status == 0, err
    scores = json.loads(out)
    assert scores["rows"]["part"] == "all" and scores["rows"]["scored"] == 12 and 0 <= scores["accuracy"] <= 1

    rows = [line.rsplit(",", 1)[0] for line in IRIS.splitlines()]  # the input columns only
    Path("new.csv").write_text("\n".join(rows) + "\n")
    status, out, err = lamina_main(capsys, "predict", "runs/iris/model.npz", "new.csv")
    assert status == 0, err
    printed = [line.split("\t") for line in out.splitlines()]
    assert [line[0] for line in printed] == [f"row {i}" for i in range(1, 13)]
    assert {line[1] for line in printed} <= {"setosa", "versicolor", "virginica"}
    status, out, err = lamina_main(capsys, "predict", "runs/iris/model.npz", "new.csv", "--out", "p.csv")
    assert status == 0, err
    written = Path("p.csv").read_text().splitlines()
    assert written[0] == "class,setosa,versicolor,virginica" and len(written) == 13
    assert [line.split(",")[0] for line in written[1:]] == [line[1] for line in printed]
    probabilities = np.array([[float(v) for v in line.split(",")[1:]] for line in written[1:]])
    np.testing.assert_allclose(probabilities,
                               model.predict(np.loadtxt("new.csv", delimiter=",", skiprows=1, dtype=np.float32)),
                               rtol=1e-5)


def test_evaluate_keeps_the_model_labels_for_a_file_that_lacks_a_class(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("iris.csv").write_text(IRIS)
    Path("iris.toml").write_text(CSV_CONFIG)
    assert lamina_main(capsys, "train", "iris.toml", "--quiet")[0] == 0
    model = lamina.load("runs/iris/model.npz")
    virginica = [line for line in IRIS.splitlines() if line.endswith("virginica")]
    Path("virginica.csv").write_text("\n".join(virginica) + "\n")  # one class only: alone it would be label 0
    status, out, err = lamina_main(capsys, "evaluate", "runs/iris/model.npz", "--data", "virginica.csv", "--all-rows",
                                   "--json")
    assert status == 0, err
    x = np.loadtxt("virginica.csv", delimiter=",", usecols=range(4))
    expected = model.evaluate(x, np.full(len(x), 2), metrics=["accuracy"])
    assert json.loads(out)["accuracy"] == pytest.approx(expected["accuracy"])


def test_classes_without_classes_is_an_error_naming_the_key(tmp_path):
    config = runconfig.parse(
        '[dataset]\nname = "xor"\n[[layers]]\ntype = "Linear"\nunits = 4\n[[layers]]\ntype = "Linear"\n'
        'units = "classes"\n',
        "xor.toml",
    )
    with pytest.raises(lamina.ConfigError,
                       match=r'xor.toml: layers\[1\].units: "classes" is the number of classes of the '
                       r"dataset, but the dataset's targets are float32 numbers \(regression\)"):
        runconfig.count_classes(config, runconfig.load_dataset(config))


def test_classes_counts_from_the_dataset_and_leaves_other_values():
    config = runconfig.parse(
        '[dataset]\nname = "spirals"\nn_classes = 5\nn_samples = 50\n'
        '[[layers]]\ntype = "Residual"\nlayers = [{type = "Linear", units = "classes"}]\n'
        '[[layers]]\ntype = "Linear"\nunits = "classes"\n',
        "spirals.toml",
    )
    counted = runconfig.count_classes(config, runconfig.load_dataset(config))
    assert counted.get("layers") == [{"type": "Residual", "layers": [{"type": "Linear", "units": 5}]},
                                     {"type": "Linear", "units": 5}]
    # a new config
    assert counted.get("dataset") == config.get("dataset") and config.get("layers")[1]["units"] == "classes"


def test_classes_in_python_is_an_error_that_says_what_it_means():
    with pytest.raises(lamina.ArgumentError,
                       match=r"Linear\(units='classes'\): 'classes' stands for the number of classes "
                       r".*pass the number, e.g. units=len\(data.metadata\['classes'\]\)"):
        lamina.Model([{"type": "Linear", "units": "classes"}])
    with pytest.raises(lamina.ArgumentError, match=r"Embedding\(num_embeddings='classes'\)"):
        lamina.layer("Embedding", "classes", 4)


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "pages" / "guide" / "configs.md"


def test_the_configs_guide_documents_every_key_and_its_configs_are_valid():
    text = GUIDE.read_text(encoding="utf-8")
    for key in runconfig.KEYS:
        assert f"| `{key}` |" in text, f"docs/pages/guide/configs.md does not document the config key {key!r}"
    configs = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(configs) >= 3
    for i, config in enumerate(configs):
        runconfig.parse(config, f"configs.md toml block {i}")  # complete and checked (they train in the docs run)
    for command in ("train", "evaluate", "predict", "generate", "export", "info", "list-plugins", "check-plugins"):
        assert f"| `lamina {command}" in text
