"""What writing only the forward costs: forward-only layers against the hand-written built-ins,
and a skip connection against the same layers without it, trained side by side.

    python benchmarks/autodiff.py            # 60,000 MNIST-size rows (a few minutes)
    python benchmarks/autodiff.py --quick    # 12,000 rows, fewer rounds

The contenders alternate, whole training runs at a time, in this one process; the table shows
the median and min-max seconds per run and the ratio of medians (and of minimums, the closest
to an undisturbed run on a noisy host) against the issue's target.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ForwardMaximumRelu,
    alternate,
    forward_only_mlp,
    lamina_mlp,
    machine,
    mnist_like,
    residual_mlp,
    summary,
)

import lamina  # noqa: E402


def trainer(make, x, y, batch: int, epochs: int, lr: float):
    lamina.seed(0)
    model = make()
    optim, loss = lamina.optimizer("SGD", lr=lr), lamina.loss("CrossEntropy", from_logits=True)
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=epochs, batch_size=batch, verbose=False)


def cases(quick: bool) -> list[dict]:
    rows = 12_000 if quick else 60_000
    digits = lamina.dataset("digits")[:2]
    mnist = mnist_like(rows)
    big = [784, 512, 256, 10]
    return [
        {"name": "digits MLP 64-128-10, batch 32, 10 epochs", "target": 1.5, "contenders": {
            "built-in": trainer(lambda: lamina_mlp([64, 128, 10]), *digits, 32, 10, 0.1),
            "forward-only": trainer(lambda: forward_only_mlp([64, 128, 10]), *digits, 32, 10, 0.1),
            "np.maximum": trainer(lambda: forward_only_mlp([64, 128, 10], ForwardMaximumRelu), *digits, 32, 10, 0.1)}},
        {"name": f"MNIST-size 784-512-256-10, {rows:,} rows, batch 128, 1 epoch", "target": 1.1, "contenders": {
            "built-in": trainer(lambda: lamina_mlp(big), *mnist, 128, 1, 0.01),
            "forward-only": trainer(lambda: forward_only_mlp(big), *mnist, 128, 1, 0.01)}},
        {"name": f"MLP 784-256-[256 x 4]-10, {rows:,} rows, batch 128, 1 epoch", "target": 1.1, "contenders": {
            "no skip": trainer(lambda: residual_mlp(256, 4, 10, skip=False), *mnist, 128, 1, 0.01),
            "Residual": trainer(lambda: residual_mlp(256, 4, 10), *mnist, 128, 1, 0.01)}},
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12,000 MNIST-size rows and fewer rounds")
    args = parser.parse_args(argv)
    print(machine())
    header = f"{'case':58} {'contender':13} {'median s':>9} {'min-max s':>17} {'ratio':>6} {'by mins':>7} {'target':>7}"
    print(header)
    print("-" * len(header))
    for case in cases(args.quick):
        small = "digits" in case["name"]
        rounds, repeats = (9, 3) if small else ((3, 1) if args.quick else (5, 1))
        times = alternate(case["contenders"], rounds, repeats)
        base = next(iter(times.values()))
        for name, values in times.items():
            median, low, high = (v / 1e3 for v in summary(values))
            extra = ""
            if values is not base:
                ratio = statistics.median(values) / statistics.median(base)
                extra = f"{ratio:6.2f} {min(values) / min(base):7.2f} {'<=' + format(case['target'], 'g'):>7}"
            print(f"{case['name']:58} {name:13} {median:9.4f} {low:8.4f}-{high:8.4f} {extra}")
        print()
    print("ratio: each contender / the first, by medians (and by minimums). forward-only: Linear as")
    print("x @ weight + bias and Relu as lamina.ops.relu(x), backward derived; np.maximum: Relu as np.maximum(x, 0).")


if __name__ == "__main__":
    main()
