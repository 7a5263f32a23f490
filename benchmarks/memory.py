"""Memory of training: resident memory after each epoch, peak, and the data's own size.

    python benchmarks/memory.py [--epochs 10] [--rows 60000] [--model built-in|forward-only|residual]

Trains the MNIST-size MLP (784-512-256-10, batch 128) in lamina alone, in this process, and
prints the resident set size after every epoch: it must not grow with the number of steps.
`--model forward-only` builds it from forward-only layers (each step records a graph and frees
it); `--model residual` trains 784-512-[512 x 2 in Residual blocks]-10.
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import forward_only_mlp, lamina_mlp, machine, mnist_like, residual_mlp  # noqa: E402

import lamina  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class Resident(lamina.Callback):
    def on_train_begin(self, logs=None):
        self.values = []

    def on_epoch_end(self, epoch, logs):
        self.values.append(rss_mib())


MODELS = {
    "built-in": lambda: lamina_mlp([784, 512, 256, 10]),
    "forward-only": lambda: forward_only_mlp([784, 512, 256, 10]),
    "residual": lambda: residual_mlp(512, 2, 10),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--model", choices=list(MODELS), default="built-in")
    args = parser.parse_args(argv)
    x, y = mnist_like(args.rows)
    before = rss_mib()
    lamina.seed(0)
    model = MODELS[args.model]()
    resident = Resident()
    model.train(x, y, optim=lamina.optimizer("SGD", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=args.epochs, batch_size=128, callbacks=[resident], verbose=False)
    model.predict(x[:1000])
    print(machine())
    print(f"model: {args.model}, {sum(p.size for p in model.parameters().values()):,} parameters")
    print(f"data: x {x.nbytes / 2**20:.0f} MiB + y {y.nbytes / 2**20:.1f} MiB; resident before training {before:.0f} MiB")
    print("resident after each epoch (MiB): " + ", ".join(f"{v:.0f}" for v in resident.values))
    if len(resident.values) >= 10:
        print(f"growth from epoch 2 to epoch 10: {resident.values[9] - resident.values[1]:+.1f} MiB")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
