// CUDA backend: the ops of kernels/ops.h on device memory, one op (or one op family) per .cu file in
// kernels/cuda/. Plain C++ header (no CUDA types), so runtime/ can include it from .cpp files.
//
// Dtypes. Every float tensor of one op has ONE dtype, F32 (fp32 mode: tests, evaluation, generation)
// or BF16 (mixed-precision training), with these exceptions, always F32: statistics (LayerNorm mean and
// rstd, attention lse, cross-entropy losses) and AdamW's m, v and master weights. Tokens, targets and
// positions are I32. A dtype combination an op does not support throws std::invalid_argument naming
// the op and the dtypes. Accumulation is fp32 everywhere.
//
// Execution. Every launch goes to cuda::stream() (kernels/cuda/context.h) and is checked; no op
// synchronises the host except sum_of_squares, which returns a value. Ops that need temporary device
// memory take it from cuda::scratch(), which grows only when a larger size is asked for, so after
// the first training step nothing is allocated.
//
// Determinism. With the same inputs every op gives bit-identical results run after run: no float
// atomics anywhere (gradient sums over rows are ordered reductions).
#pragma once

#include "kernels/ops.h"

namespace inkstone::cuda {

void embedding_forward(const EmbeddingForward& p);
void embedding_backward(const EmbeddingBackward& p);
void matmul_forward(const MatmulForward& p);
void matmul_backward(const MatmulBackward& p);
void layernorm_forward(const LayerNormForward& p);
void layernorm_backward(const LayerNormBackward& p);
void residual_layernorm_forward(const ResidualLayerNormForward& p);  // kernels/cuda/residual_layernorm.cu
void attention_forward(const AttentionForward& p);
void attention_backward(const AttentionBackward& p);
void attention_kv_cache(const AttentionKvCache& p);
void softmax_forward(const SoftmaxForward& p);
void cross_entropy(const CrossEntropy& p);
void gelu_forward(const GeluForward& p);
void gelu_backward(const GeluBackward& p);
void add(const Add& p);
void dropout(const Dropout& p);  // kernels/cuda/dropout.cu
void adamw_update(const AdamW& p);
double sum_of_squares(Tensor t);  // F32 or BF16; synchronises the stream
void cast(const Cast& p);         // kernels/cuda/cast.cu

}  // namespace inkstone::cuda
