"""A character model of Moby-Dick with tied embeddings: one Embedding matrix maps characters to
vectors at the input and, reversed (`emb(h, reverse=True)`, h @ E.T), vectors to next-character
scores at the output, as in Press & Wolf (2017). Small and quick: a smoke test of the idea.

    python examples/tied_char_model.py [--out runs/tied_char]
    lamina generate runs/tied_char/model.npz --prompt "Call me "

The same model from a config: lamina train examples/configs/tied_char.toml
"""
from __future__ import annotations

import argparse
from pathlib import Path

import lamina


def tied(vocabulary: int, seq_len: int, dim: int = 48) -> lamina.Model:
    ids = lamina.Input((seq_len,), name="ids", dtype="int64")
    emb = lamina.layer("Embedding", vocabulary, dim)  # one instance: the input and the output layer
    h = lamina.layer("GRU", dim, return_sequences=True)(emb(ids))
    return lamina.Model(inputs=ids, outputs=emb(h, reverse=True))  # (batch, seq_len, vocabulary) logits


def main(out: str | Path = "runs/tied_char", windows: int = 1500, epochs: int = 2) -> float:
    seq_len = 32
    data = lamina.dataset("moby_dick", seq_len=seq_len)
    x_train, y_train, x_test, y_test = data
    x_train, y_train, x_test, y_test = x_train[:windows], y_train[:windows], x_test[:200], y_test[:200]
    size = len(data.metadata["vocabulary"])
    lamina.seed(0)
    model = tied(size, seq_len)
    model.metadata.update(data.metadata)  # the vocabulary travels with the model file, for lamina generate
    emb = model.layers[0]
    print(f"{len(model.parameters())} parameter arrays; the embedding {emb.weight.value.shape} is also the output "
          "layer")
    model.train(x_train, y_train, optim=lamina.optimizer("Adam", lr=0.01),
                loss=lamina.loss("CrossEntropy", from_logits=True), epochs=epochs, batch_size=32,
                clip_grad_norm=1.0, verbose=False)
    held_out = float(model.evaluate(x_test, y_test)["loss"])
    print(f"held-out loss: {held_out:.3f} nats per character")
    print(lamina.generate(model, "Call me ", length=60, temperature=0.8, seed=0))
    Path(out).mkdir(parents=True, exist_ok=True)
    path = model.save(Path(out) / "model.npz")
    print(f"model: {path}  (lamina generate {path} --prompt \"...\")")
    return held_out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/tied_char", help="folder for model.npz")
    main(parser.parse_args().out)
