"""Handwritten digits as (1, 8, 8) images: a small CNN (Conv2D, Relu, MaxPool2D, Flatten,
Dropout, Linear) with Adam and early stopping, evaluated on a held-out test split.

    python examples/digits_cnn.py [SEED]
"""
import sys

import lamina

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
lamina.seed(seed)

# (n, 1, 8, 8) images with pixels scaled to [0, 1]; a seeded 20% is held out.
x_train, y_train, x_test, y_test = lamina.dataset("digits", flatten=False, seed=seed)

model = lamina.Model([
    {"type": "Conv2D", "filters": 32, "kernel_size": 3, "padding": "same"},
    "Relu",
    {"type": "MaxPool2D", "pool_size": 2},             # -> (32, 4, 4)
    {"type": "Conv2D", "filters": 64, "kernel_size": 3, "padding": "same"},
    "Relu",
    {"type": "MaxPool2D", "pool_size": 2},             # -> (64, 2, 2)
    "Flatten",
    {"type": "Dropout", "rate": 0.3},
    {"type": "Linear", "units": 10},
])
history = model.train(
    x_train, y_train,
    optim=lamina.optimizer("Adam", lr=0.002),
    loss=lamina.loss("CrossEntropy", from_logits=True),
    epochs=60,
    batch_size=32,
    validation_split=0.1,
    metrics=["accuracy"],
    callbacks=[lamina.callback("EarlyStopping", monitor="val_loss", patience=8)],
    verbose=False,
)
print(model.summary())
result = model.evaluate(x_test, y_test, metrics=["accuracy"])
print(f"epochs run: {len(history)} (the weights of the best validation epoch are kept)")
print(f"test loss: {result['loss']:.4f}")
print(f"test accuracy: {result['accuracy']:.4f}")
