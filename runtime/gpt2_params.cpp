#include "runtime/gpt2_params.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

#include "runtime/rng.h"

namespace inkstone {
namespace {

// Every tensor starts on a 16-element boundary (64 bytes in F32, 32 in BF16) so vectorised kernels
// (AVX-512, 16-byte CUDA loads, cuBLASLt) see aligned rows whatever the shape.
constexpr int64_t kAlignFloats = 16;

int64_t align_up(int64_t n) {
  return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
}

// Visits the parameters in Hugging Face order; `add(name, hf_shape, allocated_rows)` returns the
// tensor's view, which is stored into the GPT2Weights being built. Layout and views are made by this
// one function, so they cannot disagree.
template <class Add>
GPT2Weights visit_parameters(const GPT2Shape& s, Add&& add) {
  const int64_t C = s.n_embd;
  GPT2Weights w;
  w.wte = add("wte.weight", {s.vocab, C}, s.padded_vocab());
  w.wpe = add("wpe.weight", {s.context, C}, s.context);
  w.h.resize(s.n_layer);
  for (int l = 0; l < s.n_layer; ++l) {
    BlockWeights& b = w.h[l];
    auto name = [l](const char* suffix) { return fmt::format("h.{}.{}", l, suffix); };
    b.ln_1_weight = add(name("ln_1.weight"), {C}, 1);
    b.ln_1_bias = add(name("ln_1.bias"), {C}, 1);
    b.c_attn_weight = add(name("attn.c_attn.weight"), {C, 3 * C}, C);
    b.c_attn_bias = add(name("attn.c_attn.bias"), {3 * C}, 1);
    b.attn_c_proj_weight = add(name("attn.c_proj.weight"), {C, C}, C);
    b.attn_c_proj_bias = add(name("attn.c_proj.bias"), {C}, 1);
    b.ln_2_weight = add(name("ln_2.weight"), {C}, 1);
    b.ln_2_bias = add(name("ln_2.bias"), {C}, 1);
    b.c_fc_weight = add(name("mlp.c_fc.weight"), {C, 4 * C}, C);
    b.c_fc_bias = add(name("mlp.c_fc.bias"), {4 * C}, 1);
    b.mlp_c_proj_weight = add(name("mlp.c_proj.weight"), {4 * C, C}, 4 * C);
    b.mlp_c_proj_bias = add(name("mlp.c_proj.bias"), {C}, 1);
  }
  w.ln_f_weight = add("ln_f.weight", {C}, 1);
  w.ln_f_bias = add("ln_f.bias", {C}, 1);
  return w;
}

// A view with the HF shape, except that the first dimension has `rows` entries (wte's padding);
// 1-D tensors pass rows = 1.
Tensor view_of(void* base, DType dtype, const ParamInfo& p, int64_t rows) {
  Tensor t(static_cast<char*>(base) + p.offset * static_cast<int64_t>(dtype_size(dtype)), dtype, {});
  t.ndim = static_cast<int>(p.shape.size());
  for (int i = 0; i < t.ndim; ++i) t.shape[i] = p.shape[i];
  if (t.ndim == 2) t.shape[0] = rows;
  return t;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

ParameterLayout gpt2_parameter_layout(const GPT2Shape& shape) {
  ParameterLayout layout;
  visit_parameters(shape, [&](std::string name, std::vector<int64_t> hf_shape, int64_t rows) {
    ParamInfo p{std::move(name), std::move(hf_shape), layout.total_elements, 0};
    p.allocated = p.shape.size() == 2 ? rows * p.shape[1] : p.shape[0];
    layout.total_elements += align_up(p.allocated);
    layout.table.push_back(std::move(p));
    return Tensor{};
  });
  return layout;
}

GPT2Weights gpt2_weight_views(const GPT2Shape& shape, const ParameterLayout& layout, void* base,
                              DType dtype) {
  size_t next = 0;
  return visit_parameters(shape, [&](const std::string& name, const std::vector<int64_t>&, int64_t rows) {
    const ParamInfo& p = layout.table.at(next++);
    assert(p.name == name);
    (void)name;
    return view_of(base, dtype, p, rows);
  });
}

void init_gpt2_parameter(const ParamInfo& param, const GPT2Shape& shape, Rng& rng, std::span<float> out) {
  assert(static_cast<int64_t>(out.size()) == param.allocated);
  std::fill(out.begin(), out.end(), 0.0f);
  const std::span<float> real = out.first(static_cast<size_t>(param.numel()));
  const bool layernorm = param.name.starts_with("ln_f.") || param.name.find(".ln_") != std::string::npos;
  if (layernorm) {
    if (ends_with(param.name, ".weight")) std::fill(real.begin(), real.end(), 1.0f);
    return;
  }
  if (ends_with(param.name, ".bias")) return;
  // GPT-2 scales the projections that write into the residual stream by 1/sqrt(number of such
  // writes), so the residual's variance does not grow with depth (nanoGPT: c_proj.weight).
  const double stddev = ends_with(param.name, "c_proj.weight") ? 0.02 / std::sqrt(2.0 * shape.n_layer) : 0.02;
  rng.fill_normal(real, 0.0, stddev);
}

}  // namespace inkstone
