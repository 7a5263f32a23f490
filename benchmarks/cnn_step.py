"""One training step of convolutions, lamina against PyTorch on the CPU, side by side:

- a LeNet-style CNN on (64, 1, 28, 28) float32 images: Conv2D(16, 5, padding=2), Relu,
  MaxPool2D(2), Conv2D(32, 5, padding=2), Relu, MaxPool2D(2), Flatten, Linear(10); softmax
  cross-entropy from logits, plain SGD; the same data and shapes for both;
- Conv1D(64, 5) on (64, 32, 256) float32 sequences as a model's first layer (forward, then
  backward with no input gradient), as in benchmarks/sequences.py;
- with --epoch, one MNIST-size epoch of the CNN: 60,000 synthetic (1, 28, 28) rows, batch 64,
  shuffled (model.train for lamina, a loop over shuffled index batches for PyTorch).

    python benchmarks/cnn_step.py [--quick] [--only CNN|Conv1D|epoch] [--epoch]
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, machine, summary  # noqa: E402

import lamina  # noqa: E402


def lamina_step(x: np.ndarray, y: np.ndarray, batch_size: int | None = None) -> Callable[[], object]:
    """model.train for one epoch over (x, y): one step when batch_size is None (one full batch)."""
    lamina.seed(0)
    model = lamina.Model([
        lamina.layer("Conv2D", 16, 5, padding=2), lamina.layer("Relu"), lamina.layer("MaxPool2D", 2),
        lamina.layer("Conv2D", 32, 5, padding=2), lamina.layer("Relu"), lamina.layer("MaxPool2D", 2),
        lamina.layer("Flatten"), lamina.layer("Linear", 10),
    ])
    # One epoch of one full batch is exactly one step; train() adds only its fixed bookkeeping.
    loss, optim = lamina.loss("CrossEntropy", from_logits=True), lamina.optimizer("SGD", lr=0.01)
    size = len(x) if batch_size is None else batch_size
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=1, batch_size=size, verbose=False)


def torch_step(x: np.ndarray, y: np.ndarray, batch_size: int | None = None) -> Callable[[], object]:
    """The same model and epoch in PyTorch: batches of shuffled indices, as model.train's."""
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def batch(bx: torch.Tensor, by: torch.Tensor) -> None:
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(bx), by).backward()
        optim.step()

    if batch_size is None:
        return lambda: batch(tx, ty)

    def epoch() -> None:
        order = torch.randperm(len(tx))
        for start in range(0, len(tx), batch_size):
            rows = order[start : start + batch_size]
            batch(tx[rows], ty[rows])

    return epoch


def lamina_conv1d_step(x: np.ndarray) -> Callable[[], object]:
    """Conv1D(64, 5) as a model's first layer: forward, backward, no input gradient."""
    lamina.seed(0)
    layer = lamina.layer("Conv1D", 64, 5)
    layer.training = True
    layer.needs_input_grad = False
    grad = np.random.default_rng(1).normal(size=layer(x).shape).astype(np.float32)

    def step() -> None:
        layer(x)
        layer.backward(grad)

    return step


def torch_conv1d_step(x: np.ndarray) -> Callable[[], object]:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Conv1d(x.shape[1], 64, 5)
    tx = torch.from_numpy(x)
    grad = torch.from_numpy(np.random.default_rng(1).normal(size=tuple(module(tx).shape)).astype(np.float32))

    def step() -> None:
        module.zero_grad(set_to_none=False)
        module(tx).backward(grad)

    return step


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", default="", help="run the cases whose name contains this text (CNN or Conv1D)")
    parser.add_argument("--epoch", action="store_true", help="also an MNIST-size epoch of the CNN (60,000 rows)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, size=64)
    signal = rng.normal(size=(64, 32, 256)).astype(np.float32)
    cases: dict[str, tuple[Callable[[], Callable[[], object]], Callable[[], Callable[[], object]]]] = {
        "LeNet-style CNN training step, batch (64, 1, 28, 28)":
            (lambda: lamina_step(images, labels), lambda: torch_step(images, labels)),
        "Conv1D(64, 5) step, x (64, 32, 256), first layer":
            (lambda: lamina_conv1d_step(signal), lambda: torch_conv1d_step(signal)),
    }
    if args.epoch:  # synthetic data costs what MNIST's does: the same shapes and dtype
        rows = 12_000 if args.quick else 60_000
        digits = rng.random((rows, 1, 28, 28), dtype=np.float32)
        classes = rng.integers(0, 10, size=rows)
        cases[f"LeNet-style CNN epoch, {rows:,} MNIST-size rows, batch 64, shuffled"] = (
            lambda: lamina_step(digits, classes, 64), lambda: torch_step(digits, classes, 64))
    print(machine())
    results = {}
    for name, (ours, theirs) in cases.items():
        if args.only.lower() not in name.lower():
            continue
        contenders = {"lamina": ours()}
        try:
            contenders["pytorch"] = theirs()
        except ImportError:
            print("PyTorch is not installed: pip install -e '.[torch]' (torch==2.13.0)")
        epoch = "epoch" in name
        times = alternate(contenders, rounds=2 if epoch else 3 if args.quick else 10,
                          repeats=1 if epoch else 5 if args.quick else 20)
        print(name)
        for who, values in times.items():
            median, low, high = summary(values)
            print(f"  {who:8s} median {median:7.2f} ms   (min {low:.2f}, max {high:.2f})")
        if "pytorch" in times:
            ratio = summary(times["lamina"])[0] / summary(times["pytorch"])[0]
            best = summary(times["lamina"])[1] / summary(times["pytorch"])[1]
            print(f"  lamina / pytorch = {ratio:.2f} by medians (target <= 1.3), {best:.2f} by minimums")
        results[name] = times
    return results


if __name__ == "__main__":
    main()
