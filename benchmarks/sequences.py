"""Sequence layers against PyTorch on the CPU: one training step (forward and backward, float32)
of GRU, LSTM, TransformerBlock and Conv1D, side by side in one process.

    python benchmarks/sequences.py              # 7 rounds x 10 steps per contender
    python benchmarks/sequences.py --quick      # 3 rounds
    python benchmarks/sequences.py --only LSTM  # the cases whose name contains LSTM

The contenders alternate whole blocks of steps (never single calls: numpy's and torch's thread
pools would fight on two cores); the table shows the median and min-max milliseconds per step,
the ratio lamina / PyTorch by medians and by minimums, and the issue's target.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, machine, summary  # noqa: E402

import lamina  # noqa: E402

try:
    import torch
except ImportError:  # the table then shows lamina alone
    torch = None


def lamina_step(layer: lamina.Layer, x: np.ndarray) -> Callable[[], object]:
    """One step of `layer` on `x` as the first layer of a model: forward, backward, no input gradient."""
    layer.training = True
    layer.needs_input_grad = False
    out = layer(x)
    grad = np.random.default_rng(1).normal(size=out.shape).astype(np.float32)

    def step() -> None:
        layer(x)
        layer.backward(grad)

    return step


def torch_step(module, x: np.ndarray, select: Callable = lambda out: out) -> Callable[[], object]:
    tx = torch.from_numpy(x)
    out = select(module(tx))
    grad = torch.from_numpy(np.random.default_rng(1).normal(size=tuple(out.shape)).astype(np.float32))

    def step() -> None:
        module.zero_grad(set_to_none=False)
        select(module(tx)).backward(grad)

    return step


def cases() -> list[dict]:
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(64, 50, 32)).astype(np.float32)          # batch 64, time 50, features 32
    tokens = rng.normal(size=(32, 64, 128)).astype(np.float32)      # batch 32, time 64, embed 128
    signal = rng.normal(size=(64, 32, 256)).astype(np.float32)      # batch 64, channels 32, length 256
    found = [
        {"name": "GRU(128) step, x (64, 50, 32), last step", "target": 1.2,
         "lamina": lambda: lamina_step(lamina.layer("GRU", 128), seq),
         "pytorch": lambda: torch_step(torch.nn.GRU(32, 128, batch_first=True), seq, lambda out: out[1])},
        {"name": "LSTM(128) step, x (64, 50, 32), last step", "target": 1.2,
         "lamina": lambda: lamina_step(lamina.layer("LSTM", 128), seq),
         "pytorch": lambda: torch_step(torch.nn.LSTM(32, 128, batch_first=True), seq, lambda out: out[1][0])},
        {"name": "TransformerBlock(4 heads, ff 512) step, x (32, 64, 128)", "target": 1.5,
         "lamina": lambda: lamina_step(lamina.layer("TransformerBlock", 4, 512, dropout=0.0), tokens),
         "pytorch": lambda: torch_step(torch.nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu",
                                                                       batch_first=True, norm_first=True), tokens)},
    ]
    if "Conv1D" in {info.name for info in lamina.get_registry().plugins("layer")}:
        found.append({"name": "Conv1D(64, 5) step, x (64, 32, 256)", "target": 1.3,
                      "lamina": lambda: lamina_step(lamina.layer("Conv1D", 64, 5), signal),
                      "pytorch": lambda: torch_step(torch.nn.Conv1d(32, 64, 5), signal)})
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--only", default="", help="run the cases whose name contains this text (e.g. LSTM)")
    args = parser.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(2)
    print(machine())
    header = f"{'case':58} {'contender':9} {'median ms':>10} {'min-max ms':>17} {'ratio':>6} {'by mins':>7} {'target':>7}"
    print(header)
    print("-" * len(header))
    for case in cases():
        if args.only not in case["name"]:
            continue
        lamina.seed(0)
        contenders = {"lamina": case["lamina"]()}
        if torch is not None:
            torch.manual_seed(0)
            contenders["pytorch"] = case["pytorch"]()
        times = alternate(contenders, 3 if args.quick else 7, 10)
        for name, values in times.items():
            median, low, high = summary(values)
            extra = ""
            if name == "lamina" and "pytorch" in times:
                ratio = statistics.median(values) / statistics.median(times["pytorch"])
                by_mins = min(values) / min(times["pytorch"])
                extra = f"{ratio:6.2f} {by_mins:7.2f} {'<=' + format(case['target'], 'g'):>7}"
            print(f"{case['name']:58} {name:9} {median:10.2f} {low:8.2f}-{high:8.2f} {extra}")
        print()
    print("ratio: lamina / PyTorch, by medians and by minimums (float32, 2 threads each).")


if __name__ == "__main__":
    main()
