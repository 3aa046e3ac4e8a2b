// Fused softmax + cross-entropy over padded logits; probabilities are never stored.
// Layout: logits, dlogits [N, Vp] with the first vocab_size columns real; targets I32 [N]; losses [N].
// Precision: fp32, max-subtracted log-sum-exp per row.
// OVERWRITES losses and (when defined) dlogits = dloss * (softmax - onehot(target)); padding columns
// get 0 and never enter the softmax. A target < 0 is ignored: loss 0 and an all-zero gradient row.
// dlogits may alias logits: a row's max and target logit are read before the row is overwritten, and
// the gradient pass writes exp(x - max) in place of x before scaling it.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/vec_math.h"

namespace inkstone::cpu {

using namespace detail;

void cross_entropy(const CrossEntropy& p) {
  constexpr const char* op = "cpu::cross_entropy";
  require_f32(p.logits, op, "logits");
  require_f32(p.losses, op, "losses");
  require_dtype(p.targets, DType::I32, op, "targets");
  const int64_t Vp = p.logits.dim(-1), N = rows(p.logits), V = p.vocab_size;
  require(V > 0 && V <= Vp, op, "vocab_size must be in [1, padded vocab]");
  require_numel(p.losses, N, op, "losses");
  require_numel(p.targets, N, op, "targets");
  const bool with_grad = p.dlogits.defined();
  if (with_grad) {
    require_f32(p.dlogits, op, "dlogits");
    require_numel(p.dlogits, N * Vp, op, "dlogits");
  }
  const int32_t* targets = p.targets.as<int32_t>();
  for (int64_t n = 0; n < N; ++n) require(targets[n] < V, op, "a target id is >= vocab_size");

  const float* logits = p.logits.as<float>();
  float* losses = p.losses.as<float>();
  float* dlogits = with_grad ? p.dlogits.as<float>() : nullptr;
  const float dloss = p.dloss;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = logits + n * Vp;
    float* dx = with_grad ? dlogits + n * Vp : nullptr;
    const int32_t target = targets[n];
    if (target < 0) {
      losses[n] = 0.0f;
      if (dx) std::fill(dx, dx + Vp, 0.0f);
      continue;
    }
    const float max = row_max(x, V, -std::numeric_limits<float>::infinity());
    const float target_logit = x[target];
    float sum = 0.0f;
    if (dx) {
#pragma omp simd reduction(+ : sum)
      for (int64_t v = 0; v < V; ++v) {
        dx[v] = exp_approx(x[v] - max);
        sum += dx[v];
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t v = 0; v < V; ++v) sum += exp_approx(x[v] - max);
    }
    losses[n] = std::log(sum) + max - target_logit;
    if (dx) {
      const float scale = dloss / sum;
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) dx[v] *= scale;
      dx[target] -= dloss;
      std::fill(dx + V, dx + Vp, 0.0f);
    }
  }
}

}  // namespace inkstone::cpu
