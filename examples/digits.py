"""Handwritten digits (8x8, 1,797 images): an MLP with Adam, CrossEntropy, mini-batches and
early stopping, evaluated on a held-out test split.

    python examples/digits.py [SEED]
"""
import sys
from importlib.resources import files

import numpy as np

import lamina

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
lamina.seed(seed)

# The UCI digits ship with lamina as a compressed npz (see lamina/plugins/data/DIGITS.md).
with np.load(files("lamina.plugins") / "data" / "digits.npz", allow_pickle=False) as data:
    images, labels = data["images"], data["labels"]
x = images.reshape(len(images), -1).astype(np.float32) / 16.0  # pixels 0..16 -> [0, 1]
y = labels.astype(np.int64)

# A seeded, held-out test split of 20%.
order = np.random.default_rng(seed).permutation(len(x))
test, train = order[: len(x) // 5], order[len(x) // 5 :]

# Standardise each pixel with the training split's statistics (never the test split's). The
# 0.1 added to the spread keeps rarely-inked border pixels from being blown up into noise.
mean, std = x[train].mean(axis=0), x[train].std(axis=0)
x = (x - mean) / (std + 0.1)

model = lamina.Model([
    {"type": "Linear", "units": 128},
    "Relu",
    {"type": "Linear", "units": 10},
    "Softmax",
])
history = model.train(
    x[train], y[train],
    optim=lamina.optimizer("Adam", lr=0.001),
    loss="CrossEntropy",
    epochs=200,
    batch_size=32,
    validation_split=0.1,
    metrics=["accuracy"],
    callbacks=[lamina.callback("EarlyStopping", monitor="val_loss", patience=10)],
    verbose=False,
)
result = model.evaluate(x[test], y[test], metrics=["accuracy"])
print(f"epochs run: {len(history)} (the weights of the best validation epoch are kept)")
print(f"test loss: {result['loss']:.4f}")
print(f"test accuracy: {result['accuracy']:.4f}")
