"""Loss values against PyTorch and by hand; target checks; finite results at the extremes."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import L1, MSE, BinaryCrossEntropy, CrossEntropy, Huber, Sigmoid, Softmax

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
rng = np.random.default_rng(0)
LOGITS = rng.normal(size=(6, 4)) * 3
LABELS = rng.integers(0, 4, size=6)
ONEHOT = np.eye(4)[LABELS]
PRED, TARGET = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
BINARY_LOGITS, BINARY = rng.normal(size=(7, 2)) * 3, rng.integers(0, 2, size=(7, 2)).astype(float)


def t(a):
    return torch.from_numpy(np.asarray(a))


@needs_torch
def test_values_match_torch():
    assert MSE()(PRED, TARGET) == pytest.approx(F.mse_loss(t(PRED), t(TARGET)).item(), rel=1e-12)
    assert L1()(PRED, TARGET) == pytest.approx(F.l1_loss(t(PRED), t(TARGET)).item(), rel=1e-12)
    for delta in (1.0, 0.4):
        expected = F.huber_loss(t(PRED), t(TARGET), delta=delta).item()
        assert Huber(delta)(PRED, TARGET) == pytest.approx(expected, rel=1e-12)
    expected = F.cross_entropy(t(LOGITS), t(LABELS)).item()
    assert CrossEntropy(from_logits=True)(LOGITS, LABELS) == pytest.approx(expected, rel=1e-12)
    assert CrossEntropy(from_logits=True)(LOGITS, ONEHOT) == pytest.approx(expected, rel=1e-12)
    probs = Softmax()(LOGITS)
    assert CrossEntropy()(probs, LABELS) == pytest.approx(expected, rel=1e-9)
    expected = F.binary_cross_entropy_with_logits(t(BINARY_LOGITS), t(BINARY)).item()
    assert BinaryCrossEntropy(from_logits=True)(BINARY_LOGITS, BINARY) == pytest.approx(expected, rel=1e-12)
    assert BinaryCrossEntropy()(Sigmoid()(BINARY_LOGITS), BINARY) == pytest.approx(expected, rel=1e-6)


@needs_torch
@pytest.mark.parametrize(
    "ours, theirs, pred, y",
    [
        (lambda: MSE(), lambda p, y: F.mse_loss(p, y), PRED, TARGET),
        (lambda: L1(), lambda p, y: F.l1_loss(p, y), PRED, TARGET),
        (lambda: Huber(0.5), lambda p, y: F.huber_loss(p, y, delta=0.5), PRED, TARGET),
        (lambda: CrossEntropy(from_logits=True), lambda p, y: F.cross_entropy(p, y), LOGITS, LABELS),
        (lambda: CrossEntropy(from_logits=True), lambda p, y: F.cross_entropy(p, y), LOGITS, ONEHOT),
        (lambda: BinaryCrossEntropy(from_logits=True), lambda p, y: F.binary_cross_entropy_with_logits(p, y),
         BINARY_LOGITS, BINARY),
    ],
)
def test_gradients_match_torch_autograd(ours, theirs, pred, y):
    loss = ours()
    loss(pred, y)
    p = t(pred.copy()).requires_grad_()
    theirs(p, t(y)).backward()
    np.testing.assert_allclose(loss.backward(), p.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_accepts_labels_as_n_or_n_by_1_and_float_labels():
    expected = CrossEntropy(from_logits=True)(LOGITS, ONEHOT)
    for labels in (LABELS, LABELS.reshape(-1, 1), LABELS.astype(np.float64)):
        assert CrossEntropy(from_logits=True)(LOGITS, labels) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [np.array([0, 1, 2, 4, 0, 1]), np.array([0, -1, 2, 3, 0, 1])])
def test_labels_out_of_range_name_the_range_and_the_values(bad):
    with pytest.raises(lamina.ArgumentError) as info:
        CrossEntropy(from_logits=True)(LOGITS, bad)
    message = str(info.value)
    assert "CrossEntropy: labels must be integers in [0, 4) for pred with 4 classes" in message
    assert f"from {bad.min()} to {bad.max()}" in message


def test_one_hot_width_must_match_the_number_of_classes():
    with pytest.raises(lamina.ShapeError) as info:
        CrossEntropy()(Softmax()(LOGITS), np.eye(5)[LABELS])
    assert "one-hot y has shape (6, 5) but pred has shape (6, 4)" in str(info.value)
    assert "need 4 columns" in str(info.value)


def test_cross_entropy_rejects_non_integer_labels_and_flat_pred():
    with pytest.raises(lamina.ArgumentError, match="non-integer values"):
        CrossEntropy()(Softmax()(LOGITS), np.full(6, 0.5))
    with pytest.raises(lamina.ShapeError, match=r"pred must have shape \(samples, classes\)"):
        CrossEntropy()(np.ones(6) / 6, LABELS)


@pytest.mark.parametrize("loss", [MSE(), L1(), Huber(), BinaryCrossEntropy()])
def test_element_wise_losses_need_matching_shapes(loss):
    with pytest.raises(lamina.ShapeError, match=r"pred has shape \(4, 1\) but y has shape \(4,\).*y.reshape\(4, 1\)"):
        loss(np.full((4, 1), 0.5), np.zeros(4))


def test_probability_losses_stay_finite_at_exactly_zero_and_one():
    with np.errstate(all="raise", under="ignore"):
        p = np.array([[0.0, 1.0], [1.0, 0.0]])
        for loss, y in ((CrossEntropy(), np.array([1, 0])), (CrossEntropy(), np.array([0, 1]))):
            assert np.isfinite(loss(p, y)) and np.isfinite(loss.backward()).all()
        bce = BinaryCrossEntropy()
        assert np.isfinite(bce(p, np.array([[1.0, 0.0], [0.0, 1.0]]))) and np.isfinite(bce.backward()).all()


def test_logit_losses_stay_finite_for_huge_logits():
    with np.errstate(all="raise", under="ignore"):
        z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]])
        ce = CrossEntropy(from_logits=True)
        assert ce(z, np.array([1, 1])) == pytest.approx(1e4, rel=1e-9)
        assert np.isfinite(ce.backward()).all()
        bce = BinaryCrossEntropy(from_logits=True)
        value = bce(z, np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
        assert value == pytest.approx((1e4 + np.log(2) + np.log1p(np.exp(-5.0))) / 6)
        assert np.isfinite(bce.backward()).all()


@pytest.mark.parametrize("loss",
                         [MSE(), L1(), Huber(), CrossEntropy(from_logits=True), BinaryCrossEntropy(from_logits=True)])
def test_backward_keeps_float32(loss):
    pred = LOGITS.astype(np.float32)
    y = LABELS if isinstance(loss, CrossEntropy) else (pred > 0).astype(np.float32)
    loss(pred, y)
    assert loss.backward().dtype == np.float32


def test_huber_delta_must_be_positive():
    with pytest.raises(lamina.ArgumentError, match=r"Huber\(delta=0\): delta must be a positive number"):
        Huber(0)


def test_losses_by_name_and_alias():
    assert isinstance(lamina.loss("categorical_crossentropy"), CrossEntropy)
    assert isinstance(lamina.loss("bce", from_logits=True), BinaryCrossEntropy)
    assert isinstance(lamina.loss("mae"), L1)
    assert isinstance(lamina.loss("huber", delta=2.0), Huber)


# -- labels that are not class labels; huge logits and certain probabilities -----------------------


@pytest.mark.parametrize(
    "labels, expected",
    [
        (np.array([True, False, True]), "y holds booleans, which are not class labels"),
        (np.array([0.0, np.nan, 1.0]), "y holds NaN or infinity where class labels belong"),
        (np.array([[0.0], [1.5], [1.0]]), "non-integer values"),
    ],
    ids=["bool", "nan", "fractional-column"],
)
def test_bad_labels_for_cross_entropy_get_messages_about_labels(labels, expected):
    model = lamina.Model([lamina.layer("Linear", 2)])
    with pytest.raises(lamina.ArgumentError, match=expected):
        model.train(np.ones((3, 2)), labels, loss="CrossEntropy", verbose=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_are_finite_and_silent_for_huge_logits_and_certain_probabilities(dtype):
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype=dtype)
        certain = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
        cases = [
            (lamina.loss("CrossEntropy", from_logits=True), logits, np.array([1, 0])),
            (lamina.loss("CrossEntropy"), certain, np.array([1, 2])),
            (lamina.loss("CrossEntropy"), certain, np.array([0, 1])),
            (lamina.loss("BinaryCrossEntropy", from_logits=True), logits, (logits > 0).astype(dtype)),
            (lamina.loss("BinaryCrossEntropy"), certain, 1 - certain),
            (lamina.loss("BinaryCrossEntropy"), certain, certain),
        ]
        for loss, pred, y in cases:
            value = loss(pred, y)
            grad = loss.backward()
            assert np.isfinite(value) and np.isfinite(grad).all() and grad.dtype == dtype
