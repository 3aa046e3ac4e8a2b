// Residual add fused with the LayerNorm of its result: residual = a + b, out = LayerNorm(residual).
// Layout: a, b, residual, out [N,C] (any leading dims); weight, bias [C]; mean, rstd [N]. Precision: fp32.
// Bit-identical to add then layernorm_forward: the sum is the same single fp32 addition, and the row's
// LayerNorm is the same function (kernels/cpu/layernorm_row.h) reading the sum back from `residual`, so
// a LayerNorm recomputed later from residual gives the same out, mean and rstd. The fusion saves the
// second sweep over the rows: each row is summed and normalised while it is still in cache.
// OVERWRITES residual, out, mean and rstd (mean and rstd may be absent). residual may alias a or b (each
// element is read before it is written); out aliases none of a, b, residual (it is written while they
// are still read).
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/layernorm_row.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {

using namespace detail;

void residual_layernorm_forward(const ResidualLayerNormForward& p) {
  constexpr const char* op = "cpu::residual_layernorm_forward";
  require_f32(p.residual, op, "residual");
  const int64_t C = p.residual.dim(-1), N = rows(p.residual);
  require_f32_numel(p.out, N * C, op, "out");
  require_f32_numel(p.a, N * C, op, "a");
  require_f32_numel(p.b, N * C, op, "b");
  require_f32_numel(p.weight, C, op, "weight");
  require_f32_numel(p.bias, C, op, "bias");
  const bool save_stats = p.mean.defined() || p.rstd.defined();
  if (save_stats) {
    require_f32_numel(p.mean, N, op, "mean");
    require_f32_numel(p.rstd, N, op, "rstd");
  }
  require(p.out.data != p.a.data && p.out.data != p.b.data && p.out.data != p.residual.data, op,
          "out must alias none of a, b and residual");

  const float* a = p.a.as<float>();
  const float* b = p.b.as<float>();
  const float* weight = p.weight.as<float>();
  const float* bias = p.bias.as<float>();
  float* residual = p.residual.as<float>();
  float* out = p.out.as<float>();
  float* mean_out = save_stats ? p.mean.as<float>() : nullptr;
  float* rstd_out = save_stats ? p.rstd.as<float>() : nullptr;
#pragma omp parallel for schedule(static) if (N * C >= kParallelElementwise)
  for (int64_t n = 0; n < N; ++n) {
    float* x = residual + n * C;
    const float* an = a + n * C;
    const float* bn = b + n * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) x[c] = an[c] + bn[c];
    const RowStatistics s = layernorm_row(out + n * C, x, weight, bias, C, p.eps);
    if (save_stats) {
      mean_out[n] = s.mean;
      rstd_out[n] = s.rstd;
    }
  }
}

}  // namespace inkstone::cpu
