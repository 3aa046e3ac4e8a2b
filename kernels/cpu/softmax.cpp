// Row-wise softmax over the first valid_cols columns (the real vocabulary of padded logits).
// Layout: inp, out [N, cols]. Precision: fp32, max-subtracted. OVERWRITES out, padding columns with 0.
// out may alias inp: each element is read before it is written.
#include <algorithm>
#include <limits>

#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace inkstone::cpu {

using namespace detail;

void softmax_forward(const SoftmaxForward& p) {
  constexpr const char* op = "cpu::softmax_forward";
  require_f32(p.inp, op, "inp");
  require_f32(p.out, op, "out");
  const int64_t cols = p.inp.dim(-1), N = rows(p.inp), V = p.valid_cols;
  require_numel(p.out, N * cols, op, "out");
  require(V > 0 && V <= cols, op, "valid_cols must be in [1, cols]");
  const float* inp = p.inp.as<float>();
  float* out = p.out.as<float>();
#pragma omp parallel for schedule(static) if (N * cols >= kParallelElementwise)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * cols;
    float* y = out + n * cols;
    const float max = row_max(x, V, -std::numeric_limits<float>::infinity());
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < V; ++c) {
      y[c] = exp_approx(x[c] - max);
      sum += y[c];
    }
    const float inv_sum = 1.0f / sum;
#pragma omp simd
    for (int64_t c = 0; c < V; ++c) y[c] *= inv_sum;
    std::fill(y + V, y + cols, 0.0f);
  }
}

}  // namespace inkstone::cpu
