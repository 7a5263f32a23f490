"""A character language model of Moby-Dick: a small causal Transformer (or a GRU) that reads 64
characters and predicts each next one, against the unigram and bigram baselines.

    python examples/char_lm.py                 # the Transformer, a few minutes on 2 cores
    python examples/char_lm.py --model gru     # the GRU variant
    lamina generate runs/char_lm/model.npz --prompt "Call me Ishmael. "

The same run from a config: lamina train examples/configs/char_lm.toml
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import lamina


def baselines(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, size: int) -> tuple[float, float]:
    """Held-out cross-entropy (nats per character) of the unigram and bigram models counted on
    the training windows (add-one smoothing): what a model must beat to have learnt anything
    beyond letter frequencies and pairs."""
    unigram = np.bincount(y_train.ravel(), minlength=size) + 1.0
    unigram /= unigram.sum()
    pairs = np.ones((size, size))
    np.add.at(pairs, (x_train.ravel(), y_train.ravel()), 1.0)
    pairs /= pairs.sum(axis=1, keepdims=True)
    return float(-np.log(unigram[y_test]).mean()), float(-np.log(pairs[x_test, y_test]).mean())


def transformer(vocabulary: int, seq_len: int) -> list:
    return [
        {"type": "Embedding", "num_embeddings": vocabulary, "dim": 128},
        {"type": "PositionalEmbedding", "max_len": seq_len},
        {"type": "TransformerBlock", "num_heads": 4, "ff_units": 256, "dropout": 0.1, "causal": True},
        {"type": "TransformerBlock", "num_heads": 4, "ff_units": 256, "dropout": 0.1, "causal": True},
        {"type": "LayerNorm"},
        {"type": "Linear", "units": vocabulary},
    ]


def gru(vocabulary: int, seq_len: int) -> list:
    return [
        {"type": "Embedding", "num_embeddings": vocabulary, "dim": 64},
        {"type": "GRU", "units": 256, "return_sequences": True},
        {"type": "Linear", "units": vocabulary},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["transformer", "gru"], default="transformer")
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 (transformer) or 5 (gru)")
    parser.add_argument("--out", default="runs/char_lm", help="folder for model.npz")
    parser.add_argument("--quick", action="store_true", help="one epoch on 640 windows: a smoke test, not a model")
    args = parser.parse_args()

    seq_len = 64
    data = lamina.dataset("moby_dick", seq_len=seq_len)
    x_train, y_train, x_test, y_test = data
    if args.quick:
        x_train, y_train, x_test, y_test, args.epochs = x_train[:640], y_train[:640], x_test[:64], y_test[:64], 1
    size = len(data.metadata["vocabulary"])
    unigram, bigram = baselines(x_train, y_train, x_test, y_test, size)
    print(f"{len(x_train)} training windows of {seq_len} characters, {size} distinct characters")
    print(f"held-out baselines: unigram {unigram:.3f}, bigram {bigram:.3f} nats per character")

    lamina.seed(0)
    layers = transformer(size, seq_len) if args.model == "transformer" else gru(size, seq_len)
    model = lamina.Model(layers)
    model.metadata.update(data.metadata)  # the vocabulary travels with the model file
    start = time.perf_counter()
    model.train(
        x_train, y_train, optim=lamina.optimizer("Adam", lr=3e-3 if args.model == "transformer" else 5e-3),
        loss=lamina.loss("CrossEntropy", from_logits=True), epochs=args.epochs or (10 if args.model == "transformer" else 5),
        batch_size=32, clip_grad_norm=1.0, verbose=not args.quick,
    )
    minutes = (time.perf_counter() - start) / 60
    held_out = model.evaluate(x_test, y_test)["loss"]
    print(f"held-out loss: {held_out:.3f} nats per character after {minutes:.1f} minutes "
          f"({held_out / unigram:.2f} of the unigram baseline, {held_out / bigram:.2f} of the bigram)")
    print(lamina.generate(model, "Call me Ishmael. ", length=300, temperature=0.8, seed=0))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = model.save(Path(args.out) / "model.npz")
    print(f"model: {path}  (lamina generate {path} --prompt \"...\")")


if __name__ == "__main__":
    main()
