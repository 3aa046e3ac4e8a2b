// Tensor-core (mma.sync, bf16 in, fp32 accumulate) attention for head dims 64 and 128, sm_80 and up.
// kernels/cuda/attention.cu dispatches here for BF16 tensors of those head dims; every other case runs
// its CUDA-core kernels. Same contract as AttentionForward / AttentionBackward in kernels/ops.h.
#pragma once

#include "kernels/ops.h"

namespace inkstone::cuda {

// True for the shapes and dtypes these kernels take: BF16 qkv/out/dout/dqkv, head dim 64 or 128.
bool attention_tensor_core_supports(DType dtype, int head_dim);

void attention_forward_tensor_core(const AttentionForward& p);
void attention_backward_tensor_core(const AttentionBackward& p);

}  // namespace inkstone::cuda
