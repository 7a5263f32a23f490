"""Sample and class weights, and label smoothing: one SGD step against PyTorch, every built-in
loss weighted against its per-sample values weighted by hand, the weights through train,
validation and evaluate (lazy ones too), and the errors for bad weights."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import L1, MSE, SGD, BinaryCrossEntropy, CrossEntropy, Huber, Linear, Softmax
from lamina.testing.gradcheck import numerical_gradient, relative_error
from lamina.training import loop

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install lamina[torch])")
gen = np.random.default_rng(7)
X = gen.normal(size=(12, 5))
LABELS = np.array([0, 1, 2, 0, 0, 1, 2, 2, 0, 1, 0, 0])
WEIGHTS = gen.uniform(0.1, 3.0, size=12)


def _one_step(last_softmax: bool, loss: lamina.Loss, **options) -> tuple[np.ndarray, np.ndarray, float]:
    """Weight and bias after one full-batch SGD step in float64 from fixed weights."""
    lamina.seed(0)
    layers = [Linear(3), Softmax()] if last_softmax else [Linear(3)]
    model = lamina.Model(layers)
    model.build(X[:1])
    w0 = np.linspace(-0.5, 0.5, 15).reshape(5, 3)
    model.layers[0].weight.value[...] = w0
    model.layers[0].bias.value[...] = [0.1, -0.2, 0.05]
    history = model.train(X, LABELS, optim=SGD(lr=0.5), loss=loss, epochs=1, shuffle=False, verbose=False,
                          **options)
    return model.layers[0].weight.value.copy(), model.layers[0].bias.value.copy(), history.history["loss"][0]


def _torch_step(criterion) -> tuple[np.ndarray, np.ndarray, float]:
    linear = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        linear.weight[...] = torch.from_numpy(np.linspace(-0.5, 0.5, 15).reshape(5, 3).T.copy())
        linear.bias[...] = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    optim = torch.optim.SGD(linear.parameters(), lr=0.5)
    loss = criterion(linear(torch.from_numpy(X)), torch.from_numpy(LABELS))
    loss.backward()
    optim.step()
    return linear.weight.detach().numpy().T, linear.bias.detach().numpy(), loss.item()


CLASS_TABLE = {0: 0.5, 1: 2.0, 2: 3.0}
TABLE = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64) if torch is not None else None


def _weighted_rows(logits, labels):
    per = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    w = torch.from_numpy(WEIGHTS)
    return (w * per).sum() / w.sum()


@needs_torch
@pytest.mark.parametrize("last_softmax", [True, False])
@pytest.mark.parametrize(
    "ours, options, theirs",
    [
        (dict(), dict(class_weight=CLASS_TABLE), lambda: torch.nn.CrossEntropyLoss(weight=TABLE)),
        (dict(), dict(sample_weight=WEIGHTS), lambda: _weighted_rows),
        (dict(label_smoothing=0.1), dict(), lambda: torch.nn.CrossEntropyLoss(label_smoothing=0.1)),
        (dict(label_smoothing=0.1), dict(class_weight=CLASS_TABLE),
         lambda: torch.nn.CrossEntropyLoss(weight=TABLE, label_smoothing=0.1)),
    ],
    ids=["class_weight", "sample_weight", "label_smoothing", "class_weight+label_smoothing"],
)
def test_one_sgd_step_equals_pytorch(last_softmax, ours, options, theirs):
    # after a Softmax layer the fused gradient is used; without one the loss takes logits
    loss = CrossEntropy(from_logits=not last_softmax, **ours)
    weight, bias, value = _one_step(last_softmax, loss, **options)
    t_weight, t_bias, t_value = _torch_step(theirs())
    assert value == pytest.approx(t_value, rel=1e-10)
    np.testing.assert_allclose(weight, t_weight, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bias, t_bias, rtol=1e-10, atol=1e-12)


@needs_torch
def test_binary_label_smoothing_is_keras_formula_and_matches_torch_on_smoothed_targets():
    logits = gen.normal(size=(6, 2)) * 2
    y = gen.integers(0, 2, size=(6, 2)).astype(float)
    smoothed = y * 0.8 + 0.1
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                                                    torch.from_numpy(smoothed))
    loss = BinaryCrossEntropy(from_logits=True, label_smoothing=0.2)
    assert loss(logits, y) == pytest.approx(expected.item(), rel=1e-12)
    p = torch.from_numpy(logits.copy()).requires_grad_()
    torch.nn.functional.binary_cross_entropy_with_logits(p, torch.from_numpy(smoothed)).backward()
    np.testing.assert_allclose(loss.backward(), p.grad.numpy(), rtol=1e-10)


# -- every built-in loss, weighted by hand ---------------------------------------------------------


def _cases(g: np.random.Generator):
    pred, target = g.normal(size=(6, 3)), g.normal(size=(6, 3))
    logits, labels = g.normal(size=(6, 4)) * 2, g.integers(0, 4, size=6)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    binary, unit = g.integers(0, 2, size=(6, 2)).astype(float), g.uniform(0.05, 0.95, size=(6, 2))
    seq, seq_labels = g.normal(size=(6, 3, 4)), g.integers(0, 4, size=(6, 3))
    return [
        (MSE(), pred, target), (L1(), pred, target), (Huber(0.4), pred, target),
        (CrossEntropy(from_logits=True), logits, labels), (CrossEntropy(), probs, labels),
        (CrossEntropy(), probs, np.eye(4)[labels]),
        (CrossEntropy(from_logits=True, label_smoothing=0.2), logits, labels),
        (CrossEntropy(from_logits=True), seq, seq_labels),
        (BinaryCrossEntropy(), unit, binary),
        (BinaryCrossEntropy(from_logits=True, label_smoothing=0.1), pred, binary[:, :1].repeat(3, 1)),
    ]


def test_every_builtin_loss_is_covered_by_the_weighted_property_test():
    covered = {type(loss).__name__ for loss, _, _ in _cases(np.random.default_rng(0))}
    registered = {info.cls.__name__ for info in lamina.get_registry().plugins("loss")
                  if info.cls.__module__.startswith("lamina.plugins")}
    assert registered <= covered


@pytest.mark.parametrize("seed", range(5))
def test_weighted_loss_equals_per_sample_values_weighted_by_hand(seed):
    g = np.random.default_rng(seed)
    for loss, pred, y in _cases(g):
        weights = g.uniform(0, 3, size=len(pred))
        weights[g.integers(0, len(pred))] = 0.0  # a row that counts for nothing
        by_row = np.array([loss(pred[i : i + 1], y[i : i + 1]) for i in range(len(pred))])
        np.testing.assert_allclose(loss.values(pred, y), by_row, rtol=1e-12, err_msg=repr(loss))
        expected = float((weights * by_row).sum() / weights.sum())
        assert loss(pred, y, sample_weight=weights) == pytest.approx(expected, rel=1e-12), loss
        assert loss(pred, y, sample_weight=np.ones(len(pred))) == pytest.approx(loss(pred, y), rel=1e-12), loss
        loss(pred, y, sample_weight=weights)
        analytic = loss.backward().copy()
        moved = pred.copy()  # numerical_gradient moves its entries in place
        numeric = numerical_gradient(lambda f=loss, p=moved, t=y, w=weights: float(f(p, t, sample_weight=w)), moved,
                                     1e-6)
        assert relative_error(analytic, numeric) < 1e-6, loss


def test_fused_gradient_is_weighted_too():
    logits, labels, weights = gen.normal(size=(5, 3)), gen.integers(0, 3, size=5), gen.uniform(0, 2, size=5)
    loss, softmax = CrossEntropy(), Softmax()
    probs = softmax(logits)
    loss(probs, labels, sample_weight=weights)
    fused = loss.fused_backward()
    chained = softmax.backward(loss.backward())
    np.testing.assert_allclose(fused, chained, rtol=1e-8, atol=1e-12)


class MeanAbs(lamina.Loss):
    """A forward-only third-party loss: the mean only."""

    def forward(self, pred, y):
        return np.abs(pred - y).mean()


class RowAbs(lamina.Loss):
    """A forward-only third-party loss with per-sample values."""

    def values(self, pred, y):
        return np.abs(pred - y).mean(axis=1)


def test_third_party_losses_unweighted_as_before_and_weighted_through_values():
    pred, y, weights = gen.normal(size=(4, 3)), gen.normal(size=(4, 3)), np.array([1.0, 0.0, 2.0, 0.5])
    assert MeanAbs()(pred, y) == pytest.approx(np.abs(pred - y).mean())
    with pytest.raises(lamina.ArgumentError, match=r"implement values\(pred, y\)"):
        MeanAbs()(pred, y, sample_weight=weights)
    loss = RowAbs()
    assert loss(pred, y) == pytest.approx(np.abs(pred - y).mean())
    rows = np.abs(pred - y).mean(axis=1)
    value = loss(pred, y, sample_weight=weights)
    assert value == pytest.approx((weights * rows).sum() / weights.sum())
    expected = np.sign(pred - y) * (weights / weights.sum())[:, None] / 3
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-12)


# -- through train, validation and evaluate ---------------------------------------------------------


def _model():
    lamina.seed(3)
    return lamina.Model([Linear(3), Softmax()])


def test_zero_weights_train_as_if_those_rows_were_not_there():
    weights = (LABELS != 2).astype(float)
    kept = _model()  # _model() seeds: the layers draw their weights in train
    kept.train(X[weights > 0], LABELS[weights > 0], loss="CrossEntropy", epochs=3, verbose=False, shuffle=False)
    weighted = _model()
    weighted.train(X, LABELS, loss="CrossEntropy", epochs=3, verbose=False, shuffle=False, sample_weight=weights)
    np.testing.assert_allclose(weighted.layers[0].weight.value, kept.layers[0].weight.value, rtol=1e-5, atol=1e-7)


def test_validation_split_and_evaluate_weigh_the_loss_with_sample_weight():
    model = _model()
    history = model.train(X, LABELS, loss="CrossEntropy", epochs=1, verbose=False, validation_split=0.25,
                          sample_weight=WEIGHTS, class_weight="balanced")
    probs = model.predict(X[9:])
    rows = -np.log(np.clip(probs[np.arange(3), LABELS[9:]], 1e-7, 1))
    expected = (WEIGHTS[9:] * rows).sum() / WEIGHTS[9:].sum()  # class weights train only
    assert history.history["val_loss"][0] == pytest.approx(expected, rel=1e-5)
    scores = model.evaluate(X[9:], LABELS[9:], sample_weight=WEIGHTS[9:], metrics=["accuracy"])
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)
    right = probs.argmax(axis=1) == LABELS[9:]
    assert scores["accuracy"] == pytest.approx((WEIGHTS[9:] * right).sum() / WEIGHTS[9:].sum())


def test_balanced_class_weights_are_n_over_classes_times_count_of_the_training_rows():
    model = lamina.Model([Linear(3), Softmax()])
    feed = loop.data_feed(model, CrossEntropy(), X, LABELS, "test", "train on")
    table = loop.class_weights(model, CrossEntropy(), feed, "balanced")
    counts = np.bincount(LABELS)
    np.testing.assert_allclose(table, len(LABELS) / (3 * counts))
    np.testing.assert_allclose(feed.w, table[LABELS])


def test_class_weight_by_name_maps_through_the_metadata():
    model = _model()
    model.metadata["classes"] = ["cat", "dog", "eel"]
    by_name = model.train(X, LABELS, loss="CrossEntropy", epochs=2, verbose=False, class_weight={"eel": 4.0})
    other = _model()  # seeded again: the same first weights
    by_index = other.train(X, LABELS, loss="CrossEntropy", epochs=2, verbose=False, class_weight={2: 4.0})
    assert by_name.history["loss"] == by_index.history["loss"]


def test_lazy_sample_weights_train_as_weights_in_memory(tmp_path):
    stored = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float32, shape=(12,))
    stored[:] = WEIGHTS
    stored.flush()
    lazy = np.load(tmp_path / "w.npy", mmap_mode="r")
    a = _model()  # _model() seeds: the layers draw their weights in train
    ha = a.train(X, LABELS, loss="CrossEntropy", epochs=2, batch_size=5, verbose=False, sample_weight=lazy)
    b = _model()
    hb = b.train(X, LABELS, loss="CrossEntropy", epochs=2, batch_size=5, verbose=False,
                 sample_weight=WEIGHTS.astype(np.float32))
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(a.layers[0].weight.value, b.layers[0].weight.value, rtol=1e-6)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"sample_weight": np.ones(5)}, lamina.ShapeError, "sample_weight has 5 weights but x has 12 rows"),
        ({"sample_weight": -WEIGHTS}, lamina.ArgumentError, "sample_weight must be finite and >= 0"),
        ({"sample_weight": np.where(LABELS == 1, np.nan, 1.0)}, lamina.ArgumentError, "row 1 holds nan"),
        ({"sample_weight": "heavy"}, lamina.ArgumentError, "sample_weight must be one non-negative weight per row"),
        ({"sample_weight": np.zeros(12)}, lamina.ArgumentError, "every training row weighs 0"),
        ({"class_weight": "equal"}, lamina.ArgumentError, 'class_weight must be "balanced" or a mapping'),
        ({"class_weight": {0: -1.0}}, lamina.ArgumentError, "the weight of class 0 must be a finite number >= 0"),
        ({"class_weight": {7: 1.0}}, lamina.ArgumentError, "unknown class 7"),
        ({"class_weight": {"cat": 1.0}}, lamina.ArgumentError, "needs the data's class names"),
    ],
)
def test_bad_weights_get_errors_naming_the_argument(options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        _model().train(X, LABELS, loss="CrossEntropy", epochs=1, verbose=False, **options)


def test_class_weight_for_a_regression_target_is_an_error():
    with pytest.raises(lamina.ArgumentError, match="MSE takes regression targets, not classes"):
        lamina.Model([Linear(1)]).train(X, X[:, :1], loss="MSE", epochs=1, verbose=False, class_weight={0: 2.0})


def test_unknown_class_name_lists_the_classes():
    model = _model()
    model.metadata["classes"] = ["cat", "dog", "eel"]
    with pytest.raises(lamina.ArgumentError, match="unknown class 'cow'; the classes are 'cat', 'dog', 'eel'"):
        model.train(X, LABELS, loss="CrossEntropy", epochs=1, verbose=False, class_weight={"cow": 2.0})


@pytest.mark.parametrize("cls", [CrossEntropy, BinaryCrossEntropy])
@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "0.1"])
def test_label_smoothing_must_be_in_zero_one(cls, bad):
    with pytest.raises(lamina.ArgumentError, match=r"label_smoothing must be a number in \[0, 1\)"):
        cls(label_smoothing=bad)


# -- lamina train configs ---------------------------------------------------------------------------


def _csv(path, g):
    rows = ["a,b,w,species"]
    for i in range(40):
        species = ["cat", "dog", "eel"][i % 3 if i < 30 else 0]
        rows.append(f"{g.normal():.4f},{g.normal() + (i % 3):.4f},{g.uniform(0, 2):.3f},{species}")
    path.write_text("\n".join(rows) + "\n")


CONFIG = """
seed = 0
epochs = 3
batch_size = 8
class_weight = {{ dog = 3.0, eel = 0.5 }}
[dataset]
name = "csv"
path = "{path}"
target = "species"
weight = "w"
[[layers]]
type = "Linear"
units = 3
[[layers]]
type = "Softmax"
[loss]
type = "CrossEntropy"
label_smoothing = 0.1
[optimizer]
type = "SGD"
lr = 0.1
"""


def test_a_config_trains_with_class_weight_by_name_and_a_csv_weight_column(tmp_path):
    from lamina.app import config as runconfig
    from lamina.app import run
    from lamina.plugins import Csv

    _csv(tmp_path / "pets.csv", np.random.default_rng(0))
    config = runconfig.parse(CONFIG.format(path=(tmp_path / "pets.csv").as_posix()), "pets")
    result = run.train(config, tmp_path / "out", verbose=False, say=lambda line: None)
    # the same by hand: the weight column as sample_weight, the class names through the metadata
    lamina.seed(0)
    data = Csv(tmp_path / "pets.csv", target="species", weight="w")
    x, y, _, _ = data.load()
    w_train, w_test = data.sample_weights()
    assert x.shape[1] == 2 and len(w_train) == len(x) and len(w_test) == 8  # the weights are no input
    model = lamina.Model([Linear(3), Softmax()])
    model.metadata.update(data.metadata())
    history = model.train(x, y, loss=CrossEntropy(label_smoothing=0.1), optim=SGD(lr=0.1), epochs=3, batch_size=8,
                          verbose=False, sample_weight=w_train, class_weight={"dog": 3.0, "eel": 0.5})
    np.testing.assert_allclose(result.history.history["loss"], history.history["loss"], rtol=1e-6)
    unweighted = lamina.Model([Linear(3), Softmax()])
    lamina.seed(0)
    plain = unweighted.train(x, y, loss=CrossEntropy(label_smoothing=0.1), optim=SGD(lr=0.1), epochs=3,
                             batch_size=8, verbose=False)
    assert plain.history["loss"] != history.history["loss"]


@pytest.mark.parametrize(
    "line, expected",
    [
        ('class_weight = "equal"', 'class_weight: expected "balanced", or a table'),
        ("class_weight = { dog = -1 }", 'class_weight: expected "balanced", or a table'),
    ],
)
def test_bad_class_weight_in_a_config_names_the_key(line, expected):
    from lamina.app import config as runconfig

    with pytest.raises(lamina.ConfigError, match=expected):
        runconfig.parse(line + "\n" + CONFIG.split("\n", 5)[5].format(path="x.csv"), "pets")


def test_class_weight_with_an_unknown_class_name_in_a_config_names_the_classes(tmp_path):
    from lamina.app import config as runconfig
    from lamina.app import run

    _csv(tmp_path / "pets.csv", np.random.default_rng(0))
    text = CONFIG.format(path=(tmp_path / "pets.csv").as_posix()).replace("dog = 3.0", "cow = 3.0")
    with pytest.raises(lamina.ArgumentError, match="unknown class 'cow'; the classes are 'cat', 'dog', 'eel'"):
        run.train(runconfig.parse(text, "pets"), tmp_path / "out", verbose=False, say=lambda line: None)


def test_csv_weight_column_errors(tmp_path):
    from lamina.plugins import Csv

    (tmp_path / "d.csv").write_text("a,w,y\n1,0.5,0\n2,-1,1\n")
    with pytest.raises(lamina.ArgumentError, match="the weight column holds -1 on line 3"):
        Csv(tmp_path / "d.csv", target="y", weight="w").load()
    with pytest.raises(lamina.ArgumentError, match=r"no column 'z' \(weight\)"):
        Csv(tmp_path / "d.csv", target="y", weight="z").load()
    with pytest.raises(lamina.ArgumentError, match="the weight column is the target column"):
        Csv(tmp_path / "d.csv", target="y", weight="y").load()
