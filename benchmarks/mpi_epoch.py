"""One MNIST-size epoch (784-512-256-10, batch 128) on 1 and 2 MPI processes, one BLAS thread each.

    python benchmarks/mpi_epoch.py [--rows 60000]

Needs the mpi extra (pip install -e ".[mpi]"). Prints the epoch time for each process count,
the speedup, and the time spent in Allreduce (one per step, all gradients packed together).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def worker(rows: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import lamina_mlp, machine, mnist_like

    import lamina

    x, y = mnist_like(rows)
    strategy = lamina.strategy("mpi")
    spent = [0.0]
    reduce = strategy.allreduce

    def timed_allreduce(buffer):
        start = time.perf_counter()
        reduce(buffer)
        spent[0] += time.perf_counter() - start

    strategy.allreduce = timed_allreduce
    lamina.seed(0)
    model = lamina_mlp([784, 512, 256, 10])
    kwargs = dict(optim=lamina.optimizer("SGD", lr=0.01), loss=lamina.loss("CrossEntropy", from_logits=True),
                  batch_size=128, verbose=False, strategy=strategy)
    model.train(x[:1024], y[:1024], epochs=1, **kwargs)  # warm up
    spent[0] = 0.0
    start = time.perf_counter()
    model.train(x, y, epochs=1, **kwargs)
    elapsed = time.perf_counter() - start
    if strategy.is_main:
        parameters = sum(p.size for p in model.parameters().values())
        print(json.dumps({"ranks": strategy.size, "epoch_s": elapsed, "allreduce_s": spent[0],
                          "steps": -(-rows // 128), "parameters": parameters, "machine": machine()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.rows)
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpiexec not found: pip install -e '.[mpi]'")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    results = []
    for ranks in (1, 2):
        out = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", "--rows", str(args.rows)],
                             capture_output=True, text=True, env=env, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]["epoch_s"]
    print(f"{results[0]['machine']} (in each rank)")
    print(f"MNIST-size epoch, {args.rows:,} rows, batch 128, {results[0]['parameters']:,} parameters "
          f"({results[0]['parameters'] * 4 / 2**20:.1f} MiB per Allreduce in float32)")
    print(f"{'ranks':>5} {'epoch s':>8} {'speedup':>8} {'allreduce s':>12} {'share':>6}")
    for r in results:
        print(f"{r['ranks']:>5} {r['epoch_s']:8.2f} {base / r['epoch_s']:8.2f} {r['allreduce_s']:12.3f} {r['allreduce_s'] / r['epoch_s']:6.0%}")


if __name__ == "__main__":
    main()
