"""Training a model with several inputs and outputs: data as dicts, a loss, loss weight, sample
weights and metrics per output, the history's keys, one SGD step by hand, and the errors.

The graph model itself is another part of the library; here a small stand-in with the same
attributes (input_names, output_format, forward taking and returning dicts, backward taking a
dict with None for an output without a loss) is made of real layers: a and b concatenated,
Linear(8) and Tanh shared, then the heads cls = Linear(3) and box = Linear(4).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import lamina
from lamina.errors import ArgumentError, NonFiniteError, ShapeError
from lamina.plugins import SGD, CrossEntropy, Linear, Tanh


class TwoHeads(lamina.Model):
    """{"a": (n, 6), "b": (n, 4)} -> {"cls": (n, 3), "box": (n, 4)}, as a graph model would be."""

    input_names, output_names = ("a", "b"), ("cls", "box")
    input_format = output_format = "dict"
    graph = "a stand-in graph"  # not None: no fused loss, no layer-by-layer replay

    def __init__(self) -> None:
        super().__init__([Linear(8), Tanh(), Linear(3), Linear(4)])
        self.trunk, self.act, self.cls, self.box = self.layers

    def forward(self, x, stop=None):
        h = np.concatenate([x["a"], x["b"]], axis=1)
        if self.input_shape is None:
            self.input_shape, self.input_dtype = h.shape[1:], h.dtype
        h = self.act(self.trunk(h))
        return {"cls": self.cls(h), "box": self.box(h)}

    def backward(self, grad, from_layer=None):
        parts = [head.backward(grad[name]) for name, head in (("cls", self.cls), ("box", self.box))
                 if grad[name] is not None]
        g = self.trunk.backward(self.act.backward(sum(parts))) if parts else None
        return {"a": None if g is None else g[:, :6], "b": None if g is None else g[:, 6:]}

    def build(self, x):
        if self.input_shape is None:
            self.predict(x)


gen = np.random.default_rng(3)
N = 24
XA, XB = gen.normal(size=(N, 6)), gen.normal(size=(N, 4))
Y_CLS = (XA[:, 0] + XB[:, 0] > 0).astype(int) + (XA[:, 1] > 1)
Y_BOX = np.stack([XA[:, 0], XB[:, 1], XA[:, 2] * 0.5, XB[:, 3]], axis=1)
X = {"a": XA, "b": XB}
Y = {"cls": Y_CLS, "box": Y_BOX}
LOSS = {"cls": CrossEntropy(from_logits=True), "box": "MSE"}


def made(dtype=np.float64) -> TwoHeads:
    lamina.seed(0)
    model = TwoHeads()
    model.build({"a": XA[:1].astype(dtype), "b": XB[:1].astype(dtype)})
    return model


def train(model, **options):
    options = {"loss": LOSS, "optim": SGD(lr=0.1), "epochs": 1, "verbose": False, "shuffle": False, **options}
    return model.train(X, Y, **options)


def test_a_two_input_two_output_model_trains():
    model = made()
    history = train(model, epochs=60, batch_size=8, loss_weights={"cls": 1.0, "box": 0.5})
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    pred = model.predict(X, batch_size=5)
    assert set(pred) == {"cls", "box"} and pred["cls"].shape == (N, 3) and pred["box"].shape == (N, 4)
    assert np.allclose(pred["cls"], model.predict(X)["cls"], rtol=1e-12)


def test_history_has_the_total_and_each_outputs_loss_and_metrics():
    history = train(made(), epochs=2, metrics={"cls": ["accuracy"]}, validation_split=0.25)
    assert list(history.keys()) == ["loss", "cls_loss", "box_loss", "cls_accuracy",
                                    "val_loss", "val_cls_loss", "val_box_loss", "val_cls_accuracy"]


def test_metrics_for_all_apply_to_every_output_with_a_loss():
    history = train(made(), metrics=["mae"], loss={"box": "MSE"}, validation_data=(X, Y))
    assert [k for k in history.keys() if not k.startswith("val_")] == ["loss", "box_loss", "box_mae"]
    pred = made().predict(X)  # the same start: the first epoch's metric is over its predictions before any update
    assert np.isfinite(history["box_mae"][0]) and history["box_mae"][0] == pytest.approx(
        np.abs(pred["box"] - Y_BOX).mean(), rel=1e-10)


def _by_hand(model, lr, weights, w_cls=None):
    """The total loss, per-output losses and weights after one full-batch SGD step, in numpy."""
    W1, b1 = model.trunk.weight.value.copy(), model.trunk.bias.value.copy()
    Wc, bc = model.cls.weight.value.copy(), model.cls.bias.value.copy()
    Wb, bb = model.box.weight.value.copy(), model.box.bias.value.copy()
    x = np.concatenate([XA, XB], axis=1)
    h = np.tanh(x @ W1 + b1)
    c, r = h @ Wc + bc, h @ Wb + bb
    p = np.exp(c - c.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    per_cls = -np.log(p[np.arange(N), Y_CLS])
    s = np.ones(N) if w_cls is None else w_cls
    l_cls = (s * per_cls).sum() / s.sum()
    l_box = np.mean((r - Y_BOX) ** 2)
    onehot = np.eye(3)[Y_CLS]
    dc = weights["cls"] * (p - onehot) * (s / s.sum())[:, None]
    dr = weights["box"] * 2 * (r - Y_BOX) / r.size
    dh = dc @ Wc.T + dr @ Wb.T
    dz = dh * (1 - h ** 2)
    new = [W1 - lr * x.T @ dz, b1 - lr * dz.sum(0), Wc - lr * h.T @ dc, bc - lr * dc.sum(0),
           Wb - lr * h.T @ dr, bb - lr * dr.sum(0)]
    return weights["cls"] * l_cls + weights["box"] * l_box, l_cls, l_box, new


def _weights(model):
    return [p.value for layer in (model.trunk, model.cls, model.box) for p in layer.parameters().values()]


def test_one_full_batch_sgd_step_with_loss_weights_equals_the_hand_computation():
    model = made()
    total, l_cls, l_box, expected = _by_hand(model, 0.1, {"cls": 1.0, "box": 0.5})
    history = train(model, loss_weights={"cls": 1.0, "box": 0.5})
    for got, want in zip(_weights(model), expected):
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert history["cls_loss"][0] == pytest.approx(l_cls, rel=1e-10)
    assert history["box_loss"][0] == pytest.approx(l_box, rel=1e-10)
    assert history["loss"][0] == pytest.approx(total, rel=1e-10)


def test_per_output_sample_weights_weigh_that_outputs_loss_only():
    model = made()
    w = gen.uniform(0.1, 3.0, size=N)
    total, l_cls, l_box, expected = _by_hand(model, 0.1, {"cls": 2.0, "box": 1.0}, w_cls=w)
    history = train(model, loss_weights={"cls": 2.0}, sample_weight={"cls": w})
    for got, want in zip(_weights(model), expected):
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert history["cls_loss"][0] == pytest.approx(l_cls, rel=1e-10)
    assert history["loss"][0] == pytest.approx(total, rel=1e-10)


def test_the_total_is_the_weighted_sum_of_the_outputs_losses_in_mini_batches_too():
    w = gen.uniform(0.0, 2.0, size=N)
    history = train(made(), epochs=3, batch_size=7, shuffle=True, loss_weights={"cls": 0.3, "box": 2.0},
                    sample_weight={"box": w}, validation_split=0.25)
    for prefix in ("", "val_"):
        for epoch in range(3):
            by_hand = 0.3 * history[f"{prefix}cls_loss"][epoch] + 2.0 * history[f"{prefix}box_loss"][epoch]
            assert history[f"{prefix}loss"][epoch] == pytest.approx(by_hand, rel=1e-12)


def test_evaluate_gives_the_same_keys_and_values_as_the_training_logs():
    model = made()
    history = train(model, metrics={"cls": ["accuracy"]}, validation_data=(X, Y), loss_weights={"box": 0.5})
    # validation ran on the weights after the epoch, which evaluate sees; the model's loss is the trained one
    result = model.evaluate(X, Y, metrics={"cls": ["accuracy"]}, batch_size=5)
    assert list(result) == ["loss", "cls_loss", "box_loss", "cls_accuracy"]
    for key, value in result.items():
        assert value == pytest.approx(history[f"val_{key}"][0], rel=1e-10), key
    assert result["loss"] == pytest.approx(result["cls_loss"] + 0.5 * result["box_loss"], rel=1e-12)


def test_an_output_without_a_loss_gets_no_gradient_and_needs_no_target():
    model = made()
    box_before = [p.value.copy() for p in model.box.parameters().values()]
    trunk_before = model.trunk.weight.value.copy()
    history = model.train(X, {"cls": Y_CLS}, loss={"cls": CrossEntropy(from_logits=True)}, optim=SGD(lr=0.1),
                          epochs=2, verbose=False)
    assert list(history.keys()) == ["loss", "cls_loss"]
    assert history["loss"] == history["cls_loss"]
    for before, param in zip(box_before, model.box.parameters().values()):
        assert np.array_equal(before, param.value) and not param.grad.any()
    assert not np.array_equal(trunk_before, model.trunk.weight.value)


def test_class_weights_per_output():
    model = made()
    table = {0: 1.0, 1: 3.0, 2: 0.5}
    _, l_cls, _, expected = _by_hand(model, 0.1, {"cls": 1.0, "box": 1.0},
                                     w_cls=np.array([table[c] for c in Y_CLS]))
    history = train(model, class_weight={"cls": table})
    assert history["cls_loss"][0] == pytest.approx(l_cls, rel=1e-10)
    for got, want in zip(_weights(model), expected):
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_early_stopping_watches_one_outputs_validation_loss():
    stop = lamina.callback("EarlyStopping", monitor="val_box_loss", patience=1)
    history = train(made(), epochs=50, optim=SGD(lr=5.0), validation_split=0.25, callbacks=[stop])
    assert 2 <= len(history) < 50


def test_lazy_inputs_and_targets_read_a_batch_at_a_time(tmp_path):
    np.save(tmp_path / "a.npy", XA)
    lazy = {"a": np.load(tmp_path / "a.npy", mmap_mode="r"), "b": XB}
    lazy_model = made()  # each trained right after its seeding: the same shuffles
    lazy_history = lazy_model.train(lazy, Y, loss=LOSS, optim=SGD(lr=0.1), epochs=2, batch_size=5, verbose=False)
    model = made()
    history = train(model, epochs=2, batch_size=5, shuffle=True)
    assert lazy_history == history
    assert np.allclose(lazy_model.predict(lazy)["box"], model.predict(X)["box"], rtol=1e-12)


def test_a_non_finite_loss_names_the_output():
    bad = Y_BOX.copy()
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"y\['box'\]"):
        made().train(X, {"cls": Y_CLS, "box": bad}, loss=LOSS, epochs=1, verbose=False)
    model = made()
    model.box.weight.value[...] = 1e300  # overflows in the box head's loss only
    with pytest.raises(NonFiniteError, match="output 'box'"):
        train(model)


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"loss": {"cls": "CrossEntropy", "bbox": "MSE"}}, ArgumentError, r"'bbox' is no output.*'cls', 'box'"),
    ({"y": {"cls": Y_CLS}}, ArgumentError, r"y has no 'box'.*y\['box'\]"),
    ({"y": [Y_CLS, Y_BOX]}, ArgumentError, r"(?s)y is .*list.*a dict by output name"),
    ({"x": XA}, ArgumentError, r"x is .*inputs are a dict \('a', 'b'\)"),
    ({"x": {"a": XA, "b": XB[:-1]}}, ShapeError, r"x\['a'\] has 24 rows but x\['b'\] has 23"),
    ({"y": {"cls": Y_CLS, "box": Y_BOX[:-2]}}, ShapeError, r"y\['box'\] has 22"),
    ({"loss_weights": {"cls": -1.0}}, ArgumentError, r"finite number >= 0"),
    ({"loss_weights": {"cbox": 1.0}}, ArgumentError, r"'cbox' is no output"),
    ({"metrics": {"clss": ["accuracy"]}}, ArgumentError, r"'clss' is no output"),
    ({"sample_weight": {"box": np.ones(5)}}, ShapeError, r"sample_weight\['box'\] has 5 weights"),
])
def test_bad_structures_are_lamina_errors_that_say_what_to_give(change, error, message):
    args = {"x": X, "y": Y, "loss": LOSS, "epochs": 1, "verbose": False, **change}
    with pytest.raises(error, match=message):
        made().train(**args)


def test_one_output_models_keep_their_keys_and_refuse_loss_weights():
    model = lamina.Model([Linear(2)])
    history = model.train(XA, Y_BOX[:, :2], loss="MSE", metrics=["mae"], epochs=1, verbose=False)
    assert list(history.keys()) == ["loss", "mae"]
    with pytest.raises(ArgumentError, match="loss_weights weighs the losses of a model's several outputs"):
        model.train(XA, Y_BOX[:, :2], loss="MSE", loss_weights=0.5, epochs=1, verbose=False)
    assert math.isfinite(history["loss"][0])


def test_evaluate_weighs_the_trained_models_losses_again_and_huge_weights_are_refused():
    lamina.seed(0)
    a = lamina.Input((3,), name="a")
    model = lamina.Model(inputs=a, outputs={"p": lamina.layer("Linear", 1)(a), "q": lamina.layer("Linear", 2)(a)})
    x, y = np.ones((4, 3), np.float32), {"p": np.ones((4, 1)), "q": np.zeros((4, 2))}
    model.train(x, y, loss="MSE", epochs=1, verbose=False)
    plain = model.evaluate(x, y)  # the trained model's losses, weighed 1 and 1
    assert plain["loss"] == pytest.approx(plain["p_loss"] + plain["q_loss"])
    only_q = model.evaluate(x, y, loss_weights={"p": 0.0, "q": 1.0})
    assert only_q["loss"] == pytest.approx(plain["q_loss"]) and only_q["p_loss"] == pytest.approx(plain["p_loss"])
    with pytest.raises(lamina.ArgumentError, match="finite number >= 0"):
        model.train(x, y, loss="MSE", loss_weights={"p": 10**400, "q": 1}, epochs=1, verbose=False)
