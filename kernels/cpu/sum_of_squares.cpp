// Sum of squares of a tensor, for the global gradient norm. Layout: any shape; F32 or BF16.
// Precision: each element squared in double and summed in double. Deterministic for a fixed thread
// count: every thread sums one contiguous slice, and the partial sums are added in thread order.
#include <omp.h>

#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

template <class Element, class ToFloat>
double sum_of_squares_of(const Element* x, int64_t n, ToFloat to_float) {
  const int threads = n >= kParallelElementwise ? omp_get_max_threads() : 1;
  // Kept between calls (no allocation per step). Only the calling thread may name the thread_local:
  // the team shares it through this reference.
  thread_local std::vector<double> kept;
  std::vector<double>& partial = kept;
  partial.assign(threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const Range range = this_thread_range(n);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = range.begin; i < range.end; ++i) {
      const double value = to_float(x[i]);
      sum += value * value;
    }
    partial[omp_get_thread_num()] = sum;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

double sum_of_squares(Tensor t) {
  constexpr const char* op = "cpu::sum_of_squares";
  require(t.defined() || t.numel() == 0, op, "tensor is missing");
  const int64_t n = t.numel();
  if (n == 0) return 0.0;
  switch (t.dtype) {
    case DType::F32:
      return sum_of_squares_of(t.as<float>(), n, [](float x) { return x; });
    case DType::BF16:
      return sum_of_squares_of(t.as<uint16_t>(), n, bf16_to_float);
    default:
      contract_violation(op, "tensor must be F32 or BF16");
  }
}

}  // namespace inkstone::cpu
