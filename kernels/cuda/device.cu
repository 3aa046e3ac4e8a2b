// Device discovery, library versions and the per-device cuBLASLt context.
#include <fmt/format.h>

#include <stdexcept>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device.h"

namespace inkstone::cuda {

void throw_error(const char* library, const char* what, const char* call, const char* file, int line) {
  throw std::runtime_error(fmt::format("{} error: {} in {} ({}:{})", library, what, call, file, line));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later queries start clean
    return 0;
  }
  return n;
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  INKSTONE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return fmt::format("{} (sm_{}{}, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                     static_cast<double>(prop.totalGlobalMem) / (1u << 30));
}

int nccl_version() {
  int version = 0;
  INKSTONE_NCCL_CHECK(ncclGetVersion(&version));
  return version;
}

size_t cublaslt_version() {
  return cublasLtGetVersion();
}

CublasLtContext::CublasLtContext(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t handle = nullptr;
  INKSTONE_CUBLAS_CHECK(cublasLtCreate(&handle));
  handle_ = handle;
  INKSTONE_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

CublasLtContext::~CublasLtContext() {
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

}  // namespace inkstone::cuda
