// Cast between F32 and BF16. Layout: any shape, out.numel() == inp.numel(). OVERWRITES out.
// Precision: F32 -> BF16 rounds to nearest, ties to even, keeps NaN a NaN (kernels/cpu/bf16.h);
// BF16 -> F32 is exact. F32 -> F32 is a copy.
#include <cstring>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {

using namespace detail;

void cast(const Cast& p) {
  constexpr const char* op = "cpu::cast";
  require(p.inp.defined() && p.out.defined(), op, "inp and out are required");
  const int64_t n = p.inp.numel();
  require_numel(p.out, n, op, "out");
  const bool parallel = n >= kParallelElementwise;
  if (p.inp.dtype == DType::F32 && p.out.dtype == DType::BF16) {
    const float* inp = p.inp.as<float>();
    uint16_t* out = p.out.as<uint16_t>();
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(inp[i]);
  } else if (p.inp.dtype == DType::BF16 && p.out.dtype == DType::F32) {
    const uint16_t* inp = p.inp.as<uint16_t>();
    float* out = p.out.as<float>();
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(inp[i]);
  } else if (p.inp.dtype == p.out.dtype && p.inp.dtype != DType::I32) {
    if (p.out.data != p.inp.data) std::memcpy(p.out.data, p.inp.data, p.inp.nbytes());
  } else {
    contract_violation(op, "only F32 <-> BF16 casts are supported");
  }
}

}  // namespace inkstone::cpu
