// Causal multi-head self-attention, flash-style on the CPU: no T x T matrix is ever stored.
// Layout: qkv [B,T,3C] = q | k | v, head h in columns h*hd .. (h+1)*hd of each; out, dout [B,T,C];
// lse [B,NH,T] = log sum_j exp(s_ij) of the scaled scores s_ij = q_i . k_j / sqrt(hd), j <= i.
// Precision: fp32 throughout.
// Forward OVERWRITES out and lse. Backward ACCUMULATES into dqkv.
//
// Both passes walk tiles of kQueryTile queries x kKeyTile keys; the tile products (Q K^T, P V and
// the five of the backward pass) are single-threaded sgemm calls straight on the strided qkv rows,
// so the FLOPs run at GEMM speed while scratch stays at one tile per thread. The forward pass is an
// online softmax over key tiles (running max and sum per query, the accumulator rescaled once per
// tile). The backward pass rebuilds each probability as p_ij = exp(s_ij - lse_i) and uses
// D_i = dout_i . out_i (= sum_j p_ij dp_ij). Threads split (batch, head) pairs, which own disjoint
// columns of dqkv, so nothing races and every sum has a fixed order.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/blas_setup.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/vec_math.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

constexpr int64_t kQueryTile = 64;
constexpr int64_t kKeyTile = 256;

struct AttentionShape {
  int64_t B, T, C, NH, hd;
};

AttentionShape check_attention(const char* op, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                               int n_head) {
  require_f32(qkv, op, "qkv");
  require_f32(out, op, "out");
  require_f32(lse, op, "lse");
  require(qkv.ndim == 3 && qkv.dim(2) % 3 == 0, op, "qkv must be [B, T, 3C]");
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  require(n_head > 0 && C % n_head == 0, op, "n_head must divide C");
  require_numel(out, B * T * C, op, "out");
  require_numel(lse, B * n_head * T, op, "lse");
  require(T * 3 * C <= INT32_MAX, op, "a sequence exceeds the BLAS int range");
  return {B, T, C, n_head, C / n_head};
}

// Row-major c[m,n] = alpha * a[m,k] . op(b) + beta * c with op(b) = b[k,n] or b[n,k]^T.
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda),
              b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// One (batch, head) pair's rows: token t of q/k/v at q + t * qkv_stride (k, v likewise); token t of
// out/dout at o + t * out_stride; gradients at the same offsets of dqkv.
struct Head {
  const float *q, *k, *v;
  int64_t qkv_stride;
  const float *o, *dout;
  int64_t out_stride;
  float *dq, *dk, *dv;
  const float* lse;  // [T]
};

Head head_view(const AttentionShape& s, int64_t bh, const float* qkv, const float* out, const float* dout,
               float* dqkv, const float* lse) {
  const int64_t b = bh / s.NH, h = bh % s.NH;
  const int64_t qkv_offset = b * s.T * 3 * s.C + h * s.hd, out_offset = b * s.T * s.C + h * s.hd;
  const float* q = qkv + qkv_offset;
  float* dq = dqkv ? dqkv + qkv_offset : nullptr;
  return {q,
          q + s.C,
          q + 2 * s.C,
          3 * s.C,
          out ? out + out_offset : nullptr,
          dout ? dout + out_offset : nullptr,
          s.C,
          dq,
          dq ? dq + s.C : nullptr,
          dq ? dq + 2 * s.C : nullptr,
          lse + bh * s.T};
}

// Number of keys j0 + [0, n) that query i may see: causality within a tile.
inline int64_t visible_keys(int64_t i, int64_t j0, int64_t n) {
  return std::clamp<int64_t>(i - j0 + 1, 0, n);
}

// Per-thread scratch of the forward pass: one tile of scores and the running softmax state.
// Thread-local and only ever grown, so the training loop does not allocate after its first step.
struct ForwardScratch {
  std::vector<float> scores, acc, running_max, running_sum;
  static ForwardScratch& for_this_thread(int64_t hd) {
    thread_local ForwardScratch w;
    w.scores.resize(kQueryTile * kKeyTile);
    w.acc.resize(kQueryTile * hd);
    w.running_max.resize(kQueryTile);
    w.running_sum.resize(kQueryTile);
    return w;
  }
};

// Online softmax step for one query row over one tile of scores: turns the scores into exp(s - max)
// (0 where masked), folds them into the running max and sum, and rescales the row's accumulator.
void online_softmax_row(float* s, int64_t n, int64_t visible, float& running_max, float& running_sum,
                        float* acc, int64_t hd) {
  const float tile_max = row_max(s, visible, running_max);
  float tile_sum = 0.0f;
#pragma omp simd reduction(+ : tile_sum)
  for (int64_t j = 0; j < n; ++j) {
    s[j] = j < visible ? exp_approx(s[j] - tile_max) : 0.0f;
    tile_sum += s[j];
  }
  if (visible == 0) return;  // the row has not reached this tile: its state is unchanged
  const float correction = exp_approx(running_max - tile_max);  // 0 on the first tile the row sees
  running_sum = running_sum * correction + tile_sum;
  running_max = tile_max;
#pragma omp simd
  for (int64_t d = 0; d < hd; ++d) acc[d] *= correction;
}

// Queries i0 .. i0 + nq of one head: out and lse.
void forward_query_tile(const Head& x, float* out, float* lse, int64_t i0, int64_t nq, int64_t hd,
                        float scale, ForwardScratch& w) {
  const int64_t ld = x.qkv_stride, key_end = i0 + nq;
  std::fill(w.acc.begin(), w.acc.end(), 0.0f);
  std::fill(w.running_max.begin(), w.running_max.end(), -std::numeric_limits<float>::infinity());
  std::fill(w.running_sum.begin(), w.running_sum.end(), 0.0f);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, key_end - j0);
    // scores[r][j] = scale * q_{i0+r} . k_{j0+j}
    gemm(false, true, nq, nk, hd, scale, x.q + i0 * ld, ld, x.k + j0 * ld, ld, 0.0f, w.scores.data(),
         kKeyTile);
    for (int64_t r = 0; r < nq; ++r)
      online_softmax_row(w.scores.data() + r * kKeyTile, nk, visible_keys(i0 + r, j0, nk), w.running_max[r],
                         w.running_sum[r], w.acc.data() + r * hd, hd);
    // acc[r] += sum_j p[r][j] v_{j0+j}
    gemm(false, false, nq, hd, nk, 1.0f, w.scores.data(), kKeyTile, x.v + j0 * ld, ld, 1.0f, w.acc.data(),
         hd);
  }
  for (int64_t r = 0; r < nq; ++r) {
    float* o = out + (i0 + r) * x.out_stride;
    const float inv_sum = 1.0f / w.running_sum[r];
#pragma omp simd
    for (int64_t d = 0; d < hd; ++d) o[d] = w.acc[r * hd + d] * inv_sum;
    lse[i0 + r] = w.running_max[r] + std::log(w.running_sum[r]);
  }
}

// Per-thread scratch of the backward pass: probabilities and score gradients of one tile.
struct BackwardScratch {
  std::vector<float> prob, dscore, delta;
  static BackwardScratch& for_this_thread() {  // thread-local, as ForwardScratch
    thread_local BackwardScratch w;
    w.prob.resize(kQueryTile * kKeyTile);
    w.dscore.resize(kQueryTile * kKeyTile);
    w.delta.resize(kQueryTile);
    return w;
  }
};

// Queries i0 .. i0 + nq of one head: their dq, and their share of dk and dv for keys 0 .. i0 + nq.
void backward_query_tile(const Head& x, int64_t i0, int64_t nq, int64_t hd, float scale, BackwardScratch& w) {
  const int64_t ld = x.qkv_stride, ldo = x.out_stride, key_end = i0 + nq;
  for (int64_t r = 0; r < nq; ++r) {  // D_i = dout_i . out_i
    const float* o_i = x.o + (i0 + r) * ldo;
    const float* do_i = x.dout + (i0 + r) * ldo;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < hd; ++d) sum += do_i[d] * o_i[d];
    w.delta[r] = sum;
  }
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, key_end - j0);
    float* prob = w.prob.data();
    float* dscore = w.dscore.data();
    gemm(false, true, nq, nk, hd, scale, x.q + i0 * ld, ld, x.k + j0 * ld, ld, 0.0f, prob, kKeyTile);  // s
    gemm(false, true, nq, nk, hd, 1.0f, x.dout + i0 * ldo, ldo, x.v + j0 * ld, ld, 0.0f, dscore,
         kKeyTile);  // dp
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t visible = visible_keys(i0 + r, j0, nk);
      const float lse_i = x.lse[i0 + r], delta_i = w.delta[r];
      float* pr = prob + r * kKeyTile;
      float* ds = dscore + r * kKeyTile;
#pragma omp simd
      for (int64_t j = 0; j < nk; ++j) {
        pr[j] = j < visible ? exp_approx(pr[j] - lse_i) : 0.0f;
        ds[j] = pr[j] * (ds[j] - delta_i) * scale;  // d loss / d (q . k)
      }
    }
    // dq += dS k;  dk += dS^T q;  dv += P^T dout
    gemm(false, false, nq, hd, nk, 1.0f, dscore, kKeyTile, x.k + j0 * ld, ld, 1.0f, x.dq + i0 * ld, ld);
    gemm(true, false, nk, hd, nq, 1.0f, dscore, kKeyTile, x.q + i0 * ld, ld, 1.0f, x.dk + j0 * ld, ld);
    gemm(true, false, nk, hd, nq, 1.0f, prob, kKeyTile, x.dout + i0 * ldo, ldo, 1.0f, x.dv + j0 * ld, ld);
  }
}

}  // namespace

void attention_forward(const AttentionForward& p) {
  const AttentionShape s = check_attention("attention_forward", p.qkv, p.out, p.lse, p.n_head);
  prepare_blas();
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
#pragma omp parallel
  {
    ForwardScratch& scratch = ForwardScratch::for_this_thread(s.hd);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < s.B * s.NH; ++bh) {
      const Head x = head_view(s, bh, p.qkv.as<float>(), nullptr, nullptr, nullptr, p.lse.as<float>());
      float* out = p.out.as<float>() + (bh / s.NH) * s.T * s.C + (bh % s.NH) * s.hd;
      float* lse = p.lse.as<float>() + bh * s.T;
      for (int64_t i0 = 0; i0 < s.T; i0 += kQueryTile)
        forward_query_tile(x, out, lse, i0, std::min(kQueryTile, s.T - i0), s.hd, scale, scratch);
    }
  }
}

void attention_backward(const AttentionBackward& p) {
  constexpr const char* op = "cpu::attention_backward";
  const AttentionShape s = check_attention(op, p.qkv, p.out, p.lse, p.n_head);
  require_f32(p.dqkv, op, "dqkv");
  require_numel(p.dqkv, s.B * s.T * 3 * s.C, op, "dqkv");
  require_f32(p.dout, op, "dout");
  require_numel(p.dout, s.B * s.T * s.C, op, "dout");
  prepare_blas();
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
#pragma omp parallel
  {
    BackwardScratch& scratch = BackwardScratch::for_this_thread();
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < s.B * s.NH; ++bh) {
      const Head x = head_view(s, bh, p.qkv.as<float>(), p.out.as<float>(), p.dout.as<float>(),
                               p.dqkv.as<float>(), p.lse.as<float>());
      for (int64_t i0 = 0; i0 < s.T; i0 += kQueryTile)
        backward_query_tile(x, i0, std::min(kQueryTile, s.T - i0), s.hd, scale, scratch);
    }
  }
}

}  // namespace inkstone::cpu
