"""lamina's worker threads (lamina.parallel): how a batch is split, which BLAS threads run
inside and after, and that layers that split give the same numbers as on one thread."""
from __future__ import annotations

import contextlib
import contextvars
import threading

import numpy as np
import pytest

import lamina
from lamina.parallel import blas, workers


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads whatever this machine's cores and BLAS, and every split worth it."""
    monkeypatch.setattr(workers, "_cores", lambda: 2)
    monkeypatch.setattr(blas, "available", lambda: True)
    monkeypatch.setattr(workers, "SMALL", 0)
    lamina.parallel.set_threads(2)
    yield
    lamina.parallel.set_threads(None)


@pytest.fixture
def one_thread():
    lamina.parallel.set_threads(1)
    yield
    lamina.parallel.set_threads(None)


def test_split_cuts_items_into_contiguous_parts_in_order_one_per_thread(two_threads):
    ran_on = {}

    def record(part, worker):
        ran_on[worker] = threading.get_ident()
        return list(part), worker

    assert lamina.parallel.split(list(range(7)), record) == [([0, 1, 2], 0), ([3, 4, 5, 6], 1)]
    assert ran_on[0] == threading.get_ident() != ran_on[1]  # the caller ran the first, another thread the second


def test_split_runs_inline_for_one_thread_one_item_little_work_or_inside_a_part(two_threads, monkeypatch):
    calls = []

    def record(part, worker):
        calls.append((list(part), worker, threading.get_ident()))
        return len(part)

    assert lamina.parallel.split([5], record) == [1]
    monkeypatch.setattr(workers, "SMALL", 100)
    assert lamina.parallel.split([1, 2, 3], record, work=99) == [3]
    assert lamina.parallel.split([1, 2, 3], record, work=100) == [1, 2]
    me = threading.get_ident()
    assert [c[2] for c in calls[:2]] == [me, me]

    def nested(part, worker):
        return lamina.parallel.split(list(part) * 3, lambda inner, w: (len(inner), w))

    assert lamina.parallel.split([1, 2], nested) == [[(3, 0)], [(3, 0)]]
    lamina.parallel.set_threads(1)
    assert lamina.parallel.split(list(range(4)), lambda part, worker: list(part)) == [[0, 1, 2, 3]]


def test_an_error_in_a_part_reaches_the_caller_and_the_blas_threads_come_back(two_threads):
    before = blas.current()

    def fail_second(part, worker):
        if worker == 1:
            raise ValueError(f"part {list(part)} failed")
        return worker

    with pytest.raises(ValueError, match=r"part \[2, 3\] failed"):
        lamina.parallel.split([0, 1, 2, 3], fail_second)
    assert blas.current() == before
    assert lamina.parallel.split([0, 1], lambda part, worker: worker) == [0, 1]  # the pool still works


def test_a_part_sees_the_callers_context(two_threads):
    variable = contextvars.ContextVar("lamina_test_variable", default="unset")
    token = variable.set("the caller's")
    try:
        assert lamina.parallel.split([0, 1], lambda part, worker: variable.get()) == ["the caller's"] * 2
    finally:
        variable.reset(token)


needs_openblas = pytest.mark.skipif(not blas.available(), reason="numpy's BLAS is not OpenBLAS: lamina leaves "
                                    "its threads alone and splits nothing")


@needs_openblas
def test_blas_threads_sets_numpys_blas_inside_and_gives_the_old_count_back_nested_too():
    outside = blas._controls()[0][0]()
    with lamina.parallel.blas_threads(1):
        assert blas._controls()[0][0]() == 1
        assert blas.current() == outside  # what lamina follows: the count outside its blocks
        with lamina.parallel.blas_threads(1):
            assert blas._controls()[0][0]() == 1
        assert blas._controls()[0][0]() == 1
    assert blas._controls()[0][0]() == outside


@needs_openblas
def test_threads_follow_numpys_blas_the_environment_and_set_threads_within_the_cores(monkeypatch):
    monkeypatch.setattr(workers, "_cores", lambda: 4)
    monkeypatch.delenv("LAMINA_NUM_THREADS", raising=False)
    get, _ = blas._controls()[0]
    assert lamina.parallel.threads() == min(get(), 4)
    with lamina.parallel.blas_threads(1):  # inside a block: still the count outside it
        assert get() == 1 and lamina.parallel.threads() == min(blas.current(), 4)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "3")
    assert lamina.parallel.threads() == 3
    monkeypatch.setenv("LAMINA_NUM_THREADS", "9")
    assert lamina.parallel.threads() == 4  # never more than the cores
    try:
        lamina.parallel.set_threads(2)
        assert lamina.parallel.threads() == 2  # set_threads wins over the environment
    finally:
        lamina.parallel.set_threads(None)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "two")
    with pytest.raises(lamina.ArgumentError, match=r"LAMINA_NUM_THREADS='two'.*whole number >= 1"):
        lamina.parallel.threads()


def test_threads_are_one_where_lamina_cannot_set_the_blas_threads(monkeypatch):
    monkeypatch.setattr(blas, "available", lambda: False)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "2")
    assert lamina.parallel.threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises(lamina.ArgumentError, match=r"set_threads\(.*\): expected an int >= 1, or None"):
        lamina.parallel.set_threads(bad)


@needs_openblas
def test_training_a_model_that_splits_keeps_the_blas_on_one_thread_and_one_that_does_not_leaves_it(
        two_threads, monkeypatch):
    seen = []

    class Spy(lamina.Layer):
        def forward(self, x):
            seen.append(blas._controls()[0][0]())
            return x

        def backward(self, grad):
            return grad

    outside = blas._controls()[0][0]()
    x, y = np.ones((4, 1, 6, 6), dtype=np.float32), np.zeros((4, 2), dtype=np.float32)
    conv = lamina.Model([lamina.layer("Conv2D", 2, 3), Spy(), lamina.layer("Flatten"), lamina.layer("Linear", 2)])
    conv.train(x, y, optim="SGD", loss="MSE", epochs=1, verbose=False)
    assert seen and set(seen) == {1}
    conv.predict(x)
    assert seen[-1] == 1
    assert blas._controls()[0][0]() == outside
    seen.clear()
    plain = lamina.Model([lamina.layer("Flatten"), Spy(), lamina.layer("Linear", 2)])
    plain.train(x, y, optim="SGD", loss="MSE", epochs=1, verbose=False)
    assert set(seen) == {outside}


def test_batch_chunks_are_near_equal_and_a_multiple_of_the_threads_when_worth_splitting(two_threads):
    from lamina.plugins.layers._spatial import CHUNK_BYTES, batch_chunks

    sizes = [c.stop - c.start for c in batch_chunks(64, CHUNK_BYTES // 5, 2)]
    assert sum(sizes) == 64 and len(sizes) % 2 == 0 and max(sizes) - min(sizes) <= 1
    assert [c.stop - c.start for c in batch_chunks(64, 100, 2)] == [32, 32]
    assert [c.stop - c.start for c in batch_chunks(1, 100, 2)] == [1]
    assert batch_chunks(0, 100, 2) == [slice(0, 0)]
    covered = batch_chunks(7, CHUNK_BYTES, 2)
    assert [c.start for c in covered[1:]] == [c.stop for c in covered[:-1]] and covered[-1].stop == 7


def _layer_run(name, kwargs, shape, threads, seed=0):
    """Outputs, input gradient and parameter gradients of a fresh layer in float64."""
    lamina.parallel.set_threads(threads)
    lamina.seed(seed)
    layer = lamina.layer(name, **kwargs)
    x = lamina.rng().normal(size=shape)
    layer.training = True
    out = layer(x)
    grad = np.random.default_rng(1).normal(size=out.shape)
    dx = layer.backward(grad)
    return out, dx, {k: p.grad.copy() for k, p in layer.parameters().items()}


@pytest.mark.parametrize("name, kwargs, shape", [
    ("Conv2D", {"filters": 4, "kernel_size": 3, "padding": 1}, (7, 3, 9, 8)),
    ("Conv2D", {"filters": 3, "kernel_size": (2, 3), "stride": 2, "dilation": (1, 2)}, (5, 2, 9, 11)),
    ("Conv2D", {"filters": 4, "kernel_size": 5, "padding": 2}, (6, 1, 10, 10)),  # one channel: tap rows
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "same"}, (7, 3, 12)),
    ("Conv1D", {"filters": 3, "kernel_size": 2, "stride": 2, "dilation": 2}, (5, 2, 13)),
    ("MaxPool2D", {"pool_size": 2}, (7, 3, 8, 6)),
    ("MaxPool2D", {"pool_size": 3, "stride": 1}, (5, 2, 6, 7)),
    ("MaxPool1D", {"pool_size": 3, "stride": 2}, (7, 3, 11)),
])
def test_a_layer_split_over_threads_computes_what_it_computes_on_one(name, kwargs, shape, two_threads, monkeypatch):
    import lamina.plugins.layers._spatial as spatial

    monkeypatch.setattr(spatial, "CHUNK_BYTES", 256)  # several chunks a thread
    split = _layer_run(name, kwargs, shape, threads=2)
    alone = _layer_run(name, kwargs, shape, threads=1)
    for ours, theirs in zip(split[:2], alone[:2]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    for key in alone[2]:
        np.testing.assert_allclose(split[2][key], alone[2][key], rtol=1e-12, atol=1e-12)


def test_a_cnn_trained_on_two_threads_ends_where_one_thread_ends(two_threads):
    def trained(threads):
        lamina.parallel.set_threads(threads)
        lamina.seed(3)
        model = lamina.Model([
            lamina.layer("Conv2D", 4, 3, padding=1), "Relu", lamina.layer("MaxPool2D", 2),
            lamina.layer("Conv2D", 6, 3), "Relu", lamina.layer("Flatten"), lamina.layer("Linear", 3)])
        x = lamina.rng().normal(size=(24, 2, 8, 8))
        y = lamina.rng().integers(0, 3, size=24)
        model.train(x, y, optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=3,
                    batch_size=8, verbose=False)
        return model.state_dict(), model.predict(x)

    (split, out_split), (alone, out_alone) = trained(2), trained(1)
    for key in alone:
        np.testing.assert_allclose(split[key], alone[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out_split, out_alone, rtol=1e-10, atol=1e-12)


def test_the_layers_that_split_do_run_parts_on_two_threads(two_threads, monkeypatch):
    import lamina.plugins.layers._spatial as spatial

    monkeypatch.setattr(spatial, "CHUNK_BYTES", 256)
    ran = []
    real = workers._run
    monkeypatch.setattr(workers, "_run", lambda fn, part, worker: ran.append(worker) or real(fn, part, worker))
    for name, kwargs, shape in [("Conv2D", {"filters": 2, "kernel_size": 3}, (4, 2, 6, 6)),
                                ("Conv1D", {"filters": 2, "kernel_size": 3}, (4, 2, 9)),
                                ("MaxPool2D", {"pool_size": 2}, (4, 2, 6, 6)),
                                ("MaxPool1D", {"pool_size": 2}, (4, 2, 6))]:
        ran.clear()
        _layer_run(name, kwargs, shape, threads=2)
        assert sorted(ran) == [0, 0, 1, 1], name  # forward and backward, each in two parts


@pytest.mark.parametrize("shape", [(9, 30), (4, 5, 30)])
@pytest.mark.parametrize("first", [False, True])
def test_linear_splits_its_products_only_where_lamina_owns_the_cores(shape, first, two_threads, monkeypatch):
    ran = []
    real = workers._run
    monkeypatch.setattr(workers, "_run", lambda fn, part, worker: ran.append(worker) or real(fn, part, worker))

    def run(threads, owned):
        lamina.parallel.set_threads(threads)
        lamina.seed(0)
        layer = lamina.layer("Linear", 7)
        layer.training, layer.needs_input_grad = True, not first
        x = lamina.rng().normal(size=shape)
        with lamina.parallel.owned() if owned else contextlib.nullcontext():
            out = layer(x)
            dx = layer.backward(np.random.default_rng(1).normal(size=out.shape))
        return out, dx, layer.weight.grad.copy(), layer.bias.grad.copy()

    alone = run(1, owned=False)
    assert ran == []
    outside = run(2, owned=False)
    assert ran == []  # numpy's BLAS has its threads: the products are left to it
    split = run(2, owned=True)
    assert sorted(ran) == [0, 0, 1, 1]
    for ours, theirs, plain in zip(split, alone, outside):
        if theirs is None:
            assert ours is None and plain is None
            continue
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(plain, theirs, rtol=1e-12, atol=1e-12)
