// A test backend that stores BF16 tensors and computes with the CPU's fp32 kernels: every BF16 tensor
// an op touches is widened to fp32 on the host, the CPU op runs, and every such tensor is rounded
// back to BF16. That is what a mixed-precision backend does at the level of storage (values live in
// bf16, arithmetic is fp32), so the model's mixed-precision plumbing — dtypes of every buffer, the
// F32 master copy, casts, statistics kept in F32, checkpoints — is tested on machines without a GPU.
// It is slow and says nothing about a GPU kernel's accuracy (tests/kernels/cuda does that).
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace inkstone::testing {

std::unique_ptr<Backend> make_bf16_storage_backend();

}  // namespace inkstone::testing
