#!/usr/bin/env python3
"""Character-unigram baselines in bits per byte for a prepared data folder (inkstone prepare).

A language model earns its keep by beating the unigram: predicting each character from its overall
frequency alone. Two versions, both on the validation split's UTF-8 text:
  in-sample   the entropy of the whole corpus's character distribution (train + val), i.e. a unigram
              that has already seen the validation text: the optimistic number usually quoted;
  held-out    character frequencies counted on the training split only, add-1/2 smoothed with mass
              kept for unseen characters (a 20,000-character inventory): what a model trained on the
              same data faces.
Usage: bench/unigram_baseline.py data/prepared/tang300     (any python3; standard library only)
"""
import collections
import math
import struct
import sys
from pathlib import Path

HEADER = 72


def shard_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:8] != b"INKSTOK1":
        sys.exit(f"{path}: not an inkstone token shard")
    width, vocab = struct.unpack_from("<II", data, 12)
    count = struct.unpack_from("<Q", data, 24)[0]
    fmt = {2: "H", 4: "I"}[width]
    tokens = struct.unpack_from(f"<{count}{fmt}", data, HEADER)
    if vocab != 257:
        sys.exit(f"{path}: vocab {vocab}; this baseline reads byte-tokenizer shards (vocab 257)")
    return bytes(t for t in tokens if t < 256).decode("utf-8")


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "data/prepared/tang300")
    train = "".join(shard_text(p) for p in sorted(folder.glob("train_*.bin")))
    val = "".join(shard_text(p) for p in sorted(folder.glob("val_*.bin")))
    val_bytes = len(val.encode("utf-8"))

    everything = collections.Counter(train + val)
    total = sum(everything.values())
    in_sample = -sum(math.log2(everything[c] / total) for c in val) / val_bytes

    counts = collections.Counter(train)
    alpha, inventory = 0.5, 20000
    denominator = len(train) + alpha * inventory
    held_out = -sum(math.log2((counts.get(c, 0) + alpha) / denominator) for c in val) / val_bytes

    print(f"{folder}: {len(train)} training and {len(val)} validation characters ({val_bytes} bytes)")
    print(f"unigram in-sample  {in_sample:.3f} bits/byte")
    print(f"unigram held-out   {held_out:.3f} bits/byte")


if __name__ == "__main__":
    main()
