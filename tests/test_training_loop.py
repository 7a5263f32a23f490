"""The training loop by hand (docs/pages/guide/training-loop.md): lamina's public pieces make the
same steps as `model.train`, and gradient accumulation over k batches of n rows makes the
gradient of one batch of k * n."""
from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ROOT

import lamina

PAGE = ROOT / "docs" / "pages" / "guide" / "training-loop.md"


def data(n=96):
    x, y, _, _ = lamina.dataset("digits")
    return x[:n].astype(np.float64), y[:n]


def mlp(seed=0):
    lamina.seed(seed)
    return lamina.Model([lamina.layer("Linear", 16), "Tanh", lamina.layer("Linear", 10)])


def by_hand(model, x, y, loss, optim, epochs, batch_size, shuffle):
    """The loop the page teaches; returns each epoch's sample-weighted mean loss."""
    model.build(x[:1])  # the weights first, then the permutations: as train draws them
    model.set_training(True)
    losses = []
    for _ in range(epochs):
        order = lamina.rng().permutation(len(x)) if shuffle else np.arange(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            rows = order[start : start + batch_size]
            value = loss(model.forward(x[rows]), y[rows])
            model.zero_grad()
            model.backward(loss.backward())
            optim.step(model.parameters())
            total += value * len(rows)
        losses.append(total / len(x))
    model.set_training(False)
    model.release()
    return losses


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_hand_loop_reaches_the_weights_and_losses_of_model_train(shuffle):
    x, y = data()
    options = dict(epochs=3, batch_size=20, shuffle=shuffle)  # 20 does not divide 96: a short last batch
    mine = mlp()
    losses = by_hand(mine, x, y, lamina.loss("CrossEntropy", from_logits=True), lamina.optimizer("Adam", lr=0.01),
                     **options)
    theirs = mlp()
    history = theirs.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True),
                           optim=lamina.optimizer("Adam", lr=0.01),
                           verbose=False, **options)
    assert mine.dtype == np.float64
    np.testing.assert_allclose(losses, history["loss"], rtol=1e-12, atol=0)
    for a, b in zip(mine.parameters().values(), theirs.parameters().values()):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12, atol=1e-12)
    initial = mlp()
    initial.build(x[:1])
    assert not np.allclose(mine.parameters()["0.weight"].value, initial.parameters()["0.weight"].value)  # it trained


@pytest.mark.parametrize("k, n", [(2, 5), (4, 8), (3, 1)])
def test_gradient_accumulation_over_k_batches_of_n_is_one_batch_of_k_times_n(k, n):
    x, y = data(k * n)
    loss = lamina.loss("CrossEntropy", from_logits=True)
    model = mlp()
    model.build(x[:1])
    model.set_training(True)
    model.zero_grad()
    for i in range(k):
        rows = slice(i * n, (i + 1) * n)
        loss(model.forward(x[rows]), y[rows])
        model.backward(loss.backward() / k)
    accumulated = {name: p.grad.copy() for name, p in model.parameters().items()}
    model.zero_grad()
    loss(model.forward(x), y)
    model.backward(loss.backward())
    for name, p in model.parameters().items():
        assert np.abs(p.grad).max() > 0
        np.testing.assert_allclose(accumulated[name], p.grad, rtol=1e-12, atol=1e-15, err_msg=name)


def test_model_zero_grad_zeroes_every_gradient_for_the_next_backward():
    x, y = data(8)
    model, loss = mlp(), lamina.loss("CrossEntropy", from_logits=True)
    model.set_training(True)
    loss(model.forward(x), y)
    model.backward(loss.backward())
    once = [p.grad.copy() for p in model.parameters().values()]
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters().values())
    loss(model.forward(x), y)
    model.backward(loss.backward())
    for a, p in zip(once, model.parameters().values()):
        np.testing.assert_array_equal(a, p.grad)  # not doubled: the zeroing took


def test_the_page_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__page__"}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert capsys.readouterr().out.count("worst class accuracy") == 3
