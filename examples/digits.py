"""Handwritten digits (8x8, 1,797 images): an MLP with Adam, CrossEntropy, mini-batches and
early stopping, evaluated on a held-out test split.

    python examples/digits.py [SEED]
"""
import sys

import lamina

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
lamina.seed(seed)

# The UCI digits ship with lamina; a seeded 20% is held out as the test split.
x_train, y_train, x_test, y_test = lamina.dataset("digits", seed=seed)

# Standardise each pixel with the training split's statistics (never the test split's). The
# 0.1 added to the spread keeps rarely-inked border pixels from being blown up into noise.
mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 0.1
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

model = lamina.Model([
    {"type": "Linear", "units": 128},
    "Relu",
    {"type": "Linear", "units": 10},
    "Softmax",
])
history = model.train(
    x_train, y_train,
    optim=lamina.optimizer("Adam", lr=0.001),
    loss="CrossEntropy",
    epochs=200,
    batch_size=32,
    validation_split=0.1,
    metrics=["accuracy"],
    callbacks=[lamina.callback("EarlyStopping", monitor="val_loss", patience=10)],
    verbose=False,
)
result = model.evaluate(x_test, y_test, metrics=["accuracy"])
print(f"epochs run: {len(history)} (the weights of the best validation epoch are kept)")
print(f"test loss: {result['loss']:.4f}")
print(f"test accuracy: {result['accuracy']:.4f}")
