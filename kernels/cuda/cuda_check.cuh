// One family of checks for CUDA, cuBLAS(Lt) and NCCL calls, with a single [[noreturn]] error path
// that throws (library code never exits). Every launch is followed by INKSTONE_CUDA_CHECK_LAUNCH().
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <nccl.h>

namespace inkstone::cuda {

[[noreturn]] void throw_error(const char* library, const char* what, const char* call, const char* file,
                              int line);

}  // namespace inkstone::cuda

#define INKSTONE_CUDA_CHECK(call)                                                                    \
  do {                                                                                               \
    cudaError_t status_ = (call);                                                                    \
    if (status_ != cudaSuccess)                                                                      \
      ::inkstone::cuda::throw_error("CUDA", cudaGetErrorString(status_), #call, __FILE__, __LINE__); \
  } while (0)

#define INKSTONE_CUDA_CHECK_LAUNCH() INKSTONE_CUDA_CHECK(cudaGetLastError())

#define INKSTONE_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                                    \
    cublasStatus_t status_ = (call);                                                                      \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                                 \
      ::inkstone::cuda::throw_error("cuBLAS", cublasGetStatusString(status_), #call, __FILE__, __LINE__); \
  } while (0)

#define INKSTONE_NCCL_CHECK(call)                                                                    \
  do {                                                                                               \
    ncclResult_t status_ = (call);                                                                   \
    if (status_ != ncclSuccess)                                                                      \
      ::inkstone::cuda::throw_error("NCCL", ncclGetErrorString(status_), #call, __FILE__, __LINE__); \
  } while (0)
