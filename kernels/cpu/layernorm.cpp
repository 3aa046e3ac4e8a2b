// LayerNorm over the last dimension: out = (inp - mean) * rstd * weight + bias.
// Layout: inp, out, dout, dinp [N,C] (any leading dims); weight, bias [C]; mean, rstd [N]. Precision: fp32,
// row statistics by two passes over the row (mean first, then the centred variance: no cancellation); the
// row is kernels/cpu/layernorm_row.h, which residual_layernorm.cpp shares.
// Forward OVERWRITES out, mean and rstd (mean and rstd may be absent when no backward pass follows).
// Backward ACCUMULATES into dinp, dweight and dbias. dweight/dbias are column sums over rows: each thread
// sums its own block of rows into a private buffer and the buffers are added in thread order, so the
// result is deterministic for a fixed thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/layernorm_row.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

void check_stats(const char* op, const Tensor& mean, const Tensor& rstd, int64_t N) {
  require_f32_numel(mean, N, op, "mean");
  require_f32_numel(rstd, N, op, "rstd");
}

}  // namespace

void layernorm_forward(const LayerNormForward& p) {
  constexpr const char* op = "cpu::layernorm_forward";
  require_f32(p.inp, op, "inp");
  const int64_t C = p.inp.dim(-1), N = rows(p.inp);
  require_f32_numel(p.out, N * C, op, "out");
  require_f32_numel(p.weight, C, op, "weight");
  require_f32_numel(p.bias, C, op, "bias");
  const bool save_stats = p.mean.defined() || p.rstd.defined();
  if (save_stats) check_stats(op, p.mean, p.rstd, N);

  const float* inp = p.inp.as<float>();
  const float* weight = p.weight.as<float>();
  const float* bias = p.bias.as<float>();
  float* out = p.out.as<float>();
  float* mean_out = save_stats ? p.mean.as<float>() : nullptr;
  float* rstd_out = save_stats ? p.rstd.as<float>() : nullptr;
#pragma omp parallel for schedule(static) if (N * C >= kParallelElementwise)
  for (int64_t n = 0; n < N; ++n) {
    const RowStatistics s = layernorm_row(out + n * C, inp + n * C, weight, bias, C, p.eps);
    if (save_stats) {
      mean_out[n] = s.mean;
      rstd_out[n] = s.rstd;
    }
  }
}

void layernorm_backward(const LayerNormBackward& p) {
  constexpr const char* op = "cpu::layernorm_backward";
  require_f32(p.inp, op, "inp");
  const int64_t C = p.inp.dim(-1), N = rows(p.inp);
  require_f32_numel(p.dinp, N * C, op, "dinp");
  require_f32_numel(p.dout, N * C, op, "dout");
  require_f32_numel(p.weight, C, op, "weight");
  require_f32_numel(p.dweight, C, op, "dweight");
  require_f32_numel(p.dbias, C, op, "dbias");
  check_stats(op, p.mean, p.rstd, N);

  const float* inp = p.inp.as<float>();
  const float* dout = p.dout.as<float>();
  const float* weight = p.weight.as<float>();
  const float* means = p.mean.as<float>();
  const float* rstds = p.rstd.as<float>();
  float* dinp = p.dinp.as<float>();
  const float inv_c = 1.0f / static_cast<float>(C);
  const bool parallel = N * C >= kParallelElementwise;
  const int threads = parallel ? omp_get_max_threads() : 1;
  // [thread][dweight | dbias][C]; kept between calls so the training loop does not allocate.
  // Only the calling thread may name the thread_local: the team shares it through this reference.
  thread_local std::vector<float> kept;
  std::vector<float>& partial = kept;
  partial.assign(static_cast<size_t>(threads) * 2 * C, 0.0f);

#pragma omp parallel num_threads(threads)
  {
    float* dweight_part = partial.data() + omp_get_thread_num() * 2 * C;
    float* dbias_part = dweight_part + C;
    const Range row_range = this_thread_range(N);
    for (int64_t n = row_range.begin; n < row_range.end; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const float mean = means[n], rstd = rstds[n];
      // dnorm = weight * dout; dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)).
      float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
      for (int64_t c = 0; c < C; ++c) {
        const float dnorm = weight[c] * d[c];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * (x[c] - mean) * rstd;
      }
      dnorm_mean *= inv_c;
      dnorm_norm_mean *= inv_c;
      float* dx = dinp + n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float norm = (x[c] - mean) * rstd;
        dweight_part[c] += norm * d[c];
        dbias_part[c] += d[c];
        dx[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * rstd;
      }
    }
#pragma omp barrier
    float* dweight = p.dweight.as<float>();
    float* dbias = p.dbias.as<float>();
    const Range cols = this_thread_range(C, 16);
    for (int t = 0; t < threads; ++t) {
      const float* part = partial.data() + t * 2 * C;
#pragma omp simd
      for (int64_t c = cols.begin; c < cols.end; ++c) {
        dweight[c] += part[c];
        dbias[c] += part[C + c];
      }
    }
  }
}

}  // namespace inkstone::cpu
