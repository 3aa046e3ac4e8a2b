// Token + position embedding.
// Layout: tokens I32 [B,T]; wte [V,C]; wpe [ctx,C]; out and dout [B,T,C]; positions (optional, forward
// only) I32 [B], the first position of each sequence, in place of the shared pos_offset. Precision: fp32.
// Forward OVERWRITES out. Backward ACCUMULATES: dwte[token] += dout (scatter), dwpe[t] += sum_b dout.
// The backward pass splits channels, not tokens, across threads: a token repeated in the batch never
// races with itself, and every sum runs in token order, so results do not depend on the thread count.
#include <omp.h>

#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

struct EmbeddingShape {
  int64_t B, T, C, V;
};

// `positions`, when defined, replaces pos_offset as each sequence's first position.
EmbeddingShape check_embedding(const char* op, const Tensor& x, const Tensor& tokens, const Tensor& wte,
                               const Tensor& wpe, int pos_offset, const Tensor& positions,
                               const char* x_name) {
  require_dtype(tokens, DType::I32, op, "tokens");
  require_f32(x, op, x_name);
  require_f32(wte, op, "wte");
  require_f32(wpe, op, "wpe");
  require(tokens.ndim == 2, op, "tokens must be [B, T]");
  require(wte.ndim == 2 && wpe.ndim == 2 && wpe.dim(1) == wte.dim(1), op,
          "wte and wpe must be [V, C] and [ctx, C]");
  const EmbeddingShape s{tokens.dim(0), tokens.dim(1), wte.dim(1), wte.dim(0)};
  require_numel(x, s.B * s.T * s.C, op, x_name);
  if (positions.defined()) {
    require_dtype(positions, DType::I32, op, "positions");
    require_numel(positions, s.B, op, "positions");
    const int32_t* first = positions.as<int32_t>();
    for (int64_t b = 0; b < s.B; ++b)
      require(first[b] >= 0 && first[b] + s.T <= wpe.dim(0), op, "positions[b] + [0, T) run outside wpe");
  } else {
    require(pos_offset >= 0 && pos_offset + s.T <= wpe.dim(0), op,
            "positions pos_offset + [0, T) run past wpe");
  }
  const int32_t* tok = tokens.as<int32_t>();
  for (int64_t i = 0; i < s.B * s.T; ++i)
    require(tok[i] >= 0 && tok[i] < s.V, op, "a token id is outside [0, V)");
  return s;
}

}  // namespace

void embedding_forward(const EmbeddingForward& p) {
  const auto [B, T, C, V] =
      check_embedding("embedding_forward", p.out, p.tokens, p.wte, p.wpe, p.pos_offset, p.positions, "out");
  const int32_t* tokens = p.tokens.as<int32_t>();
  const int32_t* positions = p.positions.defined() ? p.positions.as<int32_t>() : nullptr;
  const float* wte = p.wte.as<float>();
  const float* wpe = p.wpe.as<float>();
  float* out = p.out.as<float>();
#pragma omp parallel for schedule(static) if (B * T * C >= kParallelElementwise)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const int64_t first = positions ? positions[bt / T] : p.pos_offset;
    const float* tok_row = wte + tokens[bt] * C;
    const float* pos_row = wpe + (first + bt % T) * C;
    float* o = out + bt * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = tok_row[c] + pos_row[c];
  }
}

void embedding_backward(const EmbeddingBackward& p) {
  const auto [B, T, C, V] =
      check_embedding("embedding_backward", p.dout, p.tokens, p.dwte, p.dwpe, p.pos_offset, Tensor{}, "dout");
  const int32_t* tokens = p.tokens.as<int32_t>();
  const float* dout = p.dout.as<float>();
  float* dwte = p.dwte.as<float>();
  float* dwpe = p.dwpe.as<float>() + p.pos_offset * C;
#pragma omp parallel if (B * T * C >= kParallelElementwise)
  {
    const Range cols = this_thread_range(C, 16);
    for (int64_t bt = 0; bt < B * T; ++bt) {
      const float* d = dout + bt * C;
      float* tok_row = dwte + tokens[bt] * C;
      float* pos_row = dwpe + (bt % T) * C;
#pragma omp simd
      for (int64_t c = cols.begin; c < cols.end; ++c) {
        tok_row[c] += d[c];
        pos_row[c] += d[c];
      }
    }
  }
}

}  // namespace inkstone::cpu
