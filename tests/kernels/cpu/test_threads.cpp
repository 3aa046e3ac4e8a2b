// Thread control: the OpenMP team size is the backend's thread count, OpenBLAS stays single-threaded
// (each OpenMP thread runs its own GEMM slice), and the BLAS description names the library.
#include <cblas.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_ops.h"

namespace inkstone {
namespace {

TEST(Threads, SetNumThreadsSizesTheOpenMpTeamAndKeepsOpenBlasSingleThreaded) {
  const int original = cpu::num_threads();
  for (int n : {1, 3, original}) {
    cpu::set_num_threads(n);
    EXPECT_EQ(cpu::num_threads(), n);
    EXPECT_EQ(omp_get_max_threads(), n);
    EXPECT_EQ(openblas_get_num_threads(), 1);
  }
}

// Read before any test sets OpenBLAS up (which exports the core it picks in the same variable).
const bool kUserChoseBlasCore = std::getenv("OPENBLAS_CORETYPE") != nullptr;

TEST(Threads, BlasRunsKernelsWithTheCpusVectorUnits) {
  cpu::blas_description();  // sets OpenBLAS up, as the first GEMM would
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "CPU without AVX2";
  if (kUserChoseBlasCore) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice stands";
  // OpenBLAS 0.3.21 falls back to Prescott (SSE3) kernels on CPUs newer than its tables.
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge"})
    EXPECT_STRNE(openblas_get_corename(), old);
}

// An OpenMP build of OpenBLAS implements openblas_set_num_threads(1) with omp_set_num_threads(1);
// setting OpenBLAS up must not shrink our team. (ctest runs each test in a fresh process, so this
// is the first BLAS use there.)
TEST(Threads, SettingUpOpenBlasLeavesTheOpenMpTeamAlone) {
  const int before = omp_get_max_threads();
  cpu::blas_description();
  EXPECT_EQ(omp_get_max_threads(), before);
}

TEST(Threads, RejectsZeroThreads) {
  EXPECT_THROW(cpu::set_num_threads(0), std::invalid_argument);
}

TEST(Threads, BlasDescriptionNamesLibraryVersionAndCore) {
  const std::string d = cpu::blas_description();
  EXPECT_EQ(d.rfind("OpenBLAS ", 0), 0u) << d;
  EXPECT_NE(d.find('.'), std::string::npos) << "a version number: " << d;
  EXPECT_NE(d.find(std::string("(") + openblas_get_corename() + ")"), std::string::npos) << d;
}

}  // namespace
}  // namespace inkstone
