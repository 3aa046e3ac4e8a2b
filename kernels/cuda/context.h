// The per-process CUDA state every kernel file shares: the stream ops are launched on, the grow-only
// scratch buffer, and the one cuBLASLt handle with its workspace. inkstone runs one process per GPU,
// so this is a process-wide singleton bound to the current device (created on first use).
// Plain C++ header: CUDA types are passed as void* and cast inside .cu files.
#pragma once

#include <cstddef>

namespace inkstone::cuda {

// The stream every op launches on. Defaults to the legacy default stream (nullptr) until
// set_stream() is called (the backend creates its own stream; CUDA-graph capture needs one).
void* stream();
void set_stream(void* stream);

// Device memory for temporaries of at least `bytes`, valid until the next scratch() call. Grows
// (synchronising the stream, then cudaFree + cudaMalloc) only when asked for more than it holds, so a
// training loop allocates in its first step and never after. Not thread-safe; one op at a time uses it.
void* scratch(size_t bytes);

// cuBLASLt handle (cublasLtHandle_t) and its workspace, created once.
void* cublaslt_handle();
void* cublaslt_workspace();
size_t cublaslt_workspace_bytes();

// Multiprocessor count of the current device (grid sizing), cached.
int multiprocessor_count();

}  // namespace inkstone::cuda
