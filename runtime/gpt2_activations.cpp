#include "runtime/gpt2_activations.h"

namespace inkstone {
namespace {

// Bump allocation of 64-byte aligned regions: `take` for compute-dtype regions, `stats` for F32 ones.
class Carver {
 public:
  explicit Carver(int64_t element_bytes) : element_bytes_(element_bytes) {}
  int64_t take(int64_t n) { return bytes(n * element_bytes_); }
  int64_t stats(int64_t n) { return bytes(n * 4); }
  int64_t used() const { return used_; }

 private:
  int64_t bytes(int64_t n) {
    const int64_t at = used_;
    used_ += (n + 63) / 64 * 64;
    return at;
  }
  int64_t element_bytes_;
  int64_t used_ = 0;
};

}  // namespace

ActivationOffsets gpt2_activation_offsets(const GPT2Shape& shape, int64_t max_rows, DType compute,
                                          Recompute recompute) {
  const int64_t N = max_rows, C = shape.n_embd;
  Carver carve(static_cast<int64_t>(dtype_size(compute)));
  ActivationOffsets a{};
  a.encoded = carve.take(N * C);
  const bool shared_gelu = recompute != Recompute::None;
  const bool shared_layernorm = recompute == Recompute::GeluAndLayerNorm;
  const int64_t gelu_shared = shared_gelu ? carve.take(N * 4 * C) : 0;
  const int64_t layernorm_shared = shared_layernorm ? carve.take(N * C) : 0;
  a.h.resize(shape.n_layer);
  for (BlockActivationOffsets& b : a.h) {
    b.ln_1 = shared_layernorm ? layernorm_shared : carve.take(N * C);
    b.ln_1_mean = carve.stats(N);
    b.ln_1_rstd = carve.stats(N);
    b.qkv = carve.take(N * 3 * C);
    b.attn_out = carve.take(N * C);
    b.attn_lse = carve.stats(N * shape.n_head);
    b.residual_attn = carve.take(N * C);
    b.ln_2 = shared_layernorm ? layernorm_shared : carve.take(N * C);
    b.ln_2_mean = carve.stats(N);
    b.ln_2_rstd = carve.stats(N);
    b.fc_pre_gelu = carve.take(N * 4 * C);
    b.fc_gelu = shared_gelu ? gelu_shared : carve.take(N * 4 * C);
    b.residual_mlp = carve.take(N * C);
  }
  a.ln_f = carve.take(N * C);
  a.ln_f_mean = carve.stats(N);
  a.ln_f_rstd = carve.stats(N);
  a.logits = carve.take(N * shape.padded_vocab());
  a.losses = carve.stats(N);

  const int64_t gradients_begin = carve.used();
  a.d_residual = carve.take(N * C);
  a.scratch = carve.used();
  a.d_ln_2 = carve.take(N * C);
  a.d_ln_1 = carve.take(N * C);
  a.d_attn_out = carve.take(N * C);
  a.d_qkv = carve.take(N * 3 * C);
  a.d_fc_gelu = carve.take(N * 4 * C);
  a.d_fc_pre_gelu = carve.take(N * 4 * C);
  a.scratch_bytes = carve.used() - a.scratch;
  a.gradient_bytes = carve.used() - gradients_begin;
  a.total_bytes = carve.used();
  return a;
}

}  // namespace inkstone
