// Device discovery, library versions and the per-device cuBLASLt context.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

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

double datasheet_bf16_flops(int device) {
  cudaDeviceProp prop{};
  INKSTONE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  const std::string name = prop.name;
  const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756e12;
  if (has("H100") || has("H200") || has("H800") || has("GH200")) return 989.4e12;
  if (has("A100") || has("A800")) return 312e12;
  return 0;
}

void memory_info(size_t* free_bytes, size_t* total_bytes) {
  INKSTONE_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
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
