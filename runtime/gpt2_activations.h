// Where GPT-2's activations live: one device buffer sized once for the largest batch (max_rows =
// B*T tokens), carved into named regions. A forward or backward pass with fewer rows uses the first
// rows of each region. Offsets are in BYTES and 64-byte aligned: activations and their gradients are
// stored in the model's compute dtype (F32, or BF16 in mixed precision), while the statistics that
// feed a backward pass or the loss (LayerNorm mean and rstd, attention lse, losses) are always F32.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/tensor.h"
#include "runtime/model_config.h"

namespace inkstone {

// What one block keeps from the forward pass for its backward pass.
struct BlockActivationOffsets {
  int64_t ln_1, ln_1_mean, ln_1_rstd;  // [N, C], [N], [N]
  int64_t qkv;                         // [N, 3C]
  int64_t attn_out, attn_lse;          // [N, C], [B, NH, T]
  int64_t residual_attn;               // [N, C]: residual + attn.c_proj(...) (the projection is written here)
  int64_t ln_2, ln_2_mean, ln_2_rstd;  // [N, C], [N], [N]
  int64_t fc_pre_gelu, fc_gelu;        // [N, 4C] each
  int64_t residual_mlp;                // [N, C]: residual_attn + mlp.c_proj(...)
};

struct ActivationOffsets {
  int64_t encoded;  // [N, C] token + position embeddings: block 0's residual input
  std::vector<BlockActivationOffsets> h;
  int64_t ln_f, ln_f_mean, ln_f_rstd;  // [N, C], [N], [N]
  int64_t logits;                      // [N, padded_vocab]; the backward pass overwrites it with dlogits
  int64_t losses;                      // [N]

  // Gradient scratch, reused by every block (the residual-stream gradient flows down through
  // d_residual; the rest is zeroed before each block because backward ops accumulate).
  int64_t d_residual;  // [N, C]
  int64_t scratch;     // start of the region zeroed per block; scratch_bytes long
  int64_t scratch_bytes;
  int64_t d_ln_2, d_ln_1, d_attn_out;  // [N, C]
  int64_t d_qkv;                       // [N, 3C]
  int64_t d_fc_gelu, d_fc_pre_gelu;    // [N, 4C]

  int64_t total_bytes;
  int64_t gradient_bytes;  // the part that holds activation gradients (d_residual and scratch)
};

// Activations the backward pass recomputes instead of keeping one per layer (llm.c's recompute 1 and
// 2): the GELU output (from the kept pre-activation), and the LayerNorm outputs (from the kept
// residual input and statistics). Every layer then shares one region for each, and memory drops by
// 4C (GELU) and 2C (LayerNorm) values per token per layer, for one more GELU and two more LayerNorm
// forward passes per layer in the backward pass.
enum class Recompute : uint8_t { None, Gelu, GeluAndLayerNorm };

// `compute` (F32 or BF16) is the dtype of every region except the F32 statistics.
ActivationOffsets gpt2_activation_offsets(const GPT2Shape& shape, int64_t max_rows, DType compute,
                                          Recompute recompute = Recompute::None);

}  // namespace inkstone
