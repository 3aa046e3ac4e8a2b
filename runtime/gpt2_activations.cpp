#include "runtime/gpt2_activations.h"

namespace inkstone {
namespace {

// Bump allocation of aligned regions (16 floats = 64 bytes).
class Carver {
 public:
  int64_t take(int64_t floats) {
    const int64_t at = used_;
    used_ += (floats + 15) / 16 * 16;
    return at;
  }
  int64_t used() const { return used_; }

 private:
  int64_t used_ = 0;
};

}  // namespace

ActivationOffsets gpt2_activation_offsets(const GPT2Shape& shape, int64_t max_rows) {
  const int64_t N = max_rows, C = shape.n_embd;
  Carver carve;
  ActivationOffsets a{};
  a.encoded = carve.take(N * C);
  a.h.resize(shape.n_layer);
  for (BlockActivationOffsets& b : a.h) {
    b.ln_1 = carve.take(N * C);
    b.ln_1_mean = carve.take(N);
    b.ln_1_rstd = carve.take(N);
    b.qkv = carve.take(N * 3 * C);
    b.attn_out = carve.take(N * C);
    b.attn_lse = carve.take(N * shape.n_head);
    b.residual_attn = carve.take(N * C);
    b.ln_2 = carve.take(N * C);
    b.ln_2_mean = carve.take(N);
    b.ln_2_rstd = carve.take(N);
    b.fc_pre_gelu = carve.take(N * 4 * C);
    b.fc_gelu = carve.take(N * 4 * C);
    b.residual_mlp = carve.take(N * C);
  }
  a.ln_f = carve.take(N * C);
  a.ln_f_mean = carve.take(N);
  a.ln_f_rstd = carve.take(N);
  a.logits = carve.take(N * shape.padded_vocab());
  a.losses = carve.take(N);

  const int64_t gradients_begin = carve.used();
  a.d_residual = carve.take(N * C);
  a.scratch = carve.used();
  a.d_ln_2 = carve.take(N * C);
  a.d_ln_1 = carve.take(N * C);
  a.d_attn_out = carve.take(N * C);
  a.d_qkv = carve.take(N * 3 * C);
  a.d_fc_gelu = carve.take(N * 4 * C);
  a.d_fc_pre_gelu = carve.take(N * 4 * C);
  a.scratch_floats = carve.used() - a.scratch;
  a.gradient_floats = carve.used() - gradients_begin;
  a.total_floats = carve.used();
  return a;
}

}  // namespace inkstone
