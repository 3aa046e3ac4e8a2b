// Residual add: out = a + b, elementwise over tensors of the same size. Precision: fp32.
// OVERWRITES out, which may alias a or b (each element is read before it is written).
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {

using namespace detail;

void add(const Add& p) {
  constexpr const char* op = "cpu::add";
  require_f32(p.a, op, "a");
  require_f32(p.b, op, "b");
  require_f32(p.out, op, "out");
  const int64_t n = p.out.numel();
  require_numel(p.a, n, op, "a");
  require_numel(p.b, n, op, "b");
  const float* a = p.a.as<float>();
  const float* b = p.b.as<float>();
  float* out = p.out.as<float>();
#pragma omp parallel for simd schedule(static) if (n >= kParallelElementwise)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace inkstone::cpu
