// Which kernels cuda::attention_forward / attention_backward run. By default the tensor-core kernels
// (kernels/cuda/attention_mma.h) take every case they support and the CUDA-core kernels of
// kernels/cuda/attention.cu the rest. INKSTONE_ATTENTION=cuda_core in the environment (read once, at
// the first attention call; "auto" or unset is the default, anything else is an error) forces the
// CUDA-core kernels for every case, so benchmarks and the tensor-core tests can compare the two.
#pragma once

namespace inkstone::cuda {

// For tests, which cannot rely on the environment being read after they set it: true forces the
// CUDA-core kernels for every case (as INKSTONE_ATTENTION=cuda_core does), false restores the default.
void set_attention_kernels_for_testing(bool cuda_core_only);

}  // namespace inkstone::cuda
