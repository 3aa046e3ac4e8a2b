// One-time OpenBLAS setup shared by the ops that call BLAS (internal to kernels/cpu).
#pragma once

namespace inkstone::cpu::detail {

// Before the first BLAS call: OpenBLAS single-threaded (its callers are the OpenMP threads, see
// matmul.cpp) and running kernels that match this CPU. Idempotent and thread-safe.
void prepare_blas();

}  // namespace inkstone::cpu::detail
