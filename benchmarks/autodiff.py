"""What writing only the forward costs: forward-only layers against the hand-written built-ins,
and a skip connection against the same layers without it, trained side by side.

    python benchmarks/autodiff.py            # 60,000 MNIST-size rows (a few minutes)
    python benchmarks/autodiff.py --quick    # 12,000 rows, fewer rounds
    python benchmarks/autodiff.py --gru      # only the forward-only GRU loop against torch.nn.GRU

The GRU case is one training step (forward and backward, batch 64, time 40, features 40, units 64)
of a GRU written forward-only as a plugin author would (a Python loop over time steps), of
torch.nn.GRU and of lamina's hand-written GRU, one thread each (torch.set_num_threads(1); numpy's
products at these sizes run on one thread).

The contenders alternate, whole training runs at a time, in this one process; the table shows
the median and min-max seconds per run and the ratio of medians (and of minimums, the closest
to an undisturbed run on a noisy host) against the issue's target.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

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


class ForwardGRU(lamina.Layer):
    """torch.nn.GRU's formulas written forward-only in numpy, as a plugin author would: a loop over time steps."""

    def __init__(self, units: int) -> None:
        self.units = units

    def build(self, x: np.ndarray) -> None:
        init = lamina.initializer("glorot_uniform")
        n = self.units
        self.w = lamina.Parameter(init((x.shape[-1], 3 * n), x.dtype))
        self.u = lamina.Parameter(init((n, 3 * n), x.dtype))
        self.bi = lamina.Parameter(np.zeros(3 * n, x.dtype))
        self.bh = lamina.Parameter(np.zeros(3 * n, x.dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = self.units
        h = np.zeros((x.shape[0], n), dtype=x.dtype)
        for t in range(x.shape[1]):
            gx, gh = x[:, t] @ self.w + self.bi, h @ self.u + self.bh
            r = lamina.ops.sigmoid(gx[:, :n] + gh[:, :n])
            z = lamina.ops.sigmoid(gx[:, n : 2 * n] + gh[:, n : 2 * n])
            new = np.tanh(gx[:, 2 * n :] + r * gh[:, 2 * n :])
            h = (1 - z) * new + z * h
        return h


def layer_step(make, x: np.ndarray):
    """One training step of a first layer: forward, then backward of a fixed gradient (no input gradient)."""
    lamina.seed(0)
    layer = make()
    layer.training, layer.needs_input_grad = True, False
    grad = np.random.default_rng(1).normal(size=layer(x).shape).astype(x.dtype)
    return lambda: (layer(x), layer.backward(grad))


def torch_gru_step(x: np.ndarray):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    module, tx = torch.nn.GRU(x.shape[-1], 64, batch_first=True), torch.from_numpy(x)
    grad = torch.from_numpy(np.random.default_rng(1).normal(size=(1, x.shape[0], 64)).astype(x.dtype))

    def step() -> None:
        module.zero_grad(set_to_none=False)
        module(tx)[1].backward(grad)

    return step


def gru_case() -> dict:
    seq = np.random.default_rng(0).normal(size=(64, 40, 40)).astype(np.float32)
    contenders = {"torch.nn.GRU": torch_gru_step(seq)} if _has_torch() else {}
    contenders["forward-only"] = layer_step(lambda: ForwardGRU(64), seq)
    contenders["built-in GRU"] = layer_step(lambda: lamina.layer("GRU", 64), seq)
    return {"name": "GRU step, batch 64, time 40, features 40, 64 units", "target": 1.5, "contenders": contenders}


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


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
    parser.add_argument("--gru", action="store_true", help="only the forward-only GRU against torch.nn.GRU")
    args = parser.parse_args(argv)
    print(machine())
    header = f"{'case':58} {'contender':13} {'median s':>9} {'min-max s':>17} {'ratio':>6} {'by mins':>7} {'target':>7}"
    print(header)
    print("-" * len(header))
    for case in [gru_case()] if args.gru else [*cases(args.quick), gru_case()]:
        small = "digits" in case["name"] or "GRU" in case["name"]
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
    print("GRU: ratios against torch.nn.GRU's step (forward-only: a loop over time steps, backward derived).")


if __name__ == "__main__":
    main()
