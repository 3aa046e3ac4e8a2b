// Thread control for the CPU backend. All parallel work runs on the OpenMP team, GEMMs included:
// matmul.cpp gives each OpenMP thread a column slice and one single-threaded sgemm. OpenBLAS is kept
// at one thread because its own pool and OpenMP's would take turns on the same cores, each spinning
// while the other works (measured: the GPT-2 training step 1.6x slower).
#include <cblas.h>
#include <omp.h>

#include <sstream>
#include <string>

#include "kernels/cpu/blas_setup.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"

namespace inkstone::cpu {

void set_num_threads(int n) {
  detail::require(n >= 1, "cpu::set_num_threads", "thread count must be >= 1");
  detail::prepare_blas();  // OpenBLAS stays at one thread: the OpenMP team runs the GEMMs
  omp_set_num_threads(n);
}

int num_threads() {
  return omp_get_max_threads();
}

// "OpenBLAS 0.3.21 (SkylakeX)": library and version from the build configuration, then the kernel
// family in use (see blas_setup.cpp for how it is chosen).
std::string blas_description() {
  detail::prepare_blas();
  std::istringstream config(openblas_get_config());
  std::string name, version;
  config >> name >> version;
  std::string description = name.empty() ? std::string("OpenBLAS") : name;
  if (!version.empty()) description += " " + version;
  return description + " (" + openblas_get_corename() + ")";
}

}  // namespace inkstone::cpu
