"""Class weights on imbalanced data: the digits with 3, 5 and 8 made rare (5% of their
training images kept), trained twice: unweighted, and with class_weight="balanced" (each
class weighs n / (10 * its count), so the rare ones count as much as the rest in the loss).
Per-class recall on the full test split shows what the weights change.

    python examples/imbalanced_digits.py [SEED]
"""
from __future__ import annotations

import sys

import numpy as np

import lamina

MINORITY = (3, 5, 8)
KEEP = 0.05  # the share of the minority classes' training rows kept


def recall(model: lamina.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class recall: the share of each class's test images predicted as that class."""
    predicted = model.predict(x).argmax(axis=1)
    return np.array([np.mean(predicted[y == c] == c) for c in range(10)])


def main(seed: int = 0) -> dict[str, np.ndarray]:
    lamina.seed(seed)
    x_train, y_train, x_test, y_test = lamina.dataset("digits", seed=seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 0.1
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    # an imbalanced training set: keep KEEP of the minority classes' rows (at least 2 each)
    pick = np.random.default_rng(seed)
    keep = np.ones(len(y_train), dtype=bool)
    for c in MINORITY:
        rows = np.flatnonzero(y_train == c)
        keep[pick.choice(rows, len(rows) - max(2, int(len(rows) * KEEP)), replace=False)] = False
    x_train, y_train = x_train[keep], y_train[keep]
    print("training images per class:", np.bincount(y_train, minlength=10).tolist())

    results = {}
    for name, class_weight in (("unweighted", None), ("balanced", "balanced")):
        lamina.seed(seed)
        model = lamina.Model([{"type": "Linear", "units": 10}, "Softmax"])
        model.train(x_train, y_train, optim=lamina.optimizer("SGD", lr=0.05), loss="CrossEntropy", epochs=15,
                    batch_size=32, class_weight=class_weight, verbose=False)
        results[name] = recall(model, x_test, y_test)
    print("recall per class " + " ".join(f"{c:>5}" for c in range(10)))
    for name, values in results.items():
        print(f"{name:>16} " + " ".join(f"{v:5.2f}" for v in values))
    for name, values in results.items():
        print(f"{name}: minority recall {values[list(MINORITY)].mean():.3f}, "
              f"others {np.delete(values, MINORITY).mean():.3f}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
