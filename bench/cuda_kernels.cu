// bench_cuda_kernels: the kernels of kernels/cuda/cuda_ops.h at GPT-2 124M training shapes (BF16; AdamW
// F32 by contract), each against a ceiling measured in the same run.
//
//   bench_cuda_kernels [--quick] [--warmup 5] [--repeats 30] [--json FILE]
//
// Ceilings: a device-to-device copy of 1 GiB (read + write bytes) for memory-bound ops, a BF16 GEMM of
// 8192^3 (kernels/cuda/matmul_bf16.h) for compute-bound ones. Every figure is the median of `repeats`
// launches timed alone with CUDA events; before each, a 256 MiB memset evicts the L2 (50 MB on an H100, 60 on
// an H200), so no launch finds its inputs cached by the previous one. Bytes are an op's compulsory traffic
// (inputs read once, outputs written once, accumulated gradients read and written); FLOPs count 2 per
// multiply-add, causal attention only its unmasked half. bench/cuda_reference.py times the same cases
// in PyTorch; bench/gpu_report.py joins both JSON files into one table.
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_common.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/matmul_bf16.h"

namespace inkstone::bench {
namespace {

using cuda::current_stream;

constexpr size_t kArenaBytes = size_t{3} << 30;  // the largest case (the 1 GiB copy) needs 2 GiB
constexpr size_t kFlushBytes = size_t{256} << 20;

template <class T>
__global__ void fill_uniform_kernel(T* x, int64_t n, float lo, float hi, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = cuda::from_float<T>(lo + (hi - lo) * static_cast<float>(mix64(seed + i) >> 40) * 0x1p-24f);
}

__global__ void fill_ints_kernel(int32_t* x, int64_t n, uint32_t bound, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = static_cast<int32_t>(mix64(seed + i) % bound);
}

struct Result {
  std::string name, shape, dtype, error;
  double us = 0, bytes = 0, flops = 0;  // bytes for memory-bound cases, flops for compute-bound ones
  bool compute() const { return flops > 0; }
  double achieved() const { return compute() ? flops / us * 1e-6 : bytes / us * 1e-3; }  // TFLOP/s, GB/s
};
Result memory_bound(std::string name, std::string shape, std::string dtype, double bytes) {
  return {std::move(name), std::move(shape), std::move(dtype), "", 0, bytes, 0};
}
Result compute_bound(std::string name, std::string shape, std::string dtype, double flops) {
  return {std::move(name), std::move(shape), std::move(dtype), "", 0, 0, flops};
}

// Owns one arena (tensors are carved from it, case by case), the L2 flush buffer and the events.
class Bench {
 public:
  Bench(int warmup, int repeats) : warmup_(warmup), start_(repeats), stop_(repeats) {
    INKSTONE_CUDA_CHECK(cudaMalloc(&arena_, kArenaBytes));
    INKSTONE_CUDA_CHECK(cudaMalloc(&flush_, kFlushBytes));
    for (int i = 0; i < repeats; ++i) {
      INKSTONE_CUDA_CHECK(cudaEventCreate(&start_[i]));
      INKSTONE_CUDA_CHECK(cudaEventCreate(&stop_[i]));
    }
  }
  ~Bench() {
    for (size_t i = 0; i < start_.size(); ++i) cudaEventDestroy(start_[i]), cudaEventDestroy(stop_[i]);
    cudaFree(flush_);
    cudaFree(arena_);
  }
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  void reset() { used_ = 0; }  // a new case: its tensors reuse the arena

  Tensor take(DType dtype, std::initializer_list<int64_t> shape) {
    Tensor t(arena_ + used_, dtype, shape);
    used_ += (t.nbytes() + 255) & ~size_t{255};
    if (used_ > kArenaBytes) fail("bench arena of {} GiB is too small; raise kArenaBytes", kArenaBytes >> 30);
    return t;
  }
  // Uniform in [lo, hi): every launch computes on finite, plausible values.
  Tensor random(DType dtype, std::initializer_list<int64_t> shape, float lo, float hi) {
    Tensor t = take(dtype, shape);
    const int64_t n = t.numel();
    const int blocks = cuda::grid_for(n, 256);
    const uint64_t seed = mix64(++seed_);
    if (dtype == DType::F32)
      fill_uniform_kernel<<<blocks, 256, 0, current_stream()>>>(t.as<float>(), n, lo, hi, seed);
    else
      fill_uniform_kernel<<<blocks, 256, 0, current_stream()>>>(t.as<__nv_bfloat16>(), n, lo, hi, seed);
    INKSTONE_CUDA_CHECK_LAUNCH();
    return t;
  }
  Tensor ints(std::initializer_list<int64_t> shape, uint32_t bound) {
    Tensor t = take(DType::I32, shape);
    fill_ints_kernel<<<cuda::grid_for(t.numel(), 256), 256, 0, current_stream()>>>(t.as<int32_t>(), t.numel(),
                                                                                   bound, mix64(++seed_));
    INKSTONE_CUDA_CHECK_LAUNCH();
    return t;
  }

  // Times `launch` and records the case; an op that throws (unsupported shape, CUDA error) is
  // recorded with its message and the run goes on.
  void time(Result r, const std::function<void()>& launch) {
    try {
      r.us = median_us(launch);
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    results.push_back(r);
  }

  std::vector<Result> results;

 private:
  double median_us(const std::function<void()>& launch) {
    const int repeats = static_cast<int>(start_.size());
    for (int i = 0; i < warmup_ + repeats; ++i) {
      INKSTONE_CUDA_CHECK(cudaMemsetAsync(flush_, i & 0xff, kFlushBytes, current_stream()));
      if (i >= warmup_) INKSTONE_CUDA_CHECK(cudaEventRecord(start_[i - warmup_], current_stream()));
      launch();
      if (i >= warmup_) INKSTONE_CUDA_CHECK(cudaEventRecord(stop_[i - warmup_], current_stream()));
    }
    INKSTONE_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
    std::vector<double> us(repeats);
    for (int i = 0; i < repeats; ++i) {
      float ms = 0;
      INKSTONE_CUDA_CHECK(cudaEventElapsedTime(&ms, start_[i], stop_[i]));
      us[i] = 1e3 * ms;
    }
    return median(us);
  }

  int warmup_;
  std::vector<cudaEvent_t> start_, stop_;
  char* arena_ = nullptr;
  void* flush_ = nullptr;
  size_t used_ = 0;
  uint64_t seed_ = 1337;
};

constexpr DType BF16 = DType::BF16, F32 = DType::F32;
constexpr int64_t kVocab = 50257, kPaddedVocab = 50304;

void ceilings(Bench& b) {
  b.reset();
  const int64_t n = int64_t{1} << 30;
  void* src = b.random(BF16, {n / 2}, -1, 1).data;
  void* dst = b.take(BF16, {n / 2}).data;
  b.time(memory_bound("copy_d2d", "1 GiB", "-", 2.0 * n), [&] {
    INKSTONE_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, current_stream()));
  });
  b.reset();
  const int s = 8192;
  const Tensor x = b.random(BF16, {s, s}, -1, 1), w = b.random(BF16, {s, s}, -1, 1), y = b.take(BF16, {s, s});
  b.time(compute_bound("gemm_bf16", "8192x8192x8192", "bf16", 2.0 * s * s * s),
         [&] { cuda::gemm_bf16_for_benchmark(s, s, s, x.data, w.data, y.data); });
}

void row_ops(Bench& b) {
  const int64_t N = 8192, Vp = kPaddedVocab;
  b.reset();
  const Tensor logits = b.random(BF16, {N, Vp}, -4, 4), losses = b.take(F32, {N});
  const Tensor targets = b.ints({N}, kVocab);
  // After the first launch the logits hold dlogits: small finite values, the same work.
  b.time(memory_bound("cross_entropy", "N=8192 V=50304", "bf16", 4.0 * N * Vp + 8.0 * N), [&] {
    cuda::cross_entropy({losses, logits, logits, targets, kVocab, 1.0f / N});
  });
  b.reset();
  const Tensor inp = b.random(BF16, {N, Vp}, -4, 4), out = b.take(BF16, {N, Vp});
  b.time(memory_bound("softmax", "N=8192 V=50304", "bf16", 4.0 * N * Vp), [&] {
    cuda::softmax_forward({out, inp, static_cast<int>(kVocab)});
  });

  const int64_t R = 16384, C = 768;
  b.reset();
  const Tensor x = b.random(BF16, {R, C}, -2, 2), y = b.take(BF16, {R, C});
  const Tensor w = b.random(BF16, {C}, 0.5f, 1.5f), bias = b.random(BF16, {C}, -0.1f, 0.1f);
  const Tensor mean = b.take(F32, {R}), rstd = b.take(F32, {R});
  const Tensor dy = b.random(BF16, {R, C}, -1, 1), dx = b.random(BF16, {R, C}, -1, 1);
  const Tensor dw = b.random(BF16, {C}, -1, 1), db = b.random(BF16, {C}, -1, 1);
  b.time(memory_bound("layernorm_fwd", "N=16384 C=768", "bf16", 4.0 * R * C + 4.0 * C + 8.0 * R), [&] {
    cuda::layernorm_forward({y, mean, rstd, x, w, bias});
  });
  // The residual stream's add fused with the LayerNorm that follows it: reads a and b, writes the sum
  // and the normalised rows (the sum is read back from cache, not counted).
  const Tensor add_b = b.random(BF16, {R, C}, -2, 2), sum = b.take(BF16, {R, C});
  b.time(memory_bound("residual_layernorm_fwd", "N=16384 C=768", "bf16", 8.0 * R * C + 4.0 * C + 8.0 * R),
         [&] {
           cuda::residual_layernorm_forward({sum, y, mean, rstd, x, add_b, w, bias});
         });
  // The backward pass reads the forward's mean and rstd (valid when the forward case ran).
  b.time(memory_bound("layernorm_bwd", "N=16384 C=768", "bf16", 8.0 * R * C + 10.0 * C + 8.0 * R), [&] {
    cuda::layernorm_backward({dx, dw, db, dy, x, w, mean, rstd});
  });

  b.reset();
  const Tensor g_in = b.random(BF16, {R, 4 * C}, -4, 4), g_out = b.take(BF16, {R, 4 * C});
  b.time(memory_bound("gelu_fwd", "N=16384 C=3072", "bf16", 4.0 * R * 4 * C), [&] {
    cuda::gelu_forward({g_out, g_in});
  });
}

// B*T = 8192 tokens at every T (B*NH*T ~ 98k token-heads), C = NH*hd = 768.
void attention(Bench& b, int hd, int T) {
  const int NH = 768 / hd, B = 8192 / T, C = NH * hd;
  b.reset();
  const Tensor qkv = b.random(BF16, {B, T, 3 * C}, -1, 1), out = b.take(BF16, {B, T, C});
  const Tensor lse = b.take(F32, {B, NH, T});
  const Tensor dout = b.random(BF16, {B, T, C}, -1, 1), dqkv = b.random(BF16, {B, T, 3 * C}, -1, 1);
  const std::string shape = fmt::format("B={} NH={} T={} hd={}", B, NH, T, hd);
  const double fwd_flops = 4.0 * B * NH * T * T * hd / 2;
  b.time(compute_bound(fmt::format("attention_fwd_hd{}_T{}", hd, T), shape, "bf16", fwd_flops), [&] {
    cuda::attention_forward({out, lse, qkv, NH});
  });
  // out and lse come from the forward case above, as in training.
  b.time(compute_bound(fmt::format("attention_bwd_hd{}_T{}", hd, T), shape, "bf16", 2.5 * fwd_flops), [&] {
    cuda::attention_backward({dqkv, dout, qkv, out, lse, NH});
  });
}

// One decoded token per sequence at position 4000: it reads 4001 cached keys and values.
void attention_decode(Bench& b) {
  const int B = 8, NH = 12, hd = 64, C = NH * hd, capacity = 4096, pos = 4000;
  b.reset();
  const Tensor qkv = b.random(BF16, {B, 1, 3 * C}, -1, 1), out = b.take(BF16, {B, 1, C});
  const Tensor k = b.random(BF16, {B, NH, capacity, hd}, -1, 1),
               v = b.random(BF16, {B, NH, capacity, hd}, -1, 1);
  const Tensor start = b.take(DType::I32, {B});
  const std::vector<int32_t> starts(B, pos);
  INKSTONE_CUDA_CHECK(cudaMemcpy(start.data, starts.data(), B * sizeof(int32_t), cudaMemcpyHostToDevice));
  b.time(memory_bound("attention_kv_cache", "B=8 NH=12 hd=64 pos=4000 cap=4096", "bf16",
                      2.0 * B * NH * (pos + 1) * hd * 2),
         [&] {
           cuda::attention_kv_cache({out, qkv, k, v, start, NH});
         });
}

void adamw(Bench& b) {
  const int64_t n = 124475904;  // GPT-2 124M with the vocab padded to 50304
  b.reset();
  const Tensor p = b.random(F32, {n}, -0.1f, 0.1f), g = b.random(F32, {n}, -0.01f, 0.01f);
  const Tensor m = b.random(F32, {n}, -1e-3f, 1e-3f), v = b.random(F32, {n}, 0, 1e-5f);
  b.time(memory_bound("adamw", "124475904 params", "f32", 7.0 * 4 * n), [&] {
    cuda::adamw_update({p, g, m, v, Tensor{}, 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 10});
  });
}

// The GEMMs of a GPT-2 124M layer (and the tied lm_head) at N = B*T = 8192.
void matmuls(Bench& b, bool quick) {
  struct Shape {
    const char* name;
    int64_t C, OC;
    WeightLayout layout;
    bool in_quick_set;
  };
  const Shape shapes[] = {{"matmul_qkv", 768, 2304, WeightLayout::InOut, true},
                          {"matmul_fc", 768, 3072, WeightLayout::InOut, false},
                          {"matmul_proj", 3072, 768, WeightLayout::InOut, false},
                          {"matmul_lm_head", 768, kPaddedVocab, WeightLayout::OutIn, true}};
  const int64_t N = 8192;
  for (const Shape& s : shapes) {
    if (quick && !s.in_quick_set) continue;
    b.reset();
    const bool in_out = s.layout == WeightLayout::InOut;
    const Tensor inp = b.random(BF16, {N, s.C}, -1, 1), out = b.take(BF16, {N, s.OC});
    const Tensor w =
        in_out ? b.random(BF16, {s.C, s.OC}, -0.05f, 0.05f) : b.random(BF16, {s.OC, s.C}, -0.05f, 0.05f);
    const Tensor bias = in_out ? b.random(BF16, {s.OC}, -0.1f, 0.1f) : Tensor{};
    b.time(compute_bound(s.name, fmt::format("{}x{} -> {}", N, s.C, s.OC), "bf16", 2.0 * N * s.C * s.OC),
           [&] {
             cuda::matmul_forward({out, inp, w, bias, Tensor{}, s.layout});
           });
  }
}

std::string work(const Result& r) {
  return r.compute() ? fmt::format("{:.1f} GFLOP", r.flops * 1e-9) : fmt::format("{:.1f} MB", r.bytes * 1e-6);
}

// Prints the table and returns its cases as JSON; fractions are of the copy or the GEMM ceiling.
nlohmann::json report(const std::vector<Result>& results, double copy_gbps, double gemm_tflops) {
  fmt::print("ceilings: copy {:.0f} GB/s, bf16 GEMM {:.1f} TFLOP/s\n\n", copy_gbps, gemm_tflops);
  fmt::print("{:<26} {:<34} {:<5} {:>10} {:>12} {:>15} {:>8}\n", "case", "shape", "dtype", "median us",
             "work", "achieved", "of ceil");
  nlohmann::json cases = nlohmann::json::array();
  for (const Result& r : results) {
    nlohmann::json c = {{"name", r.name}, {"shape", r.shape}, {"dtype", r.dtype}};
    if (!r.error.empty()) {
      fmt::print("{:<26} {:<34} {:<5} error: {}\n", r.name, r.shape, r.dtype, r.error);
      c["error"] = r.error;
      cases.push_back(c);
      continue;
    }
    const double ceiling = r.compute() ? gemm_tflops : copy_gbps;
    const double fraction = ceiling > 0 ? r.achieved() / ceiling : 0;
    const char* unit = r.compute() ? "TFLOP/s" : "GB/s";
    fmt::print("{:<26} {:<34} {:<5} {:>10.1f} {:>12} {:>7.1f} {:<7} {:>8.2f}\n", r.name, r.shape, r.dtype,
               r.us, work(r), r.achieved(), unit, fraction);
    c["us"] = r.us;
    c[r.compute() ? "flops" : "bytes"] = r.compute() ? r.flops : r.bytes;
    c["achieved"] = r.achieved();
    c["unit"] = unit;
    c["fraction_of_ceiling"] = fraction;
    cases.push_back(c);
  }
  return cases;
}

struct Options {
  bool quick = false;
  int warmup = 5, repeats = 30;
  std::string json;
};

int run(const Options& o) {
  cudaDeviceProp prop{};
  INKSTONE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  fmt::print("bench_cuda_kernels: {} ({} SMs, {:.0f} GiB), median of {} launches, L2 flushed before each{}\n",
             prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, o.repeats,
             o.quick ? ", quick set" : "");
  Bench b(o.warmup, o.repeats);
  std::string aborted;  // a kernel fault poisons the context: report what was measured before it
  try {
    ceilings(b);
    row_ops(b);
    for (int hd : {64, 128})
      for (int T : {1024, 2048, 4096})
        if (!o.quick || (hd == 64 && T == 1024)) attention(b, hd, T);
    attention_decode(b);
    adamw(b);
    matmuls(b, o.quick);
  } catch (const std::exception& e) {
    aborted = e.what();
  }
  if (b.results.size() < 2) fail("the ceilings could not be measured: {}", aborted);

  const Result &copy = b.results[0], &gemm = b.results[1];
  const double copy_gbps = copy.error.empty() ? copy.achieved() : 0;
  const double gemm_tflops = gemm.error.empty() ? gemm.achieved() : 0;
  const nlohmann::json cases = report(b.results, copy_gbps, gemm_tflops);
  if (!aborted.empty()) fmt::print("aborted after {} cases: {}\n", b.results.size(), aborted);
  if (!o.json.empty()) {
    write_json(o.json, {{"bench", "cuda_kernels"},
                        {"implementation", "inkstone"},
                        {"device", prop.name},
                        {"quick", o.quick},
                        {"repeats", o.repeats},
                        {"ceilings", {{"copy_gbps", copy_gbps}, {"gemm_tflops", gemm_tflops}}},
                        {"cases", cases},
                        {"aborted", aborted}});
  }
  return aborted.empty() ? 0 : 1;
}

}  // namespace
}  // namespace inkstone::bench

int main(int argc, char** argv) {
  inkstone::bench::Options o;
  CLI::App app{"Time the CUDA kernels at GPT-2 124M shapes against measured copy and GEMM ceilings"};
  app.add_flag("--quick", o.quick, "a reduced set: attention at hd 64, T 1024 only; two of the four GEMMs");
  app.add_option("--warmup", o.warmup, "untimed launches first")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--repeats", o.repeats, "timed launches (median)")
      ->capture_default_str()
      ->check(CLI::Range(20, 1000));
  app.add_option("--json", o.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return inkstone::bench::run_reporting_errors("bench_cuda_kernels", [&] { return inkstone::bench::run(o); });
}
