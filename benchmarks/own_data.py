"""Your own data, at any size: memory and epoch time of training from a memmap and from an
image folder, against the same data in memory, and what prefetch saves.

    python benchmarks/own_data.py memory [--gib 2]     # one epoch from a uint8 memmap: peak RSS
    python benchmarks/own_data.py memmap [--rows N]    # page-cached memmap epoch vs in memory
    python benchmarks/own_data.py images [--count N]   # image folder: decode epoch, cached epochs, prefetch

Files go to a temporary folder (--dir to choose), removed afterwards. Run with nothing else
on the machine; each timing alternates the contenders and reports medians and ranges.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PAUSE, machine  # noqa: E402

import lamina  # noqa: E402


def status() -> tuple[float, float]:
    """(resident, anonymous resident) MiB of this process."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024


class Peak:
    """The highest resident and anonymous memory while the block runs, sampled every 2 ms."""

    def __enter__(self) -> Peak:
        self.base, self.high, self.done = status(), [0.0, 0.0], threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.is_set():
            self.high = [max(h, v) for h, v in zip(self.high, status())]
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def report(self) -> str:
        return (f"peak resident {self.high[0]:.0f} MiB ({self.high[0] - self.base[0]:+.0f} above the start), "
                f"peak anonymous {self.high[1]:.0f} MiB ({self.high[1] - self.base[1]:+.0f})")


def classifier(features: int) -> lamina.Model:
    return lamina.Model([lamina.layer("Linear", 64), "Relu", lamina.layer("Linear", 10)])


def one_epoch(model: lamina.Model, x: object, y: np.ndarray, **options: object) -> float:
    time.sleep(PAUSE)  # let the previous epoch's BLAS threads settle (see common.alternate)
    start = time.perf_counter()
    model.train(x, y, optim=lamina.optimizer("SGD", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
                epochs=1, batch_size=1024, verbose=False, **options)
    return time.perf_counter() - start


def write_memmap(path: Path, rows: int, features: int = 784) -> np.ndarray:
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, features))
    chunk = 1 << 16
    generator = np.random.default_rng(0)
    for start in range(0, rows, chunk):
        data[start : start + chunk] = generator.integers(0, 256, size=(min(chunk, rows - start), features), dtype=np.uint8)
    data.flush()
    return np.random.default_rng(1).integers(0, 10, size=rows)


def memory(args: argparse.Namespace, folder: Path) -> None:
    rows = int(args.gib * 2**30 // 784)
    print(f"writing {rows:,} rows of 784 uint8 ({rows * 784 / 2**30:.2f} GiB) ...")
    y = write_memmap(folder / "x.npy", rows)
    x = np.load(folder / "x.npy", mmap_mode="r")
    lamina.seed(0)
    model = classifier(784)
    model(x[:2])
    with Peak() as peak:
        seconds = one_epoch(model, x, y)
    print(f"one epoch from the memmap (batch 1024, 784-64-10): {seconds:.1f} s; {peak.report()}")
    print(f"the same data as float32 in memory would take {rows * 784 * 4 / 2**20:,.0f} MiB")


def memmap_speed(args: argparse.Namespace, folder: Path) -> None:
    y = write_memmap(folder / "x.npy", args.rows)
    x_map = np.load(folder / "x.npy", mmap_mode="r")
    x_mem = np.asarray(x_map, dtype=np.float32)  # what train would make of an in-memory array
    np.asarray(x_map).sum()  # the file in the page cache
    lamina.seed(0)
    models = {"in memory (float32)": classifier(784), "memmap (uint8, per batch)": classifier(784)}
    for model in models.values():
        model(x_mem[:2])
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(one_epoch(model, x_mem if name.startswith("in memory") else x_map, y))
    report(f"one epoch, {args.rows:,} rows x 784, batch 1024, 784-64-10", times)


def report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    base = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:34} median {median:7.2f} s  range {min(values):.2f}-{max(values):.2f}  ratio {median / base:.2f}")


def images(args: argparse.Namespace, folder: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        sys.exit("needs Pillow: pip install 'lamina[images]'")
    digits, labels, *_ = lamina.dataset("digits", flatten=False, test_split=0.0)
    root = folder / "images"
    for i in range(args.count):
        image = digits[i % len(digits), 0]
        target = root / str(labels[i % len(labels)])
        target.mkdir(parents=True, exist_ok=True)
        pixels = np.kron(image * (255 / 16), np.ones((2, 2))).astype(np.uint8)  # 16 x 16
        Image.fromarray(pixels).save(target / f"{i:05d}.png")
    print(f"{args.count:,} PNG files of 16x16 grayscale in {root}")

    def dataset(cache: bool):
        return lamina.dataset("image_folder", path=str(root), color_mode="grayscale", test_split=0.0, cache=cache)

    def cnn() -> lamina.Model:
        lamina.seed(0)
        return lamina.Model([lamina.layer("Conv2D", 16, 3, padding="same"), "Relu", lamina.layer("MaxPool2D", 2), "Flatten",
                             lamina.layer("Linear", 10)])

    # cached: the first epoch decodes, the next ones read the cache; against the same arrays in memory
    x, y, *_ = dataset(cache=True)
    lazy_model, memory_model = cnn(), cnn()
    first = one_epoch(lazy_model, x, y)  # decodes every file once, into the cache
    memory_x = np.concatenate([x[np.arange(i, min(i + 1024, len(x)))] for i in range(0, len(x), 1024)])
    times: dict[str, list[float]] = {"in memory": [], "image folder, cached": []}
    for _ in range(args.rounds):
        times["in memory"].append(one_epoch(memory_model, memory_x, y))
        times["image folder, cached"].append(one_epoch(lazy_model, x, y))
    print(f"first epoch (decoding {len(x):,} files): {first:.2f} s")
    report("cached epochs against the same arrays in memory (CNN 16 3x3, batch 1024)", times)

    # prefetch: uncached, so every epoch decodes; the step (a wider CNN) is slower than a decode
    lamina.seed(0)
    decode = statistics.median(_decode_time(dataset(cache=False)[0]) for _ in range(3))
    slow = lamina.Model([lamina.layer("Conv2D", 32, 3, padding="same"), "Relu", lamina.layer("MaxPool2D", 2), "Flatten",
                         lamina.layer("Linear", 10)])
    uncached, _, *_ = dataset(cache=False)
    slow(memory_x[:2])
    compute = statistics.median(one_epoch(slow, memory_x, y) for _ in range(3))
    prefetch: dict[str, list[float]] = {"prefetch=0": [], "prefetch=1": []}
    for _ in range(args.rounds):
        for name in prefetch:
            prefetch[name].append(one_epoch(slow, uncached, y, prefetch=int(name[-1])))
    report(f"uncached epochs, a step slower than its decode (decoding alone {decode:.2f} s, steps alone {compute:.2f} s)",
           prefetch)
    saved = statistics.median(prefetch["prefetch=0"]) - statistics.median(prefetch["prefetch=1"])
    print(f"prefetch saved {saved:.2f} s per epoch: {saved / decode:.0%} of the decode time")


def _decode_time(x: object) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), 1024):  # type: ignore[arg-type]
        x[np.arange(i, min(i + 1024, len(x)))]  # type: ignore[index,arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["memory", "memmap", "images"])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        {"memory": memory, "memmap": memmap_speed, "images": images}[args.case](args, Path(tmp))


if __name__ == "__main__":
    main()
