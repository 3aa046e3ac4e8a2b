#!/usr/bin/python3
"""The PyTorch reference for bench_cuda_kernels: the same cases, shapes and dtypes, timed the same way.

    python3 bench/cuda_reference.py [--quick] [--warmup 5] [--repeats 30] [--json FILE]

Each figure is the median of `repeats` launches timed alone with torch.cuda.Event, after a 256 MiB
memset that evicts the L2 (as bench_cuda_kernels does). Attention runs F.scaled_dot_product_attention
forced to each of the flash and cuDNN back ends (one that is unavailable is skipped and named in the
JSON); its backward pass is reported as (forward + backward) - forward. The case names are
bench_cuda_kernels's, so bench/gpu_report.py can join the two files. Without torch or a GPU this
prints one line and exits 0.
"""

import argparse
import json
import statistics
import sys

VOCAB, PADDED_VOCAB, ADAMW_PARAMS = 50257, 50304, 124475904


class Timer:
    def __init__(self, torch, warmup, repeats):
        self.torch, self.warmup, self.repeats = torch, warmup, repeats
        self.flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def median_us(self, fn):
        torch = self.torch
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.repeats)]
        for i in range(self.warmup + self.repeats):
            self.flush.fill_(i & 0xFF)
            if i >= self.warmup:
                events[i - self.warmup][0].record()
            fn()
            if i >= self.warmup:
                events[i - self.warmup][1].record()
        torch.cuda.synchronize()
        return statistics.median(1e3 * start.elapsed_time(stop) for start, stop in events)


def case(name, shape, dtype, us, impl="pytorch", **extra):
    return dict(name=name, shape=shape, dtype=dtype, us=us, impl=impl, **extra)


def row_ops(torch, F, timer):
    bf16, dev = torch.bfloat16, "cuda"
    out = []
    n = 1 << 30
    src, dst = torch.empty(n, dtype=torch.uint8, device=dev), torch.empty(n, dtype=torch.uint8, device=dev)
    out.append(case("copy_d2d", "1 GiB", "-", timer.median_us(lambda: dst.copy_(src))))
    a, b = torch.randn(8192, 8192, dtype=bf16, device=dev), torch.randn(8192, 8192, dtype=bf16, device=dev)
    out.append(case("gemm_bf16", "8192x8192x8192", "bf16", timer.median_us(lambda: torch.mm(a, b))))

    N, V = 8192, PADDED_VOCAB
    logits = (torch.rand(N, V, dtype=bf16, device=dev) * 8 - 4).requires_grad_()
    targets = torch.randint(0, VOCAB, (N,), device=dev)

    def ce():  # forward and backward, as inkstone's fused op
        return torch.autograd.grad(F.cross_entropy(logits, targets), logits)

    out.append(case("cross_entropy", "N=8192 V=50304", "bf16", timer.median_us(ce)))
    scores = logits.detach()
    out.append(case("softmax", "N=8192 V=50304", "bf16", timer.median_us(lambda: torch.softmax(scores, -1))))

    R, C = 16384, 768
    x = torch.randn(R, C, dtype=bf16, device=dev, requires_grad=True)
    w = torch.ones(C, dtype=bf16, device=dev, requires_grad=True)
    bias = torch.zeros(C, dtype=bf16, device=dev, requires_grad=True)
    dy = torch.randn(R, C, dtype=bf16, device=dev)

    def ln():
        return F.layer_norm(x, (C,), w, bias, 1e-5)

    y = ln()

    def ln_bwd():  # the graph of one forward, kept: only the backward kernel runs
        return torch.autograd.grad(y, (x, w, bias), dy, retain_graph=True)

    out.append(case("layernorm_fwd", "N=16384 C=768", "bf16", timer.median_us(ln)))
    out.append(case("layernorm_bwd", "N=16384 C=768", "bf16", timer.median_us(ln_bwd)))
    x2 = torch.randn(R, C, dtype=bf16, device=dev)
    with torch.no_grad():
        out.append(case("residual_layernorm_fwd", "N=16384 C=768", "bf16",
                        timer.median_us(lambda: F.layer_norm(x + x2, (C,), w, bias, 1e-5))))
    g = torch.randn(R, 4 * C, dtype=bf16, device=dev)
    out.append(case("gelu_fwd", "N=16384 C=3072", "bf16", timer.median_us(lambda: F.gelu(g, approximate="tanh"))))
    return out


def attention(torch, F, timer, hd, T):
    """Forward and (fwd+bwd)-fwd of causal SDPA per back end; the fastest is the case's figure."""
    NH, B = 768 // hd, 8192 // T
    shape = f"B={B} NH={NH} T={T} hd={hd}"
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as e:  # torch < 2.3
        return [dict(name=f"attention_{kind}_hd{hd}_T{T}", shape=shape, dtype="bf16", error=str(e))
                for kind in ("fwd", "bwd")]
    q, k, v = (torch.randn(B, NH, T, hd, dtype=torch.bfloat16, device="cuda", requires_grad=True)
               for _ in range(3))
    dout = torch.randn(B, NH, T, hd, dtype=torch.bfloat16, device="cuda")

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwd_bwd():  # fresh gradients: no accumulation kernel of autograd's in the figure
        return torch.autograd.grad(fwd(), (q, k, v), dout)

    times = {"fwd": {}, "bwd": {}}
    skipped = {}
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION"):
        label = name.split("_")[0].lower()
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            skipped[label] = f"this torch ({torch.__version__}) has no SDPBackend.{name}"
            continue
        try:
            with sdpa_kernel(backend):
                times["fwd"][label] = timer.median_us(fwd)
                times["bwd"][label] = timer.median_us(fwd_bwd) - times["fwd"][label]
        except RuntimeError as e:  # "No available kernel" when the back end cannot take the shape
            skipped[label] = str(e).splitlines()[0] if str(e) else type(e).__name__
    out = []
    for kind in ("fwd", "bwd"):
        name = f"attention_{kind}_hd{hd}_T{T}"
        if times[kind]:
            best = min(times[kind], key=times[kind].get)
            out.append(case(name, shape, "bf16", times[kind][best], best, variants=times[kind], skipped=skipped))
        else:
            out.append(dict(name=name, shape=shape, dtype="bf16", error="no SDPA back end ran", skipped=skipped))
    return out


def decode_and_adamw(torch, F, timer):
    B, NH, hd, cap, pos = 8, 12, 64, 4096, 4000
    dev, bf16 = "cuda", torch.bfloat16
    q, kn, vn = (torch.randn(B, NH, hd, dtype=bf16, device=dev) for _ in range(3))
    kc, vc = (torch.randn(B, NH, cap, hd, dtype=bf16, device=dev) for _ in range(2))

    def decode():  # write the new key and value into the cache, then attend to positions [0, pos]
        kc[:, :, pos] = kn
        vc[:, :, pos] = vn
        return F.scaled_dot_product_attention(q[:, :, None], kc[:, :, :pos + 1], vc[:, :, :pos + 1])

    with torch.no_grad():
        out = [case("attention_kv_cache", "B=8 NH=12 hd=64 pos=4000 cap=4096", "bf16", timer.median_us(decode))]
    p = torch.nn.Parameter(torch.randn(ADAMW_PARAMS, device=dev) * 0.1)
    p.grad = torch.randn_like(p) * 0.01
    opt = torch.optim.AdamW([p], lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    out.append(case("adamw", f"{ADAMW_PARAMS} params", "f32", timer.median_us(opt.step), "pytorch fused"))
    return out


def matmuls(torch, F, timer, quick):
    out, N = [], 8192
    for name, C, OC, bias in (("matmul_qkv", 768, 2304, True), ("matmul_fc", 768, 3072, True),
                              ("matmul_proj", 3072, 768, True), ("matmul_lm_head", 768, PADDED_VOCAB, False)):
        if quick and name in ("matmul_fc", "matmul_proj"):
            continue
        x = torch.randn(N, C, dtype=torch.bfloat16, device="cuda")
        w = torch.randn(OC, C, dtype=torch.bfloat16, device="cuda") * 0.05
        b = torch.randn(OC, dtype=torch.bfloat16, device="cuda") if bias else None
        out.append(case(name, f"{N}x{C} -> {OC}", "bf16", timer.median_us(lambda: F.linear(x, w, b))))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="attention at hd 64, T 1024 only; two of the four GEMMs")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"cuda_reference: torch is not importable ({e}); no reference timings")
        return 0
    if not torch.cuda.is_available():
        print(f"cuda_reference: torch {torch.__version__} sees no CUDA device; no reference timings")
        return 0
    torch.manual_seed(1337)
    timer = Timer(torch, args.warmup, args.repeats)
    device = torch.cuda.get_device_name()
    print(f"cuda_reference: torch {torch.__version__}, {device}, median of {args.repeats} launches")
    cases = row_ops(torch, F, timer)
    for hd in (64, 128):
        for T in (1024, 2048, 4096):
            if not args.quick or (hd == 64 and T == 1024):
                cases += attention(torch, F, timer, hd, T)
                torch.cuda.empty_cache()
    cases += decode_and_adamw(torch, F, timer)
    cases += matmuls(torch, F, timer, args.quick)
    for c in cases:
        us = f"{c['us']:10.1f}" if "us" in c else "     error"
        print(f"{c['name']:<24} {c['shape']:<34} {us}  {c.get('impl', c.get('error'))}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(bench="cuda_reference", implementation="pytorch", torch=torch.__version__,
                           device=device, quick=args.quick, repeats=args.repeats, cases=cases), f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
