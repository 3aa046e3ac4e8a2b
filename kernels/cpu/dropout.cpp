// Inverted dropout (see Dropout in kernels/ops.h): out = inp * keep / (1 - p). Precision: fp32.
// OVERWRITES out, which may alias inp. The mask is recomputed from (seed, index), so forward and
// backward use the same op and the result does not depend on the thread count.
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {

using namespace detail;

void dropout(const Dropout& p) {
  constexpr const char* op = "cpu::dropout";
  require_f32(p.inp, op, "inp");
  require_f32(p.out, op, "out");
  const int64_t n = p.out.numel();
  require_numel(p.inp, n, op, "inp");
  require(p.p >= 0.0f && p.p < 1.0f, op, "p must be in [0, 1)");
  const float* inp = p.inp.as<float>();
  float* out = p.out.as<float>();
  const uint32_t threshold = dropout_threshold(p.p);
  const float scale = 1.0f / (1.0f - p.p);
  const uint64_t seed = p.seed;
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
  for (int64_t i = 0; i < n; ++i) {
    out[i] = dropout_keeps(seed, static_cast<uint64_t>(i), threshold) ? inp[i] * scale : 0.0f;
  }
}

}  // namespace inkstone::cpu
