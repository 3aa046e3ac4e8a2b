// Process-wide CUDA state shared by the kernel files (see kernels/cuda/context.h).
#include <cuda_runtime.h>

#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device.h"

namespace inkstone::cuda {
namespace {

cudaStream_t g_stream = nullptr;
void* g_scratch = nullptr;
size_t g_scratch_bytes = 0;

CublasLtContext& lt_context() {
  // cuBLASLt asks for up to 32 MiB of workspace on Hopper for its fastest kernels.
  static CublasLtContext context(32u << 20);
  return context;
}

}  // namespace

void* stream() {
  return g_stream;
}

void set_stream(void* s) {
  g_stream = static_cast<cudaStream_t>(s);
}

void* scratch(size_t bytes) {
  if (bytes <= g_scratch_bytes && g_scratch) return g_scratch;
  if (g_scratch) {
    // Kernels queued on the stream may still read the old buffer: cudaFree is not promised to wait
    // for a non-blocking stream.
    INKSTONE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    INKSTONE_CUDA_CHECK(cudaFree(g_scratch));
  }
  g_scratch = nullptr;
  // Round up so a sequence of slightly growing requests does not reallocate each time.
  const size_t rounded = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
  INKSTONE_CUDA_CHECK(cudaMalloc(&g_scratch, rounded));
  g_scratch_bytes = rounded;
  return g_scratch;
}

void* cublaslt_handle() {
  return lt_context().handle();
}
void* cublaslt_workspace() {
  return lt_context().workspace();
}
size_t cublaslt_workspace_bytes() {
  return lt_context().workspace_bytes();
}

int multiprocessor_count() {
  static const int count = [] {
    int device = 0, n = 0;
    INKSTONE_CUDA_CHECK(cudaGetDevice(&device));
    INKSTONE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    return n;
  }();
  return count;
}

}  // namespace inkstone::cuda
