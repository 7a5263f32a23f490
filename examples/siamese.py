"""A Siamese model: are two 8x8 digits the same digit? One encoder, its weights shared, reads both
digits; a head scores |code_left - code_right|. Trains in a few seconds.

    python examples/siamese.py

The same idea from a config (the codes' product instead of their distance):
lamina train examples/configs/siamese.toml
"""
from __future__ import annotations

import numpy as np

import lamina


class AbsDifference(lamina.Layer):
    """|a - b| of two arrays of one shape: a merge layer, called on a list [a, b]."""

    keeps = ("_sign",)

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        a, b = xs
        self._sign = np.sign(a - b)
        return np.abs(a - b)

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:
        return [grad * self._sign, -grad * self._sign]


def siamese(width: int = 32) -> lamina.Model:
    left, right = lamina.Input((64,), name="left"), lamina.Input((64,), name="right")
    encoder = lamina.layer("Sequential", [lamina.layer("Linear", width), "Tanh"])  # one instance, called twice
    distance = AbsDifference()([encoder(left), encoder(right)])
    same = lamina.layer("Sigmoid")(lamina.layer("Linear", 1)(distance))
    return lamina.Model(inputs={"left": left, "right": right}, outputs=same)


def main() -> float:
    x_train, y_train, x_test, y_test = lamina.dataset("digit_pairs", per_image=4)
    lamina.seed(0)
    model = siamese()
    model.train(x_train, y_train, optim=lamina.optimizer("Adam", lr=0.01), loss="BinaryCrossEntropy",
                metrics=["binary_accuracy"], epochs=15, batch_size=32, verbose=False)
    accuracy = model.evaluate(x_test, y_test, metrics=["binary_accuracy"])["binary_accuracy"]
    print(f"{len(y_train)} training pairs, {len(y_test)} test pairs (half of each the same digit)")
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
