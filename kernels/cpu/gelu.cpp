// GELU, tanh approximation (GPT-2's "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Layout: any shape, elementwise. Precision: fp32 with a vectorised exp (kernels/cpu/vec_math.h).
// Forward OVERWRITES out (may alias inp). Backward ACCUMULATES: dinp += gelu'(inp) * dout, and dinp
// must not alias dout.
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace inkstone::cpu {

using namespace detail;

void gelu_forward(const GeluForward& p) {
  constexpr const char* op = "cpu::gelu_forward";
  require_f32(p.inp, op, "inp");
  require_f32(p.out, op, "out");
  const int64_t n = p.inp.numel();
  require_numel(p.out, n, op, "out");
  const float* inp = p.inp.as<float>();
  float* out = p.out.as<float>();
#pragma omp parallel for simd schedule(static) if (n >= kParallelElementwise)
  for (int64_t i = 0; i < n; ++i) out[i] = gelu(inp[i]);
}

void gelu_backward(const GeluBackward& p) {
  constexpr const char* op = "cpu::gelu_backward";
  require_f32(p.inp, op, "inp");
  require_f32(p.dout, op, "dout");
  require_f32(p.dinp, op, "dinp");
  const int64_t n = p.inp.numel();
  require_numel(p.dout, n, op, "dout");
  require_numel(p.dinp, n, op, "dinp");
  require(p.dinp.data != p.dout.data, op, "dinp must not alias dout");
  const float* inp = p.inp.as<float>();
  const float* dout = p.dout.as<float>();
  float* dinp = p.dinp.as<float>();
#pragma omp parallel for simd schedule(static) if (n >= kParallelElementwise)
  for (int64_t i = 0; i < n; ++i) dinp[i] += gelu_grad(inp[i]) * dout[i];
}

}  // namespace inkstone::cpu
