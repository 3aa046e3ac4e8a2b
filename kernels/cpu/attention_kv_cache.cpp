// Causal multi-head self-attention of T new tokens per sequence over a KV cache (inference only).
// Layout: qkv [B,T,3C] = q | k | v, head h in columns h*hd .. (h+1)*hd of each; out [B,T,C];
// k_cache, v_cache [B,NH,capacity,hd]: each (sequence, head) owns one dense [capacity, hd] block, so a
// step reads its keys and values as plain matrices; start I32 [B]: the position of sequence b's first
// new token. Scores are q . k / sqrt(hd).
// Precision: fp32; exp is exp_approx (vec_math.h, within 2 ulp of expf), the one attention_forward
// uses, so a prefill rounds like the training-time attention and the exp loops vectorise.
// OVERWRITES out and the cache at positions start[b] + [0, T). The cache is READ only below
// start[b] + T, where every row holds this call's or an earlier call's keys and values: whatever lies
// beyond (right padding of a shorter prompt, a longer sequence's stale rows, NaN) never reaches out.
//
// Threads split (sequence, head) pairs, which own disjoint cache blocks and out columns; each pair
// first copies its new keys and values into the cache, then attends. A single new token (decoding)
// is a dot product per cached key and a weighted sum of cached values: memory-bound loops, no BLAS.
// Several new tokens (prefill) run in tiles of kQueryTile queries: one single-threaded sgemm scores
// the tile against every key its last query may see (at most kQueryTile x capacity floats of scratch),
// each row takes an exact max-subtracted softmax over its own causal prefix, and a second sgemm writes
// P V straight into out, normalised afterwards. With the whole score row at hand there is no online
// softmax to rescale.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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
constexpr const char* kOp = "attention_kv_cache";

struct KvShape {
  int64_t B, T, C, NH, hd, capacity;
};

KvShape check_kv_cache(const AttentionKvCache& p) {
  require_f32(p.qkv, kOp, "qkv");
  require_f32(p.out, kOp, "out");
  require_f32(p.k_cache, kOp, "k_cache");
  require_f32(p.v_cache, kOp, "v_cache");
  require_dtype(p.start, DType::I32, kOp, "start");
  require(p.qkv.ndim == 3 && p.qkv.dim(2) % 3 == 0, kOp, "qkv must be [B, T, 3C]");
  const int64_t B = p.qkv.dim(0), T = p.qkv.dim(1), C = p.qkv.dim(2) / 3;
  require(p.n_head > 0 && C % p.n_head == 0, kOp, "n_head must divide C");
  const int64_t NH = p.n_head, hd = C / NH;
  require_numel(p.out, B * T * C, kOp, "out");
  require_numel(p.start, B, kOp, "start");
  const Tensor& k = p.k_cache;
  require(k.ndim == 4 && k.dim(0) == B && k.dim(1) == NH && k.dim(3) == hd, kOp,
          "k_cache must be [B, n_head, capacity, C / n_head]");
  const Tensor& v = p.v_cache;
  require(v.ndim == 4 && v.shape == k.shape, kOp, "v_cache must have k_cache's shape");
  const int64_t capacity = k.dim(2);
  require(T * 3 * C <= INT32_MAX && capacity * hd <= INT32_MAX, kOp, "a sequence exceeds the BLAS int range");
  const int32_t* start = p.start.as<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    require(start[b] >= 0 && start[b] + T <= capacity, kOp,
            "new positions start[b] + [0, T) must lie in [0, capacity)");
  return {B, T, C, NH, hd, capacity};
}

// One (sequence, head) pair: new token t's q/k/v at q + t * qkv_stride (k, v at + C, + 2C); its
// output at out + t * out_stride; the pair's cache blocks [capacity, hd]; its first new position.
struct Pair {
  const float* q;
  int64_t qkv_stride, C;
  float* out;
  int64_t out_stride;
  float *k_cache, *v_cache;
  int64_t start;
};

Pair pair_view(const KvShape& s, const AttentionKvCache& p, int64_t bh) {
  const int64_t b = bh / s.NH, h = bh % s.NH;
  const int64_t block = bh * s.capacity * s.hd;  // [B, NH] pairs are contiguous in the cache
  return {p.qkv.as<float>() + b * s.T * 3 * s.C + h * s.hd,
          3 * s.C,
          s.C,
          p.out.as<float>() + b * s.T * s.C + h * s.hd,
          s.C,
          p.k_cache.as<float>() + block,
          p.v_cache.as<float>() + block,
          p.start.as<int32_t>()[b]};
}

void store_new_keys_and_values(const Pair& x, int64_t T, int64_t hd) {
  for (int64_t t = 0; t < T; ++t) {
    const float* k = x.q + t * x.qkv_stride + x.C;
    std::memcpy(x.k_cache + (x.start + t) * hd, k, hd * sizeof(float));
    std::memcpy(x.v_cache + (x.start + t) * hd, k + x.C, hd * sizeof(float));
  }
}

// Row-major c[m,n] = alpha * a[m,k] . op(b) with op(b) = b[k,n] or b[n,k]^T (c overwritten).
void gemm(bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), 0.0f, c, static_cast<int>(ldc));
}

// s[0..visible) <- exp(s - max), s[visible..n) <- 0; returns the sum (>= 1: the max term is exp(0)).
float exp_shifted(float* s, int64_t n, int64_t visible) {
  const float max = row_max(s, visible, -std::numeric_limits<float>::infinity());
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    s[j] = j < visible ? exp_approx(s[j] - max) : 0.0f;
    sum += s[j];
  }
  return sum;
}

// The one new token of a decoding step, at position x.start: attends to cache rows [0, x.start].
void attend_single_query(const Pair& x, int64_t hd, float scale, float* scores) {
  const int64_t n = x.start + 1;
  for (int64_t j = 0; j < n; ++j) {
    const float* k = x.k_cache + j * hd;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < hd; ++d) dot += x.q[d] * k[d];
    scores[j] = dot * scale;
  }
  const float inv_sum = 1.0f / exp_shifted(scores, n, n);
  float* o = x.out;
  std::fill(o, o + hd, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* v = x.v_cache + j * hd;
    const float pj = scores[j];
#pragma omp simd
    for (int64_t d = 0; d < hd; ++d) o[d] += pj * v[d];
  }
#pragma omp simd
  for (int64_t d = 0; d < hd; ++d) o[d] *= inv_sum;
}

// New tokens i0 .. i0 + nq (positions x.start + i0 + r): scores against keys [0, last position].
void attend_query_tile(const Pair& x, int64_t i0, int64_t nq, int64_t hd, float scale, float* scores) {
  const int64_t first = x.start + i0, n_keys = first + nq;
  gemm(true, nq, n_keys, hd, scale, x.q + i0 * x.qkv_stride, x.qkv_stride, x.k_cache, hd, scores, n_keys);
  float inv_sum[kQueryTile];
  for (int64_t r = 0; r < nq; ++r)
    inv_sum[r] = 1.0f / exp_shifted(scores + r * n_keys, n_keys, first + r + 1);
  float* out = x.out + i0 * x.out_stride;
  gemm(false, nq, hd, n_keys, 1.0f, scores, n_keys, x.v_cache, hd, out, x.out_stride);
  for (int64_t r = 0; r < nq; ++r) {
    float* o = out + r * x.out_stride;
#pragma omp simd
    for (int64_t d = 0; d < hd; ++d) o[d] *= inv_sum[r];
  }
}

// Per-thread score scratch, only ever grown, so decoding loops do not allocate after their first step.
std::vector<float>& scores_for_this_thread(size_t floats) {
  thread_local std::vector<float> scores;
  if (scores.size() < floats) scores.resize(floats);
  return scores;
}

}  // namespace

void attention_kv_cache(const AttentionKvCache& p) {
  const KvShape s = check_kv_cache(p);
  if (s.T > 1) prepare_blas();
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
  const int64_t tile_rows = std::min(s.T, kQueryTile);
#pragma omp parallel
  {
    float* scores = scores_for_this_thread(static_cast<size_t>(tile_rows * s.capacity)).data();
    // Pairs of sequences at different positions differ in cost: hand them out one at a time.
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.NH; ++bh) {
      const Pair x = pair_view(s, p, bh);
      store_new_keys_and_values(x, s.T, s.hd);
      if (s.T == 1) {
        attend_single_query(x, s.hd, scale, scores);
        continue;
      }
      for (int64_t i0 = 0; i0 < s.T; i0 += kQueryTile)
        attend_query_tile(x, i0, std::min(kQueryTile, s.T - i0), s.hd, scale, scores);
    }
  }
}

}  // namespace inkstone::cpu
