"""What a graph model costs per training step over the same layers in a chain.

    python benchmarks/graph_step.py [--quick]

The same MLP (784-512-256-10, Relu between, batch 128, CrossEntropy from logits, SGD) built twice:
as `Model([...])` (a chain) and as `Model(inputs=Input((784,)), outputs=...)` (a graph of the same
layer instances' twins, the same weights). One step = one epoch of one full batch through train().
A graph does no fused softmax/loss backward and keeps one saved state per node; the ratio is
graph / chain by medians.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, machine, summary  # noqa: E402

import lamina  # noqa: E402

SIZES = (784, 512, 256, 10)


def layers() -> list[lamina.Layer]:
    lamina.seed(0)
    made: list[lamina.Layer] = []
    for i, units in enumerate(SIZES[1:]):
        made.append(lamina.layer("Linear", units))
        if i < len(SIZES) - 2:
            made.append(lamina.layer("Relu"))
    return made


def chain() -> lamina.Model:
    return lamina.Model(layers())


def graph() -> lamina.Model:
    x = lamina.Input((SIZES[0],))
    h = x
    for layer in layers():
        h = layer(h)
    return lamina.Model(inputs=x, outputs=h)


def stepper(model: lamina.Model, x: np.ndarray, y: np.ndarray):
    loss, optim = lamina.loss("CrossEntropy", from_logits=True), lamina.optimizer("SGD", lr=0.01)
    return lambda: model.train(x, y, optim=optim, loss=loss, epochs=1, verbose=False)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((128, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=128)
    contenders = {"chain": stepper(chain(), x, y), "graph": stepper(graph(), x, y)}
    rounds, repeats = (2, 5) if args.quick else (7, 20)
    results = alternate(contenders, rounds=rounds, repeats=repeats)
    print(machine())
    print(f"one training step, MLP {'-'.join(map(str, SIZES))}, batch 128")
    for name, times in results.items():
        median, low, high = summary(times)
        print(f"  {name:6s} {median:8.3f} ms  ({low:.3f}-{high:.3f})")
    ratio = summary(results["graph"])[0] / summary(results["chain"])[0]
    print(f"  graph / chain by medians: {ratio:.2f}")
    return results


if __name__ == "__main__":
    main()
