// The parameters of a GPT-2 as one contiguous buffer: the table of named tensors (Hugging Face
// names and shapes), typed views of every weight, and the GPT-2 / nanoGPT initialisation.
//
// The gradient buffer has exactly the same layout, so the same table and views describe it.
// wte is stored with padded_vocab rows (the lm-head GEMM runs on aligned tiles); the pad rows are
// zero, stay zero (their gradient is zero) and are never exposed: the table reports [vocab, C].
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "runtime/model_config.h"

namespace inkstone {

class Rng;

struct ParamInfo {
  std::string name;            // Hugging Face GPT-2 name, e.g. "h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // as Hugging Face stores it (Conv1D weights are [in, out])
  int64_t offset = 0;          // index of the first element in the buffer
  int64_t allocated = 0;       // elements reserved: numel(), except wte which holds padded_vocab rows

  int64_t numel() const;
  bool is_matrix() const { return shape.size() == 2; }  // the tensors AdamW decays
};

struct BlockWeights {
  Tensor ln_1_weight, ln_1_bias;                // [C]
  Tensor c_attn_weight, c_attn_bias;            // [C, 3C], [3C]
  Tensor attn_c_proj_weight, attn_c_proj_bias;  // [C, C], [C]
  Tensor ln_2_weight, ln_2_bias;                // [C]
  Tensor c_fc_weight, c_fc_bias;                // [C, 4C], [4C]
  Tensor mlp_c_proj_weight, mlp_c_proj_bias;    // [4C, C], [C]
};

struct GPT2Weights {
  Tensor wte;  // [padded_vocab, C]; also the lm head (WeightLayout::OutIn)
  Tensor wpe;  // [context, C]
  std::vector<BlockWeights> h;
  Tensor ln_f_weight, ln_f_bias;  // [C]
};

struct ParameterLayout {
  std::vector<ParamInfo> table;  // in Hugging Face order: wte, wpe, h.0 ... h.{L-1}, ln_f
  int64_t total_elements = 0;    // buffer size, alignment gaps included (they stay zero)
};

ParameterLayout gpt2_parameter_layout(const GPT2Shape& shape);

// Views of every tensor of `layout` inside the buffer starting at `base` (parameters or gradients),
// whose elements are `dtype` (layout offsets count elements, whatever their size).
GPT2Weights gpt2_weight_views(const GPT2Shape& shape, const ParameterLayout& layout, void* base, DType dtype);

// GPT-2 initialisation of one tensor into `out` (param.allocated floats): weights N(0, 0.02),
// residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)), biases 0,
// LayerNorm weight 1 and bias 0, the padding rows of wte 0.
void init_gpt2_parameter(const ParamInfo& param, const GPT2Shape& shape, Rng& rng, std::span<float> out);

}  // namespace inkstone
