"""Threads: a save during training waits for the step, predict, summary and load from other threads
leave a training run as it was, and predict from many threads gives the results of one."""
from __future__ import annotations

import json
import threading
import time
import zipfile

import numpy as np

import lamina


def spirals():
    x, y, _, _ = lamina.dataset("spirals", n_samples=300)
    return x, y


def small_model():
    lamina.seed(0)
    return lamina.Model([lamina.layer("Linear", 16), "Relu", lamina.layer("Linear", 3)])


def test_a_save_during_training_waits_for_the_step_and_is_consistent(tmp_path):
    x, y = spirals()
    model = small_model()
    done = threading.Event()

    def train():
        model.train(x, y, optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=15,
                    batch_size=4, verbose=False)
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    steps = []
    while not done.is_set() and len(steps) < 30:
        if model.optimizer is not None and model.parameters():
            path = tmp_path / f"save{len(steps)}.npz"
            model.save(path, include_optimizer=True)
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
            steps.append({e["step"]["value"] for e in config["optimizer"]["state"].values()})
        time.sleep(0.005)
    thread.join()
    assert steps, "no save happened during training"
    assert all(len(counts) <= 1 for counts in steps), steps  # every parameter at the same step (or none yet)
    assert any(counts for counts in steps)


def test_summary_and_predict_from_another_thread_leave_training_intact():
    x, y = spirals()
    kwargs = dict(optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=8, batch_size=8,
                  verbose=False)
    alone = small_model()
    alone.train(x, y, **kwargs)
    model = small_model()
    errors = []

    def meddle():
        while thread.is_alive():
            try:
                model.summary()
                model.predict(x[:5])
            except Exception as err:  # a LaminaError before the first build is fine; report others
                if not isinstance(err, lamina.LaminaError):
                    errors.append(err)

    thread = threading.Thread(target=lambda: model.train(x, y, **kwargs))
    thread.start()
    meddler = threading.Thread(target=meddle)
    meddler.start()
    thread.join()
    meddler.join()
    assert errors == []
    for a, b in zip(alone.parameters().values(), model.parameters().values()):
        np.testing.assert_array_equal(a.value, b.value)


def test_loading_in_another_thread_does_not_change_a_training_run(tmp_path):
    x, y = spirals()
    kwargs = dict(optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=6, batch_size=8,
                  verbose=False)
    other = small_model()
    other.predict(x[:1])
    other.save(tmp_path / "other.npz")

    def run(with_loads):
        lamina.seed(1)
        model = lamina.Model([lamina.layer("Linear", 16), lamina.layer("Dropout", 0.3), lamina.layer("Linear", 3)])
        stop = threading.Event()

        def load_repeatedly():
            while not stop.is_set():
                lamina.load(tmp_path / "other.npz")

        loader = threading.Thread(target=load_repeatedly)
        if with_loads:
            loader.start()
        model.train(x, y, **kwargs)
        stop.set()
        if with_loads:
            loader.join()
        return [p.value.copy() for p in model.parameters().values()]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


def test_predict_from_many_threads_gives_the_results_of_one():
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Conv2D", 4, 3), "Relu", lamina.layer("MaxPool2D", 2), "Flatten",
                          lamina.layer("BatchNorm"), lamina.layer("Linear", 5)])
    inputs = [np.random.default_rng(i).normal(size=(i % 7 + 1, 1, 8, 8)) for i in range(32)]
    expected = [model.predict(x) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(5):
            results[i] = model.predict(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, x in enumerate(expected):
        np.testing.assert_array_equal(results[i], x)
