"""Layer.build(x): weights made once from the first input; parameters and sublayers found by name."""
from __future__ import annotations

import types

import numpy as np
import pytest

import lamina
from lamina.testing import check_plugin, format_failures


class Scaled(lamina.Layer):
    """y = x * weight + bias per feature; weights built from the first input's width."""

    keeps = ("_x",)

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.builds = 0

    def build(self, x):
        if x.ndim != 2:
            raise lamina.ShapeError(f"Scaled needs (batch, features), got {x.shape}")
        self.builds += 1
        self.weight = lamina.Parameter(np.full(x.shape[-1], self.scale, dtype=x.dtype))
        self.bias = lamina.Parameter(np.zeros(x.shape[-1], dtype=x.dtype))

    def forward(self, x):
        if x.shape[-1] != self.weight.shape[0]:
            raise lamina.ShapeError(f"Scaled was built for {self.weight.shape[0]} features, got {x.shape}")
        self._x = x
        return x * self.weight.value + self.bias.value

    def backward(self, grad):
        self.weight.grad += (grad * self._x).sum(axis=0)
        self.bias.grad += grad.sum(axis=0)
        return grad * self.weight.value


def test_build_runs_once_with_the_first_input():
    layer = Scaled(2.0)
    assert layer.parameters() == {}
    layer(np.ones((3, 4), dtype=np.float32))
    layer(np.ones((5, 4), dtype=np.float32))
    assert layer.builds == 1
    assert {k: (p.shape, p.value.dtype) for k, p in layer.parameters().items()} == {
        "weight": ((4,), np.float32), "bias": ((4,), np.float32)}


def test_a_shape_error_in_build_or_the_first_forward_leaves_the_layer_unbuilt():
    layer = Scaled()
    with pytest.raises(lamina.ShapeError):
        layer(np.ones(4))  # build rejects it
    assert layer.parameters() == {} and layer.builds == 0

    class RejectsInForward(Scaled):
        def forward(self, x):
            if x.shape[0] > 10:
                raise lamina.ShapeError("RejectsInForward takes batches of at most 10")
            return super().forward(x)

    layer = RejectsInForward()
    with pytest.raises(lamina.ShapeError):
        layer(np.ones((11, 2)))  # built for 2 features, then rejected
    assert layer.parameters() == {}
    assert layer(np.ones((3, 5))).shape == (3, 5)  # builds anew for the correct input


def test_parameters_and_buffers_are_found_by_name_through_sublayers():
    class Block(lamina.Layer):
        def __init__(self):
            self.first = Scaled()
            self.rest = [Scaled(), lamina.layer("BatchNorm")]
            self.gain = lamina.Parameter(np.ones(1))

        def forward(self, x):
            x = self.first(x)
            for layer in self.rest:
                x = layer(x)
            return x * self.gain.value

    block = Block()
    block.training = False
    block(np.ones((4, 3)))
    assert list(block.parameters()) == [
        "gain", "first.weight", "first.bias", "rest.0.weight", "rest.0.bias", "rest.1.weight", "rest.1.bias"]
    assert list(block.buffers()) == ["rest.1.running_mean", "rest.1.running_var"]


def test_a_layer_with_build_trains_by_name_saves_loads_and_passes_the_kit(tmp_path):
    plugin = types.SimpleNamespace(register_layers=lamina.hookimpl(lambda register: register(Scaled)))
    lamina.register_plugin(plugin, package="lamina-test-build")
    try:
        results = check_plugin(Scaled, sample_shapes=[(4, 3)])
        assert all(r.ok is not False for r in results), format_failures(results)
        lamina.seed(0)
        model = lamina.Model(["Scaled", {"type": "Linear", "units": 1}])
        x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
        history = model.train(x, x.sum(axis=1, keepdims=True), optim=lamina.optimizer("Adam", lr=0.05), epochs=30,
                              verbose=False)
        assert history[-1] < history[0]
        model.save(tmp_path / "m.npz")
        loaded = lamina.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    finally:
        lamina.get_registry().remove_package("lamina-test-build")
