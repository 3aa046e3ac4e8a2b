// Device discovery, library versions and the cuBLASLt context class (the ops are in
// kernels/cuda/cuda_ops.h). Plain C++ header (no CUDA types), so runtime/ can include it from .cpp
// files.
#pragma once

#include <cstddef>
#include <string>

namespace inkstone::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
std::string device_description(int device);  // "NVIDIA H200 (sm_90, 139.8 GiB)"
// The vendor's dense BF16 tensor-core peak of `device` in FLOP/s (H100 SXM / H200: 989.4e12,
// H100 PCIe: 756e12, A100: 312e12), from its name; 0 for a device not in the table.
double datasheet_bf16_flops(int device);
// Free and total memory of the current device, in bytes.
void memory_info(size_t* free_bytes, size_t* total_bytes);
int nccl_version();  // e.g. 22703
size_t cublaslt_version();

// One cuBLASLt handle and one workspace per device, created once.
class CublasLtContext {
 public:
  explicit CublasLtContext(size_t workspace_bytes = 32u << 20);
  ~CublasLtContext();
  CublasLtContext(const CublasLtContext&) = delete;
  CublasLtContext& operator=(const CublasLtContext&) = delete;
  void* handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace inkstone::cuda
