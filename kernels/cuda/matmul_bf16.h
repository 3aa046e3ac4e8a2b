// A bare BF16 GEMM on the same cuBLASLt path as cuda::matmul_forward, for the benchmark that measures
// the GEMM ceiling the matmul kernels are judged against. Plain C++ header (no CUDA types).
#pragma once

namespace inkstone::cuda {

// Row-major C[m,n] = A[m,k] . B[k,n]; A, B and C are BF16 device pointers, the products are summed in
// fp32 and C is OVERWRITTEN (rounded once to bf16). Launched on cuda::stream() without synchronising;
// the cuBLASLt plan for the shape is cached after the first call, as for matmul_forward.
// Throws std::invalid_argument when m, n or k is not positive.
void gemm_bf16_for_benchmark(int m, int n, int k, const void* a, const void* b, void* c);

}  // namespace inkstone::cuda
