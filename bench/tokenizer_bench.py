#!/usr/bin/env python3
"""Tokenizer benchmark, in one run: BPE training time and compression against SentencePiece and Hugging
Face `tokenizers`, and GPT-2 encode throughput against tiktoken and `tokenizers`.

Run with the reference virtual environment that scripts/python_refs.sh makes (tiktoken, tokenizers), and
Debian's `sentencepiece` (spm_train, spm_encode) installed, from the repository root after a build:

    build/pyref/bin/python bench/tokenizer_bench.py [--vocab-size 8192] [--threads N] [--json FILE]

For each corpus (war_and_peace.txt, hongloumeng.txt from ../shared/corpora) the last tenth (cut at a line end)
is held out: every trainer learns from the first nine tenths, and compression is the held-out tenth's bytes
per token. Times are wall-clock seconds of one run each (training) or the median of three (encoding).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CORPORA = ["war_and_peace.txt", "hongloumeng.txt"]
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def split_heldout(text: bytes):
    cut = text.rfind(b"\n", 0, len(text) * 9 // 10) + 1
    return text[:cut], text[cut:]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def train_inkstone(inkstone, train_path, out, vocab, threads, rule):
    _, seconds = timed(lambda: subprocess.run(
        [inkstone, "tokenizer", "train", "--vocab-size", str(vocab), "--pre-tokenizer", rule, "--threads",
         str(threads), "--force", "--out", out, train_path], check=True, capture_output=True))
    return seconds


def count_inkstone(inkstone, tokenizer, path):
    out = subprocess.run([inkstone, "tokenizer", "encode", tokenizer, path], check=True, capture_output=True).stdout
    return len(out.split())


def train_spm(train_path, prefix, vocab, threads):
    _, seconds = timed(lambda: subprocess.run(
        ["spm_train", f"--input={train_path}", f"--model_prefix={prefix}", f"--vocab_size={vocab}",
         "--model_type=bpe", "--character_coverage=1.0", "--byte_fallback=true", f"--num_threads={threads}",
         "--max_sentence_length=1000000", "--minloglevel=2"], check=True, capture_output=True))
    return seconds


def count_spm(prefix, path):
    with open(path, "rb") as f:
        out = subprocess.run(["spm_encode", f"--model={prefix}.model", "--output_format=id"], stdin=f,
                             check=True, capture_output=True).stdout
    return len(out.split())


def train_hf(train_path, vocab):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    _, seconds = timed(lambda: tok.train([train_path], trainer))
    return tok, seconds


def training_table(args, corpora_dir, work):
    rows = []
    for name in CORPORA:
        text = open(os.path.join(corpora_dir, name), "rb").read()
        train, heldout = split_heldout(text)
        train_path, heldout_path = os.path.join(work, "train_" + name), os.path.join(work, "heldout_" + name)
        open(train_path, "wb").write(train)
        open(heldout_path, "wb").write(heldout)
        rules = ["gpt2", "gpt2-cjk"] if name == "hongloumeng.txt" else ["gpt2"]
        for rule in rules:
            out = os.path.join(work, f"inkstone_{rule}_{name}.json")
            seconds = train_inkstone(args.inkstone, train_path, out, args.vocab_size, args.threads, rule)
            rows.append((name, f"inkstone ({rule})", seconds, len(heldout) / count_inkstone(args.inkstone, out, heldout_path)))
        if shutil.which("spm_train"):
            prefix = os.path.join(work, "spm_" + name)
            seconds = train_spm(train_path, prefix, args.vocab_size, args.threads)
            rows.append((name, "sentencepiece bpe", seconds, len(heldout) / count_spm(prefix, heldout_path)))
        else:
            print("tokenizer_bench: spm_train not found (apt-get install sentencepiece); skipped", file=sys.stderr)
        tok, seconds = train_hf(train_path, args.vocab_size)
        ids = tok.encode(heldout.decode("utf-8")).ids
        rows.append((name, "tokenizers bpe", seconds, len(heldout) / len(ids)))
    return rows


def gpt2_references(gpt2_dir):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN,
                            mergeable_ranks=load_tiktoken_bpe(os.path.join(gpt2_dir, "gpt2.tiktoken")),
                            special_tokens={"<|endoftext|>": 50256})
    hf = Tokenizer(models.BPE.from_file(os.path.join(gpt2_dir, "vocab.json"), os.path.join(gpt2_dir, "merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return enc, hf


def median_mb_per_s(fn, nbytes, repeats=3):
    times = [timed(fn)[1] for _ in range(repeats)]
    return nbytes / 1e6 / statistics.median(times)


def encode_table(args, corpora_dir, gpt2_dir, work):
    rows = []
    speed_json = os.path.join(work, "inkstone_speed.json")
    subprocess.run([args.speed, "--tokenizer", gpt2_dir, "--threads", str(args.threads), "--json", speed_json] +
                   [os.path.join(corpora_dir, n) for n in CORPORA], check=True, capture_output=True)
    ours = {os.path.basename(r["file"]): r for r in json.load(open(speed_json))["results"]}
    enc, hf = gpt2_references(gpt2_dir)
    for name in CORPORA:
        text = open(os.path.join(corpora_dir, name), encoding="utf-8").read()
        nbytes = len(text.encode("utf-8"))
        # The same chunks for every batch API: lines grouped into about 4 per thread.
        lines = text.splitlines(keepends=True)
        per = max(1, len(lines) // (args.threads * 4))
        chunks = ["".join(lines[i:i + per]) for i in range(0, len(lines), per)]
        rows.append((name, "inkstone", ours[name]["mb_per_s_1_thread"], ours[name]["mb_per_s_threads"]))
        rows.append((name, "tiktoken", median_mb_per_s(lambda: enc.encode_ordinary(text), nbytes),
                     median_mb_per_s(lambda: enc.encode_ordinary_batch(chunks, num_threads=args.threads), nbytes)))
        rows.append((name, "tokenizers", median_mb_per_s(lambda: hf.encode(text), nbytes),
                     median_mb_per_s(lambda: hf.encode_batch(chunks), nbytes)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--inkstone", default="build/cli/inkstone")
    parser.add_argument("--speed", default="build/bench/bench_tokenize_speed")
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--json")
    args = parser.parse_args()
    corpora_dir, gpt2_dir = os.path.join(args.shared, "corpora"), os.path.join(args.shared, "tokenizers", "gpt2")
    with tempfile.TemporaryDirectory() as work:
        training = training_table(args, corpora_dir, work)
        encoding = encode_table(args, corpora_dir, gpt2_dir, work)
    print(f"\nTraining to a vocabulary of {args.vocab_size} ({args.threads} threads), compression on the held-out tenth")
    print(f"{'corpus':<20} {'trainer':<22} {'seconds':>8} {'bytes/token':>12}")
    for name, who, seconds, bpt in training:
        print(f"{name:<20} {who:<22} {seconds:>8.2f} {bpt:>12.3f}")
    print(f"\nEncoding with GPT-2's vocabulary (MB/s, median of 3)")
    print(f"{'corpus':<20} {'encoder':<22} {'1 thread':>10} {str(args.threads) + ' threads':>12}")
    for name, who, one, many in encoding:
        print(f"{name:<20} {who:<22} {one:>10.1f} {many:>12.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"vocab_size": args.vocab_size, "threads": args.threads,
                       "training": [dict(zip(["corpus", "trainer", "seconds", "bytes_per_token"], r)) for r in training],
                       "encoding": [dict(zip(["corpus", "encoder", "mb_per_s_1_thread", "mb_per_s_threads"], r))
                                    for r in encoding]}, f, indent=2)


if __name__ == "__main__":
    main()
