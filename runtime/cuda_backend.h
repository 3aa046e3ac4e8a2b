#pragma once

#include <memory>

#include "runtime/backend.h"

namespace inkstone {

#if INKSTONE_HAVE_CUDA
// The CUDA backend on GPU `device` (one process per GPU): device memory, its own stream, and the
// kernels of kernels/cuda. Throws inkstone::Error when the device cannot be used.
std::unique_ptr<Backend> make_cuda_backend(int device);
#endif

}  // namespace inkstone
