// OpenBLAS setup: one thread per call, and kernels that match the CPU.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's, among others) picks its kernels from the CPU model number when
// it loads. A CPU newer than the library is not in its table, and OpenBLAS 0.3.21 then falls back
// to "Prescott" (SSE3) kernels: on a Sapphire/Emerald Rapids Xeon that makes every GEMM about 2.5x
// slower than the AVX-512 kernels it ships. When that happens and the user has not chosen a core
// with OPENBLAS_CORETYPE, we choose the newest family the CPU's instruction set supports and ask
// OpenBLAS to re-run its own selection, before the first GEMM. The entry points are declared weak:
// a single-target OpenBLAS build does not have them and is left alone.
#include "kernels/cpu/blas_setup.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

extern "C" {
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}

namespace inkstone::cpu::detail {
namespace {

// Kernel families without AVX2 GEMM kernels, which OpenBLAS also uses as fallbacks.
bool is_pre_avx2_core(const char* core) {
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Unknown"})
    if (std::strcmp(core, old) == 0) return true;
  return false;
}

const char* best_supported_core() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

void select_kernels() {
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return;  // not a DYNAMIC_ARCH build
  if (std::getenv("OPENBLAS_CORETYPE")) return;                  // the user's choice stands
  const char* core = openblas_get_corename();
  const char* better = best_supported_core();
  if (!core || !better || !is_pre_avx2_core(core)) return;
  setenv("OPENBLAS_CORETYPE", better, 0);  // read by OpenBLAS's selection, and by child processes
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
}

}  // namespace

void prepare_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    select_kernels();
    // An OpenMP build of OpenBLAS implements this with omp_set_num_threads(1), which would leave
    // every later parallel region of ours on one thread: keep our setting.
    const int ours = omp_get_max_threads();
    openblas_set_num_threads(1);
    omp_set_num_threads(ours);
  });
}

}  // namespace inkstone::cpu::detail
