"""Memory: training allocates nothing that grows with the steps; inference keeps no state."""
from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina.autodiff import Tape, Traced

STATM = Path("/proc/self/statm")


def resident_mib() -> float:
    return int(STATM.read_text().split()[1]) * resource.getpagesize() / 2**20


class ForwardLinear(lamina.Layer):
    """Linear written forward-only: lamina records each forward and derives the backward."""

    def __init__(self, units):
        self.units = units

    def build(self, x):
        self.weight = lamina.Parameter(lamina.initializer("he_uniform")((x.shape[-1], self.units), x.dtype))
        self.bias = lamina.Parameter(np.zeros(self.units, x.dtype))

    def forward(self, x):
        return x @ self.weight + self.bias


MODELS = {
    "built-in": lambda: [lamina.layer("Linear", 256), "Relu", lamina.layer("Linear", 10)],
    # recorded graphs and nested layers: a graph left behind per step would show here
    "forward-only and nested": lambda: [
        ForwardLinear(256), lamina.layer("Residual", [ForwardLinear(256), "Relu", lamina.layer("Dropout", 0.1)]),
        lamina.layer("Parallel", [[ForwardLinear(5)], [lamina.layer("Linear", 5)]]),
    ],
}


@pytest.mark.skipif(not STATM.exists(), reason="needs Linux's /proc/self/statm")
@pytest.mark.parametrize("model", list(MODELS))
def test_resident_memory_does_not_grow_with_the_number_of_steps(model):
    class Resident(lamina.Callback):
        def on_train_begin(self, logs=None):
            self.values = []

        def on_epoch_end(self, epoch, logs):
            self.values.append(resident_mib())

    generator = np.random.default_rng(0)
    x = generator.random((8_000, 128), dtype=np.float32)
    y = generator.integers(0, 10, size=8_000)
    lamina.seed(0)
    model = lamina.Model(MODELS[model]())
    resident = Resident()
    model.train(x, y, optim="Adam", loss=lamina.loss("CrossEntropy", from_logits=True), epochs=10,
                batch_size=64, metrics=["accuracy"], callbacks=[resident], validation_split=0.1, verbose=False)
    # 1,125 steps a run; one leaked batch-sized array per step would add ~70 MiB.
    assert resident.values[9] - resident.values[1] < 4.0, resident.values


def test_predict_and_evaluate_keep_no_arrays_of_the_call():
    x = np.random.default_rng(0).normal(size=(50, 1, 8, 8))
    model = lamina.Model([
        lamina.layer("Conv2D", 4, 3), lamina.layer("Relu"), lamina.layer("MaxPool2D", 2),
        lamina.layer("Flatten"), lamina.layer("Residual", [lamina.layer("Dropout", 0.5), ForwardLinear(36)]),
        lamina.layer("Parallel", [[lamina.layer("Linear", 3)], [ForwardLinear(3)]], merge="mul"),
        lamina.layer("Softmax"),
    ])
    model.train(x, np.zeros(50, dtype=int), loss="CrossEntropy", epochs=1, verbose=False)
    for run in (lambda: model.predict(x), lambda: model(x), lambda: model.evaluate(x, np.zeros(50, dtype=int))):
        run()
        kept = {
            f"{type(layer).__name__}.{name}"
            for top in model.layers
            for layer in top.walk()
            for name, value in vars(layer).items()
            if name.startswith("_") and isinstance(value, (np.ndarray, list, Tape, Traced))
            and not isinstance(value, bool)
            and (not isinstance(value, list) or value)
        }
        assert kept == set()


def test_training_does_not_copy_the_data_set_per_step():
    x = np.random.default_rng(0).normal(size=(64, 4))
    seen = []

    class Spy(lamina.Layer):
        def forward(self, batch):
            seen.append(np.shares_memory(batch, x))
            return batch

        def backward(self, grad):
            return grad

    lamina.Model([Spy(), lamina.layer("Linear", 1)]).train(x, x[:, :1], epochs=2, verbose=False)
    # one pass on x[:1] builds the layers, then two epochs: each batch is x itself, never a copy
    assert seen == [True, True, True]
