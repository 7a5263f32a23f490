"""lamina against PyTorch on the CPU: the same networks, data and hyper-parameters, side by side.

    python benchmarks/run.py            # the full suite (a few minutes)
    python benchmarks/run.py --quick    # fewer rounds, smaller MNIST-size data

Each case is built in lamina, in PyTorch (torch==2.13.0, the CPU wheel: pip install -e
".[torch]") and, for the MNIST-size MLP, by hand in plain numpy. The contenders run in turn,
whole runs at a time (never interleaved single calls: numpy's and torch's thread pools would
fight on two cores), and the table shows the median and min-max seconds per run, the ratio of
medians lamina / PyTorch against its target, and for the large cases the achieved GFLOP/s as a
percentage of this machine's measured float32 matrix-product peak.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cnn_step  # noqa: E402
from common import alternate, lamina_mlp, machine, mnist_like, summary  # noqa: E402

import lamina  # noqa: E402

try:
    import torch
except ImportError:  # the table then shows lamina and numpy only
    torch = None


# -- data -----------------------------------------------------------------------------------------


def xor_data():
    x = np.array([[0, 1], [0, 0], [1, 1], [1, 0]], dtype=np.float32)
    return x, np.array([[1], [0], [0], [1]], dtype=np.float32)


def digits_data():
    x, y, _, _ = lamina.dataset("digits")
    return x, y


# -- lamina ---------------------------------------------------------------------------------------


def lamina_xor(epochs: int):
    x, y = xor_data()
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 8), "Relu", lamina.layer("Linear", 4), "Sigmoid", lamina.layer("Linear", 1), "Sigmoid"])
    optim, loss = lamina.optimizer("SGD", lr=0.6), lamina.loss("MSE")
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=epochs, verbose=False)


def lamina_classifier(sizes: list[int], x: np.ndarray, y: np.ndarray, batch: int, epochs: int, lr: float):
    lamina.seed(0)
    model = lamina_mlp(sizes)
    optim, loss = lamina.optimizer("SGD", lr=lr), lamina.loss("CrossEntropy", from_logits=True)
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=epochs, batch_size=batch, verbose=False)


# -- PyTorch --------------------------------------------------------------------------------------


def torch_mlp(sizes: list[int]):
    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_xor(epochs: int):
    x, y = (torch.from_numpy(a) for a in xor_data())
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4), torch.nn.Sigmoid(),
        torch.nn.Linear(4, 1), torch.nn.Sigmoid(),
    )
    optim = torch.optim.SGD(model.parameters(), lr=0.6)

    def run():
        for _ in range(epochs):
            optim.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optim.step()

    return run


def torch_classifier(sizes: list[int], x: np.ndarray, y: np.ndarray, batch: int, epochs: int, lr: float):
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch_mlp(sizes)
    optim = torch.optim.SGD(model.parameters(), lr=lr)

    def run():
        for _ in range(epochs):
            order = torch.randperm(len(tx))
            for start in range(0, len(tx), batch):
                index = order[start : start + batch]
                optim.zero_grad()
                torch.nn.functional.cross_entropy(model(tx[index]), ty[index]).backward()
                optim.step()

    return run


# -- plain numpy, written by hand -------------------------------------------------------------------


def numpy_classifier(sizes: list[int], x: np.ndarray, y: np.ndarray, batch: int, epochs: int, lr: float):
    """The same MLP by hand: float32, He init, fused softmax/cross-entropy gradient, in-place SGD,
    no input gradient for the first layer, one permutation per epoch."""
    generator = np.random.default_rng(0)
    weights = [
        generator.uniform(-1, 1, size=(a, b)).astype(np.float32) * np.float32(np.sqrt(6 / a))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    biases = [np.zeros(b, dtype=np.float32) for b in sizes[1:]]

    def run():
        for _ in range(epochs):
            order = generator.permutation(len(x))
            for start in range(0, len(x), batch):
                index = order[start : start + batch]
                xb, yb = x[index], y[index]
                inputs, h = [], xb
                for i, (w, b) in enumerate(zip(weights, biases)):
                    inputs.append(h)
                    h = h @ w + b
                    if i < len(weights) - 1:
                        np.maximum(h, 0, out=h)
                p = np.exp(h - h.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                p[np.arange(len(yb)), yb] -= 1
                g = p * np.float32(1 / len(yb))
                for i in range(len(weights) - 1, -1, -1):
                    gw, gb = inputs[i].T @ g, g.sum(axis=0)
                    if i:
                        g = (g @ weights[i].T) * (inputs[i] > 0)
                    weights[i] -= lr * gw
                    biases[i] -= lr * gb

    return run


# -- the suite ------------------------------------------------------------------------------------


def gemm_peak() -> float:
    """Measured float32 matrix-product GFLOP/s of numpy on this machine (best of several)."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    best = float("inf")
    for _ in range(30):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 1024**3 / best / 1e9


def mlp_flops(sizes: list[int], rows: int) -> float:
    """Matrix-product FLOPs of one epoch: forward, weight gradients, and input gradients except
    for the first layer's."""
    per_row = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    first = 2 * sizes[0] * sizes[1]
    return rows * (3 * per_row - first)


def cases(quick: bool) -> list[dict]:
    rows = 12_000 if quick else 60_000
    mnist = mnist_like(rows)
    digits = digits_data()
    big = [784, 512, 256, 10]
    both = lambda build, *args: {"lamina": build[0](*args), **({"pytorch": build[1](*args)} if torch else {})}  # noqa: E731
    classifier = (lamina_classifier, torch_classifier)
    return [
        {"name": "XOR 2-8-4-1, full batch, 400 epochs", "target": 0.33,
         "contenders": both((lamina_xor, torch_xor), 400)},
        {"name": "digits MLP 64-128-10, batch 32, 10 epochs", "target": 0.35,
         "contenders": both(classifier, [64, 128, 10], *digits, 32, 10, 0.1)},
        {"name": f"MNIST-size 784-512-256-10, {rows:,} rows, batch 128, 1 epoch", "target": 1.05,
         "contenders": {**both(classifier, big, *mnist, 128, 1, 0.01), "numpy": numpy_classifier(big, *mnist, 128, 1, 0.01)},
         "flops": mlp_flops(big, rows), "numpy_target": 1.10},
        {"name": f"MNIST-size 784-512-256-10, {rows:,} rows, batch 1024, 1 epoch", "target": 1.15,
         "contenders": both(classifier, big, *mnist, 1024, 1, 0.01), "flops": mlp_flops(big, rows)},
        {"name": "LeNet CNN step, (64,1,28,28), Conv2D(16,5)-Pool-Conv2D(32,5)-Pool-Linear", "target": 1.3,
         "contenders": cnn_contenders()},
    ]


def cnn_contenders() -> dict[str, Callable[[], object]]:
    generator = np.random.default_rng(0)
    x = generator.normal(size=(64, 1, 28, 28)).astype(np.float32)
    y = generator.integers(0, 10, size=64)
    contenders = {"lamina": cnn_step.lamina_step(x, y)}
    if torch:
        contenders["pytorch"] = cnn_step.torch_step(x, y)
    return contenders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and 12,000 MNIST-size rows")
    args = parser.parse_args(argv)
    peak = gemm_peak()
    print(f"{machine()}\nfloat32 GEMM peak (numpy, 1024^3, best of 30 before the suite): {peak:.1f} GFLOP/s\n")
    header = f"{'case':72s} {'contender':8s} {'median s':>9s} {'min-max s':>17s} {'ratio':>6s} {'target':>7s} {'%peak':>6s}"
    print(header)
    print("-" * len(header))
    for case in cases(args.quick):
        big = "flops" in case
        rounds, repeats = (2, 1) if args.quick else ((6, 1) if big else (5, 3))
        times = alternate(case["contenders"], rounds=rounds, repeats=repeats)
        reference = summary(times["pytorch"])[0] if "pytorch" in times else None
        for name, values in times.items():
            median, low, high = (v / 1e3 for v in summary(values))
            ratio, target = "", ""
            if name == "lamina" and reference:
                ratio, target = f"{median / (reference / 1e3):.2f}", f"<={case['target']}"
                best = summary(values)[1] / summary(times["pytorch"])[1]
            if name == "numpy":
                ratio, target = f"{summary(times['lamina'])[0] / summary(values)[0]:.2f}", f"<={case['numpy_target']}"
                name = "numpy*"
            percent = f"{case['flops'] / median / 1e9 / peak * 100:.0f}%" if big else ""
            print(f"{case['name'][:72]:72s} {name:8s} {median:9.4f} {low:8.4f}-{high:<8.4f} {ratio:>6s} {target:>7s} {percent:>6s}")
        if reference:
            print(f"{'':72s} lamina / pytorch by minimums: {best:.2f}")
        if "numpy" in times:
            print(f"{'':72s} lamina / numpy by minimums: {summary(times['lamina'])[1] / summary(times['numpy'])[1]:.2f}")
        print()
    print("ratio: lamina / PyTorch by medians (for numpy*: lamina / hand-written numpy).")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
