#!/usr/bin/env python3
"""Character n-gram baselines in bits per byte for a prepared data folder (inkstone prepare).

A language model earns its keep by beating the unigram: predicting each character from its overall
frequency alone. Two versions, both on the validation split's UTF-8 text:
  in-sample   the entropy of the whole corpus's character distribution (train + val), i.e. a unigram
              that has already seen the validation text: the optimistic number usually quoted;
  held-out    character frequencies counted on the training split only, add-1/2 smoothed with mass
              kept for unseen characters (a 20,000-character inventory): what a model trained on the
              same data faces.
Then the classic count-based models a small neural one must beat: character bigram and trigram,
interpolated absolute discounting (discount 0.75, the heart of Kneser-Ney) down to the held-out
unigram, counted on the training split, each document starting from a boundary symbol.
Usage: bench/unigram_baseline.py data/prepared/tang300     (any python3; standard library only)
"""
import collections
import math
import sys
from pathlib import Path

from token_shards import read_shard


def shard_text(path: Path) -> str:
    tokens, vocab = read_shard(path)
    if vocab != 257:
        sys.exit(f"{path}: vocab {vocab}; this baseline reads byte-tokenizer shards (vocab 257)")
    # <|endoftext|> (256) opens every document: it becomes a boundary symbol, \x00.
    return bytes(t if t < 256 else 0 for t in tokens).decode("utf-8")


def ngram_bits(train: str, val: str, order: int, unigram) -> float:
    """Bits for val's characters (boundaries excluded) under interpolated absolute discounting."""
    discount = 0.75
    counts = [collections.Counter() for _ in range(order + 1)]  # (history, char) for each length
    totals = [collections.Counter() for _ in range(order + 1)]  # history -> count
    kinds = [collections.Counter() for _ in range(order + 1)]   # history -> distinct next chars
    for i, c in enumerate(train):
        for n in range(2, order + 1):
            history = train[max(0, i - n + 1):i]
            if len(history) < n - 1:
                continue
            if counts[n][(history, c)] == 0:
                kinds[n][history] += 1
            counts[n][(history, c)] += 1
            totals[n][history] += 1

    def prob(i: int, n: int) -> float:
        if n == 1:
            return unigram(val[i])
        history = val[max(0, i - n + 1):i]
        lower = prob(i, n - 1)
        total = totals[n].get(history, 0)
        if len(history) < n - 1 or total == 0:
            return lower
        seen = max(counts[n].get((history, val[i]), 0) - discount, 0) / total
        return seen + discount * kinds[n][history] / total * lower

    return -sum(math.log2(prob(i, order)) for i, c in enumerate(val) if c != "\0")


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "data/prepared/tang300")
    train = "".join(shard_text(p) for p in sorted(folder.glob("train_*.bin")))
    val = "".join(shard_text(p) for p in sorted(folder.glob("val_*.bin")))
    val_bytes = len(val.replace("\0", "").encode("utf-8"))

    everything = collections.Counter((train + val).replace("\0", ""))
    total = sum(everything.values())
    in_sample = -sum(math.log2(everything[c] / total) for c in val if c != "\0") / val_bytes

    counts = collections.Counter(train.replace("\0", ""))
    alpha, inventory = 0.5, 20000
    denominator = sum(counts.values()) + alpha * inventory

    def unigram(c: str) -> float:
        return (counts.get(c, 0) + alpha) / denominator

    held_out = -sum(math.log2(unigram(c)) for c in val if c != "\0") / val_bytes

    print(f"{folder}: {len(train)} training and {len(val)} validation characters ({val_bytes} bytes)")
    print(f"unigram in-sample  {in_sample:.3f} bits/byte")
    print(f"unigram held-out   {held_out:.3f} bits/byte")
    for order, name in ((2, "bigram"), (3, "trigram")):
        print(f"{name:8} held-out   {ngram_bits(train, val, order, unigram) / val_bytes:.3f} bits/byte")


if __name__ == "__main__":
    main()
