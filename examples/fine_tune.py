"""Transfer learning on the 8x8 digits: a CNN that learned to tell the ten digits apart is reused
for a new task, odd or even, learned from only 20 labelled images.

    python examples/fine_tune.py

1. pretrain: the CNN learns the ten digits from half of the training images; its weights are
   saved alone (model.save_weights: a .safetensors file, by name).
2. from scratch: the same CNN with a two-class head learns odd/even from 20 other images.
3. fine-tune: a model of the same body and a new two-class head; the pretrained weights are
   loaded but the head's (load_state_dict(strict=False) reports the head as mismatched: 10
   classes in the file, 2 in the model), the body is frozen (layer.trainable = False) and only
   the head trains on the same 20 images.
Test accuracies (the same test images for all) are printed, and returned by main().
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import lamina

EPOCHS = 40


def body() -> list:
    """The convolutional body: (1, 8, 8) images to 64 features."""
    return [
        lamina.layer("Conv2D", 16, 3, padding="same"), "Relu", lamina.layer("MaxPool2D", 2),
        lamina.layer("Conv2D", 32, 3, padding="same"), "Relu", lamina.layer("MaxPool2D", 2),
        "Flatten", lamina.layer("Linear", 64), "Relu",
    ]


def head(classes: int) -> list:
    return [lamina.layer("Linear", classes)]


def accuracy(model: lamina.Model, x, y) -> float:
    return float((model.predict(x).argmax(axis=1) == y).mean())


def train(model: lamina.Model, x, y, epochs: int = EPOCHS, lr: float = 0.003) -> None:
    model.train(x, y, optim=lamina.optimizer("Adam", lr=lr), loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=epochs, batch_size=16, verbose=False)


def main(folder: Path, labelled: int = 20) -> dict[str, float]:
    lamina.seed(0)
    x, y, x_test, y_test = lamina.dataset("digits", flatten=False)
    half = len(x) // 2
    x_few, odd_few, odd_test = x[half : half + labelled], y[half : half + labelled] % 2, y_test % 2

    pretrained = lamina.Model([*body(), *head(10)])
    train(pretrained, x[:half], y[:half])
    weights = pretrained.save_weights(folder / "digits.safetensors")
    results = {"pretrained: the ten digits": accuracy(pretrained, x_test, y_test)}

    scratch = lamina.Model([*body(), *head(2)])
    train(scratch, x_few, odd_few)
    results[f"odd/even from scratch ({labelled} images)"] = accuracy(scratch, x_test, odd_test)

    tuned = lamina.Model([*body(), *head(2)])
    tuned.build(x_few[:1])
    report = tuned.load_weights(weights, strict=False)  # all but the head, whose shape differs
    print(f"loaded: {report}")
    for layer in tuned.layers[:-1]:
        layer.trainable = False
    print(tuned.summary().splitlines()[-1])
    results["odd/even, pretrained body, head not trained yet"] = accuracy(tuned, x_test, odd_test)
    train(tuned, x_few, odd_few)
    results[f"odd/even fine-tuned, body frozen ({labelled} images)"] = accuracy(tuned, x_test, odd_test)
    return results


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for what, score in main(Path(folder)).items():
            print(f"{what}: test accuracy {score:.3f}")
