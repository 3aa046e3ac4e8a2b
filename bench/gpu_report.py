#!/usr/bin/python3
"""One markdown table from bench_cuda_kernels's JSON and, optionally, bench/cuda_reference.py's.

    python3 bench/gpu_report.py INKSTONE.json [REFERENCE.json] [--train TRAIN.json] [--peak-tflops 989.4]

Columns: inkstone's median time, what it achieves (GB/s or TFLOP/s) and that as a fraction of the
ceiling measured in the same run (1 GiB device copy, 8192^3 BF16 GEMM), the reference's median time
(its fastest back end where it has several) and reference time / inkstone time (> 1: inkstone is
faster). --train takes bench_train_step's JSON (--device cuda) and adds GPT-2 training tokens/s and
MFU: 6N + 6LCT FLOPs per token (llm.c, from PaLM's appendix B) against the BF16 dense peak of the
spec sheet (H100/H200 SXM: 989.4 TFLOP/s) and against the measured GEMM ceiling.
"""

import argparse
import json
import os
import sys

# parameters (real vocab, tied embeddings once), layers, channels
PRESETS = {"gpt2-124m": (124439808, 12, 768)}


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt_us(us):
    return f"{us:,.1f}"


def reference_cell(ref):
    """The reference's time, and which back end gave it when there were several."""
    if ref is None:
        return ""
    if "us" not in ref:
        return f"error: {ref.get('error', '?')}"
    others = [f"{k} {fmt_us(v)}" for k, v in sorted(ref.get("variants", {}).items()) if k != ref["impl"]]
    others += [f"{k} skipped" for k in sorted(ref.get("skipped", {})) if k not in ref.get("variants", {})]
    if ref.get("impl", "pytorch").startswith("pytorch") and not others:
        return fmt_us(ref["us"])
    return f"{fmt_us(ref['us'])} ({ref['impl']}{'; ' + ', '.join(others) if others else ''})"


def kernel_rows(ours, refs):
    rows = []
    for c in ours["cases"]:
        ref = refs.pop(c["name"], None)
        shape = f"{c['shape']} {c['dtype']}" if c["dtype"] != "-" else c["shape"]
        if "us" not in c:
            rows.append([c["name"], shape, "error", c.get("error", "?")[:80], "", reference_cell(ref), ""])
            continue
        ratio = f"{ref['us'] / c['us']:.2f}x" if ref and "us" in ref else ""
        rows.append([c["name"], shape, fmt_us(c["us"]), f"{c['achieved']:,.1f} {c['unit']}",
                     f"{c['fraction_of_ceiling']:.2f}", reference_cell(ref), ratio])
    for name, ref in refs.items():  # cases only the reference ran
        rows.append([name, ref.get("shape", ""), "", "", "", reference_cell(ref), ""])
    return rows


def train_rows(train, gemm_tflops, peak_tflops):
    preset, T = train.get("preset", "gpt2-124m"), train["seq"]
    if preset not in PRESETS:
        return [[f"train step ({preset})", "", "", "no FLOP count for this preset", "", "", ""]]
    n, layers, channels = PRESETS[preset]
    tflops = (6 * n + 6 * layers * channels * T) * train["tokens_per_s"] * 1e-12
    shape = f"{preset} B={train['batch']} T={T}"
    of_gemm = f"{tflops / gemm_tflops:.2f}" if gemm_tflops else ""
    return [["train step tokens/s", shape, fmt_us(1e3 * train["ms_per_step"]),
             f"{train['tokens_per_s']:,.0f} tokens/s", "", "", ""],
            ["train step MFU", shape, "", f"{tflops:,.1f} TFLOP/s = MFU {tflops / peak_tflops:.2f} "
             f"of {peak_tflops:g}", of_gemm, "", ""]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inkstone", help="bench_cuda_kernels --json output")
    ap.add_argument("reference", nargs="?", help="bench/cuda_reference.py --json output")
    ap.add_argument("--train", help="bench_train_step --json output (a CUDA run)")
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="BF16 dense peak for MFU (spec sheet)")
    args = ap.parse_args()

    ours = load(args.inkstone)
    ref = {"cases": []}
    if args.reference and os.path.exists(args.reference):
        ref = load(args.reference)
    elif args.reference:  # cuda_reference.py writes nothing where torch or its GPU is missing
        print(f"(no reference: {args.reference} does not exist)\n")
    refs = {c["name"]: c for c in ref["cases"]}
    ceil = ours["ceilings"]
    ref_copy, ref_gemm = refs.get("copy_d2d", {}).get("us"), refs.get("gemm_bf16", {}).get("us")
    print(f"**{ours['device']}**, median of {ours['repeats']} launches, L2 flushed before each"
          + (f"; reference: PyTorch {ref['torch']}" if "torch" in ref else ""))
    print()
    print(f"Ceilings: device copy of 1 GiB {ceil['copy_gbps']:,.0f} GB/s (read + write)"
          + (f", PyTorch {2 * 2**30 / ref_copy * 1e-3:,.0f}" if ref_copy else "")
          + f"; BF16 GEMM 8192^3 {ceil['gemm_tflops']:,.1f} TFLOP/s"
          + (f", PyTorch {2 * 8192**3 / ref_gemm * 1e-6:,.1f}" if ref_gemm else ""))
    if ours.get("aborted"):
        print(f"\ninkstone run aborted: {ours['aborted']}")
    print()
    header = ["case", "shape", "inkstone us", "achieved", "of ceiling", "reference us", "ref / inkstone"]
    rows = kernel_rows(ours, refs)
    if args.train:
        rows += train_rows(load(args.train), ceil["gemm_tflops"], args.peak_tflops)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---:"]) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
