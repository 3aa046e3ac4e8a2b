// What the CUDA side of the build offers before the full backend exists: device discovery,
// library versions, a cuBLASLt context and the F32 <-> BF16 cast. Plain C++ header (no CUDA types),
// so runtime/ can include it from .cpp files.
#pragma once

#include <cstddef>
#include <string>

#include "kernels/ops.h"

namespace inkstone::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
std::string device_description(int device);  // "NVIDIA H200 (sm_90, 139.8 GiB)"
int nccl_version();                          // e.g. 22703
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

// Device-side F32 <-> BF16 conversion (round to nearest even); tensors live in device memory.
void cast(const Cast& p);

// Device-side Dropout (kernels/ops.h) on F32 or BF16 tensors: the same mask as cpu::dropout, element for
// element, since both evaluate dropout_keeps(seed, i). See kernels/cuda/dropout.cu.
void dropout(const Dropout& p);

}  // namespace inkstone::cuda
