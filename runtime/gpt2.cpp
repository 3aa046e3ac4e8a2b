#include "runtime/gpt2.h"

#include <algorithm>
#include <cassert>

#include <fmt/ranges.h>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/error.h"
#include "runtime/rng.h"

namespace inkstone {
namespace {

Tensor reshaped(Tensor t, std::initializer_list<int64_t> dims) {
  Tensor r(t.data, t.dtype, dims);
  assert(r.numel() <= t.numel());
  return r;
}

// ln.inp = a + b, then the LayerNorm `ln` of that sum, as one op (one pass over the residual stream).
// Its output is bit-identical to an add followed by ln, so recompute_layernorm may redo ln alone.
void add_then_layernorm(Backend& backend, Tensor a, Tensor b, const LayerNormForward& ln) {
  backend.residual_layernorm_forward({.residual = ln.inp,
                                      .out = ln.out,
                                      .mean = ln.mean,
                                      .rstd = ln.rstd,
                                      .a = a,
                                      .b = b,
                                      .weight = ln.weight,
                                      .bias = ln.bias,
                                      .eps = ln.eps});
}

}  // namespace

GPT2::GPT2(Backend& backend, const GPT2Shape& shape, int max_batch, int max_seq, const GPT2Options& options)
    : backend_(backend),
      shape_(shape),
      max_batch_(max_batch),
      max_seq_(max_seq),
      compute_(options.compute),
      recompute_(options.recompute) {
  const DType compute = options.compute;
  if (compute != DType::F32 && compute != DType::BF16)
    fail("GPT2: compute dtype {} is not supported; use F32 or BF16", dtype_name(compute));
  if (shape.n_layer < 1 || shape.n_head < 1 || shape.n_embd < 1 || shape.vocab < 1 ||
      shape.n_embd % shape.n_head != 0 || shape.context < 1)
    fail(
        "GPT2: inconsistent model shape (n_layer {}, n_head {}, n_embd {}, vocab {}, padded_vocab {}); "
        "build it with resolve_shape",
        shape.n_layer, shape.n_head, shape.n_embd, shape.vocab, shape.padded_vocab());
  if (max_batch < 1 || max_seq < 1 || max_seq > shape.context)
    fail("GPT2: micro-batch {} x sequence {} is not possible with context {}; use 1 <= seq_len <= context",
         max_batch, max_seq, shape.context);

  const int64_t max_rows = int64_t{max_batch} * max_seq;
  layout_ = gpt2_parameter_layout(shape);
  acts_ = gpt2_activation_offsets(shape, max_rows, compute, recompute_);
  params_ = DeviceTensor(backend, compute, {layout_.total_elements});
  grads_ = DeviceTensor(backend, compute, {layout_.total_elements});
  if (mixed_precision()) {
    master_ = DeviceTensor(backend, DType::F32, {layout_.total_elements});
    backend.fill_zero(master_);
  }
  // Bytes, as a buffer of 4-byte elements (total_bytes is a multiple of 64).
  activations_ = DeviceTensor(backend, DType::F32, {acts_.total_bytes / 4});
  tokens_ = DeviceTensor(backend, DType::I32, {max_rows});
  targets_ = DeviceTensor(backend, DType::I32, {max_rows});
  positions_ = DeviceTensor(backend, DType::I32, {max_rows});
  // Zero everything once: alignment gaps and wte's pad rows must read as zero forever after.
  for (const DeviceTensor* t : {&params_, &grads_, &activations_, &tokens_, &targets_, &positions_})
    backend.fill_zero(*t);
  weights_ = gpt2_weight_views(shape, layout_, params_.view().data, compute);
  weight_grads_ = gpt2_weight_views(shape, layout_, grads_.view().data, compute);
  host_losses_.resize(max_rows);
  host_targets_.resize(max_rows);
}

void GPT2::initialize(uint64_t seed) {
  Rng rng(seed);
  std::vector<float> host;
  for (const ParamInfo& p : layout_.table) {
    host.resize(p.allocated);
    init_gpt2_parameter(p, shape_, rng, host);
    if (mixed_precision()) {
      backend_.upload(master_view(p), host.data());
      backend_.cast({.out = parameter_view(p), .inp = master_view(p)});
    } else {
      backend_.upload(parameter_view(p), host.data());
    }
  }
}

// ---- forward ----

void GPT2::check_batch(int B, int T) const {
  if (B < 1 || T < 1 || T > shape_.context || int64_t{B} * T > int64_t{max_batch_} * max_seq_)
    fail(
        "GPT2::forward: batch {} x {} tokens does not fit this model (at most {} x {} tokens, T <= context "
        "{})",
        B, T, max_batch_, max_seq_, shape_.context);
}

float GPT2::forward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int B, int T) {
  check_batch(B, T);
  const Batch batch{B, T};
  const size_t n = static_cast<size_t>(batch.N());
  if (tokens.size() != n) fail("GPT2::forward: {} tokens given for a {} x {} batch", tokens.size(), B, T);
  if (!targets.empty() && targets.size() != n)
    fail("GPT2::forward: {} targets given for a {} x {} batch", targets.size(), B, T);
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= shape_.vocab)
      fail("GPT2::forward: token {} at position {} is outside the vocabulary [0, {})", tokens[i], i,
           shape_.vocab);
    if (!targets.empty() && targets[i] >= shape_.vocab)
      fail("GPT2::forward: target {} at position {} is outside the vocabulary [0, {})", targets[i], i,
           shape_.vocab);
  }
  const Tensor device_tokens = reshaped(tokens_, {B, T});
  backend_.upload(device_tokens, tokens.data());
  Tensor device_targets;
  if (!targets.empty()) {
    device_targets = reshaped(targets_, {batch.N()});
    backend_.upload(device_targets, targets.data());
    std::copy(targets.begin(), targets.end(), host_targets_.begin());
  }
  return run_forward(device_tokens, device_targets, batch);
}

float GPT2::forward(Tensor tokens, Tensor targets, int B, int T) {
  check_batch(B, T);
  const Batch batch{B, T};
  if (tokens.numel() != batch.N() || (targets.defined() && targets.numel() != batch.N()))
    fail("GPT2::forward: tokens/targets tensors do not hold {} x {} ids", B, T);
  if (targets.defined()) backend_.download(host_targets_.data(), targets);
  return run_forward(reshaped(tokens, {B, T}), targets.defined() ? reshaped(targets, {batch.N()}) : Tensor{},
                     batch);
}

Tensor GPT2::rows(int64_t offset, int64_t n, int64_t cols) const {
  return Tensor(act(offset), compute_, {n, cols});
}

Tensor GPT2::stats(int64_t offset, int64_t n) const {
  return Tensor(act(offset), DType::F32, {n});
}

void GPT2::set_dropout(float p, uint64_t seed) {
  if (!(p >= 0.0f && p < 1.0f)) fail("dropout must be in [0, 1), got {}", p);
  dropout_p_ = p;
  dropout_seed_ = seed;
}

void GPT2::apply_dropout(Tensor out, Tensor inp, int layer, DropoutSite site) {
  if (forward_dropout_p_ == 0.0f) return;
  // Every (layer, site) gets its own stream: the site index passes through SplitMix64's finaliser
  // before it is mixed with the seed, so no two sites share a mask.
  const uint64_t site_index = static_cast<uint64_t>(layer + 1) * 3 + static_cast<uint64_t>(site);
  backend_.dropout({.out = out,
                    .inp = inp,
                    .p = forward_dropout_p_,
                    .seed = forward_dropout_seed_ ^ mix64(site_index * 0xD1B54A32D192ED03ull)});
}

float GPT2::run_forward(Tensor tokens, Tensor targets, const Batch& batch, const CachedStep* cached) {
  const int64_t N = batch.N(), C = shape_.n_embd, Vp = shape_.padded_vocab();
  const GPT2Weights& w = weights_;
  forward_dropout_p_ = cached ? 0.0f : dropout_p_;  // generation never drops
  forward_dropout_seed_ = dropout_seed_;
  const Tensor encoded = Tensor(act(acts_.encoded), compute_, {batch.B, batch.T, C});
  backend_.embedding_forward({.out = encoded,
                              .tokens = tokens,
                              .wte = w.wte,
                              .wpe = w.wpe,
                              .pos_offset = 0,
                              .positions = cached ? cached->start : Tensor{}});
  apply_dropout(encoded, encoded, -1, DropoutSite::Embedding);
  // Every other LayerNorm that reads the residual stream (ln_2, the next block's ln_1, ln_f) is fused
  // with the residual add before it, at the end of each half of a block.
  backend_.layernorm_forward(layernorm_of(0, 1, rows(acts_.encoded, N, C), N));
  for (int l = 0; l < shape_.n_layer; ++l) {
    const int64_t residual = l == 0 ? acts_.encoded : acts_.h[l - 1].residual_mlp;
    block_forward(l, rows(residual, N, C), batch, cached);
  }
  const Tensor ln_f = rows(acts_.ln_f, N, C), logits = rows(acts_.logits, N, Vp);
  backend_.matmul_forward({.out = logits,
                           .inp = ln_f,
                           .weight = w.wte,
                           .bias = {},  // GPT-2's lm head has no bias
                           .pre_gelu = {},
                           .layout = WeightLayout::OutIn});

  batch_ = batch;
  batch_tokens_ = tokens;
  batch_targets_ = targets;
  counted_targets_ = 0;
  if (!targets.defined()) {
    stage_ = Stage::Logits;
    return 0.0f;
  }
  const Tensor losses = stats(acts_.losses, N);
  backend_.cross_entropy(
      {.losses = losses, .dlogits = {}, .logits = logits, .targets = targets, .vocab_size = shape_.vocab});
  backend_.download(host_losses_.data(), losses);
  double sum = 0;  // ignored targets have loss 0, so summing every row is the sum over counted ones
  for (int64_t i = 0; i < N; ++i) {
    sum += host_losses_[i];
    counted_targets_ += host_targets_[i] >= 0;
  }
  stage_ = Stage::Loss;
  return counted_targets_ > 0 ? static_cast<float>(sum / static_cast<double>(counted_targets_)) : 0.0f;
}

// On entry ln_1 (of residual_in) is computed already: by run_forward for block 0, by the previous
// block's last residual add otherwise. On return the next block's ln_1 (or ln_f) is.
void GPT2::block_forward(int layer, Tensor residual_in, const Batch& batch, const CachedStep* cached) {
  const int64_t N = batch.N(), C = shape_.n_embd;
  const BlockWeights& w = weights_.h[layer];
  const BlockActivationOffsets& a = acts_.h[layer];
  const Tensor ln_1 = rows(a.ln_1, N, C), qkv = rows(a.qkv, N, 3 * C), attn_out = rows(a.attn_out, N, C);
  const Tensor residual_attn = rows(a.residual_attn, N, C), ln_2 = rows(a.ln_2, N, C);
  const Tensor fc_gelu = rows(a.fc_gelu, N, 4 * C), residual_mlp = rows(a.residual_mlp, N, C);

  backend_.matmul_forward(
      {.out = qkv, .inp = ln_1, .weight = w.c_attn_weight, .bias = w.c_attn_bias, .pre_gelu = {}});
  if (cached) {
    backend_.attention_kv_cache({.out = reshaped(attn_out, {batch.B, batch.T, C}),
                                 .qkv = reshaped(qkv, {batch.B, batch.T, 3 * C}),
                                 .k_cache = kv_cache_view(layer, 0, cached->first_row, batch.B),
                                 .v_cache = kv_cache_view(layer, 1, cached->first_row, batch.B),
                                 .start = cached->start,
                                 .n_head = shape_.n_head});
  } else {
    backend_.attention_forward({.out = reshaped(attn_out, {batch.B, batch.T, C}),
                                .lse = Tensor(act(a.attn_lse), DType::F32, {batch.B, shape_.n_head, batch.T}),
                                .qkv = reshaped(qkv, {batch.B, batch.T, 3 * C}),
                                .n_head = shape_.n_head});
  }
  // The projection is written straight into residual_attn and the residual added in place: the
  // backward pass needs neither the projection alone nor a copy.
  backend_.matmul_forward({.out = residual_attn,
                           .inp = attn_out,
                           .weight = w.attn_c_proj_weight,
                           .bias = w.attn_c_proj_bias,
                           .pre_gelu = {}});
  apply_dropout(residual_attn, residual_attn, layer, DropoutSite::Attention);
  add_then_layernorm(backend_, residual_in, residual_attn, layernorm_of(layer, 2, residual_attn, N));
  backend_.matmul_forward({.out = fc_gelu,
                           .inp = ln_2,
                           .weight = w.c_fc_weight,
                           .bias = w.c_fc_bias,
                           .pre_gelu = rows(a.fc_pre_gelu, N, 4 * C),
                           .epilogue = Epilogue::Gelu});
  backend_.matmul_forward({.out = residual_mlp,
                           .inp = fc_gelu,
                           .weight = w.mlp_c_proj_weight,
                           .bias = w.mlp_c_proj_bias,
                           .pre_gelu = {}});
  apply_dropout(residual_mlp, residual_mlp, layer, DropoutSite::Mlp);
  add_then_layernorm(backend_, residual_attn, residual_mlp, layernorm_of(layer + 1, 1, residual_mlp, N));
}

// ---- inference with a KV cache ----

void GPT2::allocate_kv_cache(int batch, int capacity) {
  if (batch < 1 || capacity < 1 || capacity > shape_.context)
    fail(
        "GPT2::allocate_kv_cache: a cache of {} sequences x {} positions is not possible with context {}; "
        "use batch >= 1 and 1 <= capacity <= context",
        batch, capacity, shape_.context);
  const int64_t elements = int64_t{shape_.n_layer} * 2 * batch * capacity * shape_.n_embd;
  // A request that fits the current buffer reuses it under the new layout: positions are only ever
  // read after a later forward_cached has written them, so no old content needs to survive. The
  // cache is not zeroed either, for the same reason (and so a kernel that read unwritten rows would
  // show it). The old buffer is freed before the new one is made, so peak memory is one cache.
  if (!kv_cache_.view().defined() || kv_cache_.view().numel() < elements) {
    kv_cache_ = DeviceTensor();
    kv_cache_ = DeviceTensor(backend_, compute_, {elements});
  }
  kv_batch_ = batch;
  kv_capacity_ = capacity;
}

Tensor GPT2::kv_cache_view(int layer, int part, int first_row, int B) const {
  const int64_t NH = shape_.n_head, hd = shape_.head_dim(), capacity = kv_capacity_;
  const int64_t row_elements = NH * capacity * hd;
  const int64_t offset = ((int64_t{layer} * 2 + part) * kv_batch_ + first_row) * row_elements;
  Tensor view = element_view(kv_cache_, offset, B * NH * capacity * hd);
  return Tensor(view.data, compute_, {B, NH, capacity, hd});
}

void GPT2::forward_cached(std::span<const int32_t> tokens, std::span<const int32_t> start, int B, int T,
                          int first_row) {
  if (kv_batch_ == 0)
    fail("GPT2::forward_cached: there is no KV cache; call allocate_kv_cache(batch, capacity) first");
  const int64_t max_rows = int64_t{max_batch_} * max_seq_;
  if (B < 1 || T < 1 || int64_t{B} * T > max_rows)
    fail("GPT2::forward_cached: batch {} x {} tokens does not fit this model (at most {} tokens per call)", B,
         T, max_rows);
  if (first_row < 0 || int64_t{first_row} + B > kv_batch_)
    fail(
        "GPT2::forward_cached: sequences [{}, {}) are outside the KV cache's {} rows; "
        "call allocate_kv_cache with a larger batch",
        first_row, int64_t{first_row} + B, kv_batch_);
  const size_t n = static_cast<size_t>(B) * static_cast<size_t>(T);
  if (tokens.size() != n)
    fail("GPT2::forward_cached: {} tokens given for a {} x {} batch", tokens.size(), B, T);
  if (start.size() != static_cast<size_t>(B))
    fail("GPT2::forward_cached: {} start positions given for {} sequences", start.size(), B);
  for (int b = 0; b < B; ++b)
    if (start[b] < 0 || int64_t{start[b]} + T > kv_capacity_)
      fail(
          "GPT2::forward_cached: sequence {} would fill positions [{}, {}), outside the KV cache's [0, {}); "
          "start again from 0 or allocate a larger cache (at most the context)",
          b, start[b], int64_t{start[b]} + T, kv_capacity_);
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= shape_.vocab)
      fail("GPT2::forward_cached: token {} at position {} is outside the vocabulary [0, {})", tokens[i], i,
           shape_.vocab);
  const Tensor device_tokens = reshaped(tokens_, {B, T}), device_start = reshaped(positions_, {B});
  backend_.upload(device_tokens, tokens.data());
  backend_.upload(device_start, start.data());
  const CachedStep step{.start = device_start, .first_row = first_row};
  run_forward(device_tokens, Tensor{}, Batch{B, T}, &step);
}

// ---- backward ----

void GPT2::backward(float loss_scale, const std::function<void(int layer)>& layer_done) {
  if (stage_ != Stage::Loss)
    fail(
        "GPT2::backward needs a forward pass with targets since the last backward; call forward(tokens, "
        "targets, ...) first");
  const int64_t N = batch_.N(), C = shape_.n_embd, Vp = shape_.padded_vocab();
  const float dloss = counted_targets_ > 0 ? loss_scale / static_cast<float>(counted_targets_) : 0.0f;
  const Tensor logits = rows(acts_.logits, N, Vp), dlogits = logits;
  const Tensor d_residual = rows(acts_.d_residual, N, C), d_ln_f = rows(acts_.d_ln_1, N, C);

  backend_.cross_entropy({.losses = stats(acts_.losses, N),
                          .dlogits = dlogits,
                          .logits = logits,
                          .targets = batch_targets_,
                          .vocab_size = shape_.vocab,
                          .dloss = dloss});
  stage_ = Stage::BackwardDone;  // the logits are gone from here on

  // Backward ops accumulate into activation gradients too: start them from zero.
  backend_.fill_zero(d_residual);
  backend_.fill_zero(d_ln_f);
  backend_.matmul_backward({.dinp = d_ln_f,
                            .dweight = weight_grads_.wte,
                            .dbias = {},
                            .dout = dlogits,
                            .inp = rows(acts_.ln_f, N, C),
                            .weight = weights_.wte,
                            .layout = WeightLayout::OutIn});
  backend_.layernorm_backward({.dinp = d_residual,
                               .dweight = weight_grads_.ln_f_weight,
                               .dbias = weight_grads_.ln_f_bias,
                               .dout = d_ln_f,
                               .inp = rows(acts_.h.back().residual_mlp, N, C),
                               .weight = weights_.ln_f_weight,
                               .mean = stats(acts_.ln_f_mean, N),
                               .rstd = stats(acts_.ln_f_rstd, N)});
  for (int l = shape_.n_layer - 1; l >= 0; --l) {
    const int64_t residual = l == 0 ? acts_.encoded : acts_.h[l - 1].residual_mlp;
    block_backward(l, rows(residual, N, C), d_residual, batch_);
    if (layer_done) layer_done(l);
  }
  apply_dropout(d_residual, d_residual, -1, DropoutSite::Embedding);
  backend_.embedding_backward({.dwte = weight_grads_.wte,
                               .dwpe = weight_grads_.wpe,
                               .dout = reshaped(d_residual, {batch_.B, batch_.T, C}),
                               .tokens = batch_tokens_,
                               .pos_offset = 0});
  if (layer_done) layer_done(-1);
}

// On entry d_residual holds dL/d(residual_mlp); on return dL/d(residual_in). Both residual additions
// pass the gradient through unchanged, so the two LayerNorm backward passes simply accumulate
// their input gradient into it (which is also why the forward's fused add + LayerNorm needs no fused
// backward op).
void GPT2::block_backward(int layer, Tensor residual_in, Tensor d_residual, const Batch& batch) {
  const int64_t N = batch.N(), C = shape_.n_embd;
  const BlockWeights& w = weights_.h[layer];
  BlockWeights& g = weight_grads_.h[layer];
  const BlockActivationOffsets& a = acts_.h[layer];
  const Tensor d_fc_gelu = rows(acts_.d_fc_gelu, N, 4 * C),
               d_fc_pre_gelu = rows(acts_.d_fc_pre_gelu, N, 4 * C);
  const Tensor d_ln_2 = rows(acts_.d_ln_2, N, C), d_ln_1 = rows(acts_.d_ln_1, N, C);
  const Tensor d_attn_out = rows(acts_.d_attn_out, N, C), d_qkv = rows(acts_.d_qkv, N, 3 * C);
  const Tensor attn_out = rows(a.attn_out, N, C), qkv = rows(a.qkv, N, 3 * C);
  backend_.fill_zero(Tensor(act(acts_.scratch), DType::F32, {acts_.scratch_bytes / 4}));
  const bool dropout = forward_dropout_p_ > 0.0f;

  // With dropout, the projection's gradient is the residual gradient through the same mask. It is
  // staged in d_attn_out (zeroed again after use, since attention accumulates into it) and, for the
  // attention projection, in d_ln_2 (free by then); the residual path itself keeps d_residual.
  if (recompute_ != Recompute::None)  // the shared GELU region holds another layer's output
    backend_.gelu_forward({.out = rows(a.fc_gelu, N, 4 * C), .inp = rows(a.fc_pre_gelu, N, 4 * C)});
  if (dropout) apply_dropout(d_attn_out, d_residual, layer, DropoutSite::Mlp);
  backend_.matmul_backward({.dinp = d_fc_gelu,
                            .dweight = g.mlp_c_proj_weight,
                            .dbias = g.mlp_c_proj_bias,
                            .dout = dropout ? d_attn_out : d_residual,
                            .inp = rows(a.fc_gelu, N, 4 * C),
                            .weight = w.mlp_c_proj_weight});
  if (dropout) backend_.fill_zero(d_attn_out);
  backend_.gelu_backward({.dinp = d_fc_pre_gelu, .inp = rows(a.fc_pre_gelu, N, 4 * C), .dout = d_fc_gelu});
  if (recompute_ == Recompute::GeluAndLayerNorm) recompute_layernorm(layer, 2, N);
  backend_.matmul_backward({.dinp = d_ln_2,
                            .dweight = g.c_fc_weight,
                            .dbias = g.c_fc_bias,
                            .dout = d_fc_pre_gelu,
                            .inp = rows(a.ln_2, N, C),
                            .weight = w.c_fc_weight});
  backend_.layernorm_backward({.dinp = d_residual,
                               .dweight = g.ln_2_weight,
                               .dbias = g.ln_2_bias,
                               .dout = d_ln_2,
                               .inp = rows(a.residual_attn, N, C),
                               .weight = w.ln_2_weight,
                               .mean = stats(a.ln_2_mean, N),
                               .rstd = stats(a.ln_2_rstd, N)});

  if (dropout) apply_dropout(d_ln_2, d_residual, layer, DropoutSite::Attention);
  backend_.matmul_backward({.dinp = d_attn_out,
                            .dweight = g.attn_c_proj_weight,
                            .dbias = g.attn_c_proj_bias,
                            .dout = dropout ? d_ln_2 : d_residual,
                            .inp = attn_out,
                            .weight = w.attn_c_proj_weight});
  backend_.attention_backward({.dqkv = reshaped(d_qkv, {batch.B, batch.T, 3 * C}),
                               .dout = reshaped(d_attn_out, {batch.B, batch.T, C}),
                               .qkv = reshaped(qkv, {batch.B, batch.T, 3 * C}),
                               .out = reshaped(attn_out, {batch.B, batch.T, C}),
                               .lse = Tensor(act(a.attn_lse), DType::F32, {batch.B, shape_.n_head, batch.T}),
                               .n_head = shape_.n_head});
  if (recompute_ == Recompute::GeluAndLayerNorm) recompute_layernorm(layer, 1, N, residual_in);
  backend_.matmul_backward({.dinp = d_ln_1,
                            .dweight = g.c_attn_weight,
                            .dbias = g.c_attn_bias,
                            .dout = d_qkv,
                            .inp = rows(a.ln_1, N, C),
                            .weight = w.c_attn_weight});
  backend_.layernorm_backward({.dinp = d_residual,
                               .dweight = g.ln_1_weight,
                               .dbias = g.ln_1_bias,
                               .dout = d_ln_1,
                               .inp = residual_in,
                               .weight = w.ln_1_weight,
                               .mean = stats(a.ln_1_mean, N),
                               .rstd = stats(a.ln_1_rstd, N)});
}

// LayerNorm `which` (1 or 2) of `layer` again, from its kept input, into the shared region. The
// forward pass computed it fused with the residual add before it (or, for block 0's ln_1, alone);
// the fused op gives the bits of this plain one on the same stored input, so the output and the
// statistics come out bit-identical.
void GPT2::recompute_layernorm(int layer, int which, int64_t N, Tensor residual_in) {
  const Tensor inp = which == 1 ? residual_in : rows(acts_.h[layer].residual_attn, N, shape_.n_embd);
  backend_.layernorm_forward(layernorm_of(layer, which, inp, N));
}

LayerNormForward GPT2::layernorm_of(int layer, int which, Tensor inp, int64_t N) const {
  const int64_t C = shape_.n_embd;
  if (layer == shape_.n_layer)
    return {.out = rows(acts_.ln_f, N, C),
            .mean = stats(acts_.ln_f_mean, N),
            .rstd = stats(acts_.ln_f_rstd, N),
            .inp = inp,
            .weight = weights_.ln_f_weight,
            .bias = weights_.ln_f_bias,
            .eps = kLayerNormEps};
  const BlockWeights& w = weights_.h[layer];
  const BlockActivationOffsets& a = acts_.h[layer];
  const bool first = which == 1;
  return {.out = rows(first ? a.ln_1 : a.ln_2, N, C),
          .mean = stats(first ? a.ln_1_mean : a.ln_2_mean, N),
          .rstd = stats(first ? a.ln_1_rstd : a.ln_2_rstd, N),
          .inp = inp,
          .weight = first ? w.ln_1_weight : w.ln_2_weight,
          .bias = first ? w.ln_1_bias : w.ln_2_bias,
          .eps = kLayerNormEps};
}

void GPT2::zero_grad() {
  backend_.fill_zero(grads_);
}

// ---- access ----

Tensor GPT2::logits() const {
  if (stage_ != Stage::Logits && stage_ != Stage::Loss)
    fail("GPT2::logits: no logits to read (none computed yet, or backward() has overwritten them)");
  return rows(acts_.logits, batch_.N(), shape_.padded_vocab());
}

std::vector<float> GPT2::read_logits(int64_t first_row, int64_t count) const {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(count, 0) * shape_.vocab));
  read_logits(first_row, count, out);
  return out;
}

void GPT2::read_logits(int64_t first_row, int64_t count, std::span<float> out) const {
  const Tensor all = logits();
  if (first_row < 0 || count < 0 || first_row + count > all.dim(0))
    fail("GPT2::read_logits: rows [{}, {}) outside the {} rows of the last forward", first_row,
         first_row + count, all.dim(0));
  const int64_t V = shape_.vocab, Vp = shape_.padded_vocab();
  if (static_cast<int64_t>(out.size()) != count * V)
    fail("GPT2::read_logits: {} floats given for {} rows of {}", out.size(), count, V);
  const int64_t element = static_cast<int64_t>(dtype_size(compute_));
  for (int64_t r = 0; r < count; ++r) {
    const Tensor row(static_cast<char*>(all.data) + (first_row + r) * Vp * element, compute_, {V});
    download_floats(out.data() + r * V, row);
  }
}

const ParamInfo& GPT2::parameter(const std::string& name) const {
  for (const ParamInfo& p : layout_.table)
    if (p.name == name) return p;
  fail("GPT-2 has no parameter named '{}' (names follow Hugging Face GPT-2, e.g. h.0.attn.c_attn.weight)",
       name);
}

Tensor GPT2::element_view(const DeviceTensor& buffer, int64_t offset, int64_t n) const {
  const Tensor& all = buffer.view();
  return Tensor(static_cast<char*>(all.data) + offset * static_cast<int64_t>(dtype_size(all.dtype)),
                all.dtype, {n});
}

void GPT2::download_floats(float* host, Tensor src) const {
  if (src.dtype == DType::F32) return backend_.download(host, src);
  const int64_t n = src.numel();
  if (static_cast<int64_t>(host_bf16_.size()) < n) host_bf16_.resize(static_cast<size_t>(n));
  backend_.download(host_bf16_.data(), src);
  cpu::cast({.out = Tensor(host, DType::F32, {n}), .inp = Tensor(host_bf16_.data(), DType::BF16, {n})});
}

Tensor GPT2::parameter_view(const ParamInfo& p) const {
  return element_view(params_, p.offset, p.allocated);
}

Tensor GPT2::gradient_view(const ParamInfo& p) const {
  return element_view(grads_, p.offset, p.allocated);
}

Tensor GPT2::master_view(const ParamInfo& p) const {
  return mixed_precision() ? element_view(master_, p.offset, p.allocated) : Tensor{};
}

std::vector<float> GPT2::read_parameter(const std::string& name) const {
  const ParamInfo& p = parameter(name);
  std::vector<float> out(static_cast<size_t>(p.numel()));
  download_floats(out.data(), element_view(mixed_precision() ? master_ : params_, p.offset, p.numel()));
  return out;
}

std::vector<float> GPT2::read_gradient(const std::string& name) const {
  const ParamInfo& p = parameter(name);
  std::vector<float> out(static_cast<size_t>(p.numel()));
  download_floats(out.data(), element_view(grads_, p.offset, p.numel()));
  return out;
}

void GPT2::write_parameter(const std::string& name, std::span<const float> values) {
  const ParamInfo& p = parameter(name);
  if (static_cast<int64_t>(values.size()) != p.numel())
    fail("parameter {}: {} values given, its shape [{}] holds {}", name, values.size(),
         fmt::join(p.shape, ", "), p.numel());
  // Only the real rows: wte's padding stays zero.
  if (mixed_precision()) {
    const Tensor master = element_view(master_, p.offset, p.numel());
    backend_.upload(master, values.data());
    backend_.cast({.out = element_view(params_, p.offset, p.numel()), .inp = master});
  } else {
    backend_.upload(element_view(params_, p.offset, p.numel()), values.data());
  }
}

ModelMemory GPT2::memory() const {
  return {.parameters = params_.view().nbytes() + (mixed_precision() ? master_.view().nbytes() : 0),
          .gradients = grads_.view().nbytes(),
          .activations = activations_.view().nbytes() + tokens_.view().nbytes() + targets_.view().nbytes() +
                         positions_.view().nbytes(),
          .kv_cache = kv_cache_.view().defined() ? kv_cache_.view().nbytes() : 0};
}

}  // namespace inkstone
