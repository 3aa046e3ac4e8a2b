// CPU backend: fp32 reference and fast path (OpenMP threads, OpenBLAS GEMM).
// One op per file in kernels/cpu/; shapes and the accumulate contract are in kernels/ops.h.
// All float tensors are F32 here; token and target tensors are I32.
#pragma once

#include <string>

#include "kernels/ops.h"

namespace inkstone::cpu {

void embedding_forward(const EmbeddingForward& p);
void embedding_backward(const EmbeddingBackward& p);
void matmul_forward(const MatmulForward& p);
void matmul_backward(const MatmulBackward& p);
void layernorm_forward(const LayerNormForward& p);
void layernorm_backward(const LayerNormBackward& p);
void residual_layernorm_forward(const ResidualLayerNormForward& p);
void attention_forward(const AttentionForward& p);
void attention_backward(const AttentionBackward& p);
void attention_kv_cache(const AttentionKvCache& p);
void softmax_forward(const SoftmaxForward& p);
void cross_entropy(const CrossEntropy& p);
void gelu_forward(const GeluForward& p);
void gelu_backward(const GeluBackward& p);
void add(const Add& p);
void dropout(const Dropout& p);
void adamw_update(const AdamW& p);
double sum_of_squares(Tensor t);
void cast(const Cast& p);

// Threads used by OpenMP and OpenBLAS (they are kept equal so neither oversubscribes the other).
void set_num_threads(int n);
int num_threads();
std::string blas_description();

}  // namespace inkstone::cpu
