// Static work splitting inside an OpenMP parallel region. Each thread gets one contiguous range, so
// per-thread partial sums combine in a fixed order: results are deterministic for a fixed thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace inkstone::cpu::detail {

struct Range {
  int64_t begin = 0, end = 0;
};

// The slice of [0, n) owned by thread `thread` of `threads`, boundaries rounded to multiples of `align`
// (so SIMD loops over columns start aligned to whole vectors).
inline Range split_range(int64_t n, int thread, int threads, int64_t align = 1) {
  const int64_t blocks = (n + align - 1) / align;
  const int64_t per = blocks / threads, extra = blocks % threads;
  const int64_t first = thread * per + std::min<int64_t>(thread, extra);
  const int64_t count = per + (thread < extra ? 1 : 0);
  return {std::min(n, first * align), std::min(n, (first + count) * align)};
}

inline Range this_thread_range(int64_t n, int64_t align = 1) {
  return split_range(n, omp_get_thread_num(), omp_get_num_threads(), align);
}

// Elementwise loops below this size run on one thread: waking the team costs more than the work.
constexpr int64_t kParallelElementwise = 1 << 15;

}  // namespace inkstone::cpu::detail
