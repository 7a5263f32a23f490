"""One training step of a small CNN, lamina against PyTorch on the CPU, side by side.

    python benchmarks/cnn_step.py [--quick]

Conv2D(16, 3), Relu, MaxPool2D(2), Flatten, Linear(10) on (64, 1, 28, 28) float32 inputs,
softmax cross-entropy from logits, plain SGD; the same data and shapes for both.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, machine, summary  # noqa: E402

import lamina  # noqa: E402


def lamina_step(x: np.ndarray, y: np.ndarray):
    lamina.seed(0)
    model = lamina.Model([
        lamina.layer("Conv2D", 16, 3), lamina.layer("Relu"), lamina.layer("MaxPool2D", 2),
        lamina.layer("Flatten"), lamina.layer("Linear", 10),
    ])
    # One epoch of one full batch is exactly one step; train() adds only its fixed bookkeeping.
    loss, optim = lamina.loss("CrossEntropy", from_logits=True), lamina.optimizer("SGD", lr=0.01)
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=1, verbose=False)


def torch_step(x: np.ndarray, y: np.ndarray):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 13 * 13, 10),
    )
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty).backward()
        optim.step()

    return step


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    contenders = {"lamina": lamina_step(x, y)}
    try:
        contenders["pytorch"] = torch_step(x, y)
    except ImportError:
        print("PyTorch is not installed: pip install -e '.[torch]' (torch==2.13.0)")
    times = alternate(contenders, rounds=3 if args.quick else 10, repeats=5 if args.quick else 20)
    print(f"CNN training step, batch (64, 1, 28, 28) -- {machine()}")
    for name, values in times.items():
        median, low, high = summary(values)
        print(f"  {name:8s} median {median:7.2f} ms   (min {low:.2f}, max {high:.2f})")
    if "pytorch" in times:
        ratio = summary(times["lamina"])[0] / summary(times["pytorch"])[0]
        best = summary(times["lamina"])[1] / summary(times["pytorch"])[1]
        print(f"  lamina / pytorch = {ratio:.2f} by medians (target <= 1.3), {best:.2f} by minimums")
    return times


if __name__ == "__main__":
    main()
