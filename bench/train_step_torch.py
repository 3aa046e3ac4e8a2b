#!/usr/bin/python3
"""The PyTorch baseline for bench_train_step: the same GPT-2 training step (forward + backward +
AdamW with global-norm clipping) in plain PyTorch float32, timed the same way.

    /usr/bin/python3 bench/train_step_torch.py [--batch 4] [--seq 64] [--threads 2] [--steps 10] [--json FILE]

The model is tests/fixtures/torch_gpt2.py, the one the golden fixture is made with.

Debian's torch does its GEMMs in the system OpenBLAS, which on CPUs newer than itself falls back
to SSE3 ("Prescott") kernels; inkstone then selects better ones itself (kernels/cpu/blas_setup.cpp),
PyTorch does not. For a like-for-like baseline set OPENBLAS_CORETYPE (e.g. SkylakeX on AVX-512
machines). The kernel family in use is printed.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from torch_gpt2 import GPT2, adamw, init_gpt2_  # noqa: E402

PRESETS = {"gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, context=1024, vocab=50257)}


def openblas_core():
    """The OpenBLAS kernel family torch's GEMMs run on, or 'unknown'."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def make_optimizer(model):
    """Fused AdamW where this torch has it for CPU, else foreach (multi-tensor), else the loop."""
    for kwargs in (dict(fused=True), dict(foreach=True), dict()):
        try:
            opt = adamw(model, lr=6e-4, **kwargs)
            opt.zero_grad()
            return opt, next(iter(kwargs), "for-loop")
        except (TypeError, RuntimeError, ValueError):
            continue
    raise RuntimeError("no usable AdamW")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpt2-124m", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    shape = PRESETS[args.preset]
    model = GPT2(**shape)
    init_gpt2_(model)
    optimizer, variant = make_optimizer(model)
    print(f"train_step_torch: {args.preset}, B={args.batch} T={args.seq}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, OpenBLAS {openblas_core()}, AdamW {variant}")

    gen = torch.Generator().manual_seed(42)
    phases = {"forward": [], "backward": [], "optimizer": [], "step": []}
    for step in range(args.warmup + args.steps):
        window = torch.randint(0, shape["vocab"], (args.batch, args.seq + 1), generator=gen)
        tokens, targets = window[:, :-1].contiguous(), window[:, 1:].contiguous()
        t0 = time.perf_counter()
        _, loss = model(tokens, targets)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)  # PyTorch 2 default: no memset
        loss.backward()
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        t3 = time.perf_counter()
        if step < args.warmup:
            print(f"warm-up {step + 1}: loss {loss.item():.4f}, grad norm {norm.item():.3f}, "
                  f"{1e3 * (t3 - t0):.1f} ms")
            continue
        times = {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2, "step": t3 - t0}
        for name, seconds in times.items():
            phases[name].append(seconds)

    med = {name: 1e3 * statistics.median(v) for name, v in phases.items()}
    tokens_per_s = args.batch * args.seq / (med["step"] / 1e3)
    print(f"\n{'phase':<12} {'median ms':>10}")
    for name in ("forward", "backward", "optimizer", "step"):
        print(f"{name:<12} {med[name]:>10.1f}")
    print(f"tokens/s: {tokens_per_s:.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "train_step", "implementation": f"pytorch {torch.__version__}",
                       "adamw": variant, "openblas_core": openblas_core(), "preset": args.preset,
                       "batch": args.batch, "seq": args.seq,
                       "threads": args.threads, "steps": args.steps, "ms_per_step": med["step"],
                       "tokens_per_s": tokens_per_s, "forward_ms": med["forward"],
                       "backward_ms": med["backward"], "optimizer_ms": med["optimizer"]}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
