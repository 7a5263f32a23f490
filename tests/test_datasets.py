"""Datasets by name: the built-ins and the loaders for a user's own npz and csv files."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lamina


def test_xor_is_the_four_samples_with_the_one_the_blog_post_forgot():
    x, y, x_test, y_test = lamina.dataset("xor")
    assert sorted(map(tuple, x.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    np.testing.assert_array_equal(y.ravel(), np.logical_xor(x[:, 0], x[:, 1]))
    assert x.dtype == np.float32 and y.shape == (4, 1)


def test_spirals_are_seeded_and_have_n_classes():
    x, y, x_test, y_test = lamina.dataset("spirals", n_samples=200, n_classes=4, test_split=0.25, seed=3)
    assert x.shape == (150, 2) and x_test.shape == (50, 2) and x.dtype == np.float32
    assert sorted(set(np.concatenate([y, y_test]).tolist())) == [0, 1, 2, 3] and y.dtype == np.int64
    again = lamina.dataset("spirals", n_samples=200, n_classes=4, test_split=0.25, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((x, y, x_test, y_test), again))
    other = lamina.dataset("spirals", n_samples=200, n_classes=4, test_split=0.25, seed=4)
    assert not np.array_equal(x, other[0])


def test_digits_ship_with_lamina_and_load_offline():
    x, y, x_test, y_test = lamina.dataset("digits")
    assert x.shape == (1438, 64) and x_test.shape == (359, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(np.concatenate([y, y_test])).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    images = lamina.dataset("digits", flatten=False, normalize=False)[0]
    assert images.shape == (1438, 1, 8, 8) and images.max() == 16


def test_npz_with_x_and_y_is_split_and_with_named_splits_is_used_as_is(tmp_path):
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 3
    np.savez(tmp_path / "data.npz", x=x, y=y)
    x_train, y_train, x_test, y_test = lamina.dataset("npz", path=tmp_path / "data.npz", test_split=0.3)
    assert len(x_train) == 7 and len(x_test) == 3 and y_train.dtype == np.int64
    assert sorted(np.concatenate([x_train, x_test])[:, 0].tolist()) == x[:, 0].tolist()
    np.savez(tmp_path / "named.npz", features=x, label=y * 0.5)
    _, y_float, _, _ = lamina.dataset("npz", path=tmp_path / "named.npz", x="features", target="label")
    assert y_float.dtype == np.float32 and y_float.shape == (8, 1)
    np.savez(tmp_path / "splits.npz", x_train=x[:6], y_train=y[:6], x_test=x[6:], y_test=y[6:])
    parts = lamina.dataset("npz", path=tmp_path / "splits.npz")
    np.testing.assert_array_equal(parts[2], x[6:])


def test_npz_errors_name_the_file_and_what_it_has(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.ones((3, 2)), y=np.ones(3))
    with pytest.raises(lamina.ArgumentError, match="no array named 'x'; it has 'inputs', 'y'"):
        lamina.dataset("npz", path=tmp_path / "d.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "objects.npz").write_bytes((tmp_path / "objects.npy").read_bytes())
    with pytest.raises(lamina.ArgumentError, match="cannot read it as an .npz of numeric arrays"):
        lamina.dataset("npz", path=tmp_path / "objects.npz")  # pickled objects are never loaded
    np.save(tmp_path / "one.npy", np.ones(3))
    (tmp_path / "one.npz").write_bytes((tmp_path / "one.npy").read_bytes())
    with pytest.raises(lamina.ArgumentError, match="the file holds one array"):
        lamina.dataset("npz", path=tmp_path / "one.npz")


CSV = """sepal,petal,species
5.1,1.4,0
4.9,1.5,1
6.2,4.5,2
5.9,5.1,2
5.0,1.2,0
"""


def test_csv_with_a_header_and_a_named_target(tmp_path):
    (tmp_path / "iris.csv").write_text(CSV)
    x, y = lamina.get_registry().build("dataset", "csv", path=tmp_path / "iris.csv", target="species").arrays()
    assert x.shape == (5, 2) and x.dtype == np.float32 and y.tolist() == [0, 1, 2, 2, 0]
    x_train, y_train, x_test, y_test = lamina.dataset("csv", path=tmp_path / "iris.csv", test_split=0.4)
    assert len(x_train) == 3 and len(x_test) == 2  # the last column is the default target


IRIS = """sepal,petal,species
5.1,1.4,setosa
6.3,6.0,virginica
4.9,1.5,setosa
6.2,4.5,versicolor
"""


def test_csv_class_names_become_sorted_labels_kept_in_the_metadata(tmp_path):
    (tmp_path / "iris.csv").write_text(IRIS)
    reader = lamina.get_registry().build("dataset", "csv", path=tmp_path / "iris.csv")
    x, y = reader.arrays()
    assert x.dtype == np.float32 and x.tolist()[0] == pytest.approx([5.1, 1.4])
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 0, 1]
    data = lamina.dataset("csv", path=tmp_path / "iris.csv", test_split=0.25)
    assert data.metadata == {"classes": ["setosa", "versicolor", "virginica"]} and data.num_classes == 3
    # Given classes fix the label order (e.g. a test file that lacks a class keeps the model's labels).
    # no header: the last column is text throughout
    (tmp_path / "two.csv").write_text("5.0,1.1,virginica\n5.5,2.0,versicolor\n")
    _, y = lamina.get_registry().build("dataset", "csv", path=tmp_path / "two.csv",
                                       classes=["setosa", "versicolor", "virginica"]).arrays()
    assert y.tolist() == [2, 1]
    two = lamina.dataset("csv", path=tmp_path / "two.csv", test_split=0.0)
    assert two.metadata == {"classes": ["versicolor", "virginica"]}
    with pytest.raises(lamina.ArgumentError, match=r"line 2, column 'species' \(column 3\): 'setosa' is not a number"):
        lamina.dataset("csv", path=tmp_path / "iris.csv", target="petal")  # names in an input column


def test_num_classes_counts_names_a_vocabulary_or_integer_labels_and_refuses_regression():
    assert lamina.dataset("digits").num_classes == 10
    assert lamina.dataset("spirals", n_classes=4).num_classes == 4
    text = lamina.dataset("moby_dick", seq_len=16)
    assert text.num_classes == len(text.metadata["vocabulary"])
    with pytest.raises(lamina.ArgumentError, match=r"float32 numbers \(regression\), not class labels"):
        _ = lamina.dataset("xor").num_classes


def test_csv_regression_targets_and_index_targets(tmp_path):
    (tmp_path / "r.csv").write_text("1.5,2,0.25\n2.5,3,0.75\n")
    x, y = lamina.get_registry().build("dataset", "csv", path=tmp_path / "r.csv", target=0).arrays()
    assert y.dtype == np.float32 and y.shape == (2, 1) and x.tolist() == [[2, 0.25], [3, 0.75]]


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        (CSV, {"target": "colour"}, "no column 'colour'; its columns are 'sepal', 'petal', 'species'"),
        ("1,2\n3,4\n", {"target": "y"}, "no column 'y'; it has no header row"),
        ("1,2\n3\n", {}, "line 2 has 1 columns, expected 2"),
        ("a,b\nx,1\n", {}, "line 2, column 'a' (column 1): 'x' is not a number; every input column must hold numbers"),
        ("a,b\n8e93,1\n", {}, "line 2, column 'a' (column 1): '8e93' is not a finite float32 (at most 3.403e+38"),
        ("a,b\n1,1\nnan,0\n", {}, "line 3, column 'a' (column 1): 'nan' is not a finite float32"),
        ("a,b\n1,x\n2,\n", {}, "the target column 'b' is empty on line 3"),
        ("a,b\n1,x\n", {"classification": False}, "the target column 'b' holds text ('x' on line 2)"),
        ("a,b\n1,x\n2,z\n", {"classes": ["x", "y"]}, "holds 'z' on line 3, which is not one of the classes 'x', 'y'"),
        ("a,b\n1,x\n", {"classes": ["x", "x"]}, "a list of distinct class names in label order"),
        ("", {}, "the file has no rows"),
        ("1,2\n", {"target": 5}, "target must be a column name or an index below 2"),
    ],
)
def test_csv_errors_say_what_is_wrong(tmp_path, text, kwargs, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(lamina.ArgumentError) as info:
        lamina.dataset("csv", path=tmp_path / "bad.csv", **kwargs)
    assert message in str(info.value)


def test_dataset_options_are_checked():
    with pytest.raises(lamina.ArgumentError, match=r"spirals\(n_classes=0\): n_classes must be a positive int"):
        lamina.dataset("spirals", n_classes=0)
    with pytest.raises(lamina.ArgumentError, match="test_split must be a number in"):
        lamina.dataset("digits", test_split=1.5)
    with pytest.raises(lamina.UnknownPluginError, match="Did you mean 'digits'"):
        lamina.dataset("digit")


def test_a_model_learns_the_spirals():
    lamina.seed(0)
    x, y, x_test, y_test = lamina.dataset("spirals")
    model = lamina.Model([{"type": "Linear", "units": 64}, "Relu", {"type": "Linear", "units": 3}, "Softmax"])
    model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01), loss="CrossEntropy", epochs=300, verbose=False)
    assert model.evaluate(x_test, y_test, metrics=["accuracy"])["accuracy"] > 0.9


# -- empty files, encodings, delimiters and a byte order mark --------------------------------------


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


def test_csv_encodings_delimiters_and_a_byte_order_mark(tmp_path):
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf1,2,0\n3,4,1\n5,6,0\n")
    x, y = lamina.get_registry().build("dataset", "csv", path=tmp_path / "bom.csv").arrays()
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 0]  # no row lost to the BOM
    (tmp_path / "latin.csv").write_bytes("a,b,label\n1,2,0\n3,4,1\n".encode("utf-16"))
    with pytest.raises(lamina.ArgumentError, match="is not utf-8 text .*pass its encoding, e.g. encoding='latin-1'"):
        lamina.dataset("csv", path=tmp_path / "latin.csv")
    x, _ = lamina.get_registry().build("dataset", "csv", path=tmp_path / "latin.csv", encoding="utf-16").arrays()
    assert x.shape == (2, 2)
    with pytest.raises(lamina.ArgumentError, match="the delimiter must be one character"):
        lamina.dataset("csv", path=tmp_path / "bom.csv", delimiter=5)


def test_digits_labels_make_a_task_of_their_own_and_train_per_class_a_few_shot_one():
    x, y, x_test, y_test = full = lamina.dataset("digits")
    part = lamina.dataset("digits", labels=[7, 5])
    assert part.metadata == {"classes": ["7", "5"]}
    assert set(np.unique(part[1])) == {0, 1} and set(np.unique(part[3])) == {0, 1}
    # label 0 is a 7, label 1 a 5: the same images as the full set's 7s and 5s
    sevens = {row.tobytes() for row in np.concatenate([x, x_test])[np.concatenate([y, y_test]) == 7]}
    assert all(row.tobytes() in sevens for row in part[0][part[1] == 0])
    few = lamina.dataset("digits", labels=[7, 5], train_per_class=3)
    assert np.bincount(few[1]).tolist() == [3, 3]
    assert np.array_equal(few[2], part[2]) and np.array_equal(few[3], part[3])  # the same test part
    assert len(full[0]) + len(full[2]) == 1797


@pytest.mark.parametrize("options, message", [
    ({"labels": [1, 1]}, r"digits\(labels=\[1, 1\] \(list\)\): expected distinct digits 0..9"),
    ({"labels": [10]}, r"expected distinct digits 0..9, e.g. labels=\[5, 6, 7, 8, 9\]"),
    ({"labels": []}, r"expected distinct digits"),
    ({"train_per_class": 0}, r"train_per_class"),
])
def test_digits_options_are_checked(options, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        lamina.dataset("digits", **options)
