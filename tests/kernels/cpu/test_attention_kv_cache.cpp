// attention_kv_cache against the naive double causal attention of reference.h run on whole sequences:
// a prefill from position 0 (one token, a partial tile, several 64-query tiles), decoding one token at
// a time with a multi-token chunk in between, a batch of prompts of different lengths prefilled
// right-padded and decoded in lockstep, cache positions past a sequence's end filled with NaN or
// infinity never reaching the output, the cache writes, and rejected shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

constexpr float kInputScale = 2.0f;  // peaked softmax rows, as in test_attention.cpp
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Dims {
  int64_t C, NH;
  int64_t hd() const { return C / NH; }
};

// Error enters through the scores (a dot product over hd, then exp) and the weighted sums over the
// keys: the same budget test_attention.cpp gives attention_forward for a sequence of `length`.
double tolerance(int64_t length, const Dims& d) {
  return ref::fp32_tolerance(static_cast<double>(length + d.hd()));
}

// One layer's cache for `B` sequences, every element `fill` until the kernel writes it.
struct Cache {
  int64_t B, NH, capacity, hd;
  std::vector<float> k, v;
  Cache(int64_t batch, const Dims& d, int64_t cap, float fill)
      : B(batch),
        NH(d.NH),
        capacity(cap),
        hd(d.hd()),
        k(batch * d.C * cap, fill),
        v(batch * d.C * cap, fill) {}
  float key(int64_t b, int64_t h, int64_t pos, int64_t i) const {
    return k[((b * NH + h) * capacity + pos) * hd + i];
  }
  float value(int64_t b, int64_t h, int64_t pos, int64_t i) const {
    return v[((b * NH + h) * capacity + pos) * hd + i];
  }
};

// Runs the kernel on qkv [B, T, 3C] with sequence b's new tokens at start[b] + [0, T); returns out.
std::vector<float> step(Cache& cache, std::vector<float>& qkv, std::vector<int32_t>& start, int64_t T,
                        const Dims& d) {
  const int64_t B = cache.B;
  std::vector<float> out(B * T * d.C, kNaN);
  cpu::attention_kv_cache({.out = Tensor(out.data(), DType::F32, {B, T, d.C}),
                           .qkv = Tensor(qkv.data(), DType::F32, {B, T, 3 * d.C}),
                           .k_cache = Tensor(cache.k.data(), DType::F32, {B, d.NH, cache.capacity, d.hd()}),
                           .v_cache = Tensor(cache.v.data(), DType::F32, {B, d.NH, cache.capacity, d.hd()}),
                           .start = Tensor(start.data(), DType::I32, {B}),
                           .n_head = static_cast<int>(d.NH)});
  return out;
}

// Rows [from, from + count) of a [rows, width] matrix.
std::vector<float> row_slice(const std::vector<float>& m, int64_t width, int64_t from, int64_t count) {
  return {m.begin() + from * width, m.begin() + (from + count) * width};
}

template <class T>
void append(std::vector<T>& to, const std::vector<T>& rows) {
  to.insert(to.end(), rows.begin(), rows.end());
}

// A batch of sequences, each with its own qkv [L_b, 3C] and its double-precision causal attention
// output [L_b, C] computed once over the whole sequence.
struct Sequences {
  Dims d;
  std::vector<std::vector<float>> qkv;
  std::vector<ref::Vec> want;

  Sequences(const Dims& dims, const std::vector<int64_t>& lengths, uint64_t seed) : d(dims) {
    for (int64_t L : lengths) {
      qkv.push_back(random_floats(L * 3 * d.C, seed++, kInputScale));
      want.push_back(ref::attention_forward(ref::to_double(qkv.back()), {1, L, d.C, d.NH}).out);
    }
  }
  int64_t B() const { return static_cast<int64_t>(qkv.size()); }

  // qkv [B, T, 3C] of tokens start[b] + [0, T); rows past sequence b's end are junk (right padding).
  std::vector<float> gather(const std::vector<int32_t>& start, int64_t T, uint64_t junk_seed) const {
    std::vector<float> batch;
    for (int64_t b = 0; b < B(); ++b) {
      const int64_t length = static_cast<int64_t>(qkv[b].size()) / (3 * d.C);
      const int64_t real = std::clamp<int64_t>(length - start[b], 0, T);
      append(batch, row_slice(qkv[b], 3 * d.C, start[b], real));
      append(batch, random_floats((T - real) * 3 * d.C, junk_seed + b, kInputScale));
    }
    return batch;
  }

  // Error of out [B, T, C] against the reference at the real positions start[b] + t < L_b.
  double error(const std::vector<float>& out, const std::vector<int32_t>& start, int64_t T) const {
    double worst = 0;
    for (int64_t b = 0; b < B(); ++b) {
      const int64_t length = static_cast<int64_t>(want[b].size()) / d.C;
      const int64_t real = std::clamp<int64_t>(length - start[b], 0, T);
      if (real == 0) continue;
      const std::vector<float> got = row_slice(out, d.C, b * T, real);
      const ref::Vec expected(want[b].begin() + start[b] * d.C, want[b].begin() + (start[b] + real) * d.C);
      worst = std::max(worst, ref::max_scaled_error(got, expected));
    }
    return worst;
  }
};

TEST(AttentionKvCache, PrefillFromZeroMatchesReferenceAndAttentionForward) {
  // T = 1 takes the decoding path; 7 a partial query tile; 64, 65, 200 one and several 64-query tiles.
  for (const auto& [T, d] : std::vector<std::pair<int64_t, Dims>>{
           {1, {8, 2}}, {7, {8, 2}}, {64, {32, 2}}, {65, {48, 3}}, {200, {32, 2}}, {130, {128, 2}}}) {
    SCOPED_TRACE(::testing::Message() << "T=" << T << " C=" << d.C << " NH=" << d.NH);
    const Sequences seqs(d, {T, T}, 1);
    std::vector<int32_t> start = {0, 0};
    std::vector<float> qkv = seqs.gather(start, T, 100);
    Cache cache(2, d, T + 5, kNaN);
    const std::vector<float> out = step(cache, qkv, start, T, d);
    EXPECT_LT(seqs.error(out, start, T), tolerance(T, d));

    std::vector<float> trained(out.size()), lse(2 * d.NH * T);
    cpu::attention_forward({.out = Tensor(trained.data(), DType::F32, {2, T, d.C}),
                            .lse = Tensor(lse.data(), DType::F32, {2, d.NH, T}),
                            .qkv = Tensor(qkv.data(), DType::F32, {2, T, 3 * d.C}),
                            .n_head = static_cast<int>(d.NH)});
    // Both are within tolerance of the exact answer, so within twice that of each other.
    EXPECT_LT(ref::max_scaled_error(out, ref::to_double(trained)), 2 * tolerance(T, d));

    // The new keys and values are copied into the cache exactly; the positions after them untouched.
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < d.NH; ++h)
        for (int64_t pos = 0; pos < cache.capacity; ++pos)
          for (int64_t i = 0; i < d.hd(); ++i) {
            const int64_t col = h * d.hd() + i, row = (b * T + pos) * 3 * d.C;
            if (pos < T) {
              ASSERT_EQ(cache.key(b, h, pos, i), qkv[row + d.C + col]);
              ASSERT_EQ(cache.value(b, h, pos, i), qkv[row + 2 * d.C + col]);
            } else {
              ASSERT_TRUE(std::isnan(cache.key(b, h, pos, i)) && std::isnan(cache.value(b, h, pos, i)));
            }
          }
  }
}

TEST(AttentionKvCache, DecodingTokenByTokenMatchesReference) {
  const Dims d{48, 3};
  const int64_t total = 150;
  const Sequences seqs(d, {total, total}, 10);
  Cache cache(2, d, total, kNaN);
  // A prefill of 9, single tokens, a 70-token chunk at position 20 (the tiled path with start > 0,
  // over two query tiles), then single tokens to the end.
  std::vector<int64_t> chunks = {9};
  for (int64_t pos = 9; pos < 20; ++pos) chunks.push_back(1);
  chunks.push_back(70);
  for (int64_t pos = 90; pos < total; ++pos) chunks.push_back(1);
  int32_t pos = 0;
  for (int64_t T : chunks) {
    SCOPED_TRACE(::testing::Message() << "position " << pos << " T=" << T);
    std::vector<int32_t> start = {pos, pos};
    std::vector<float> qkv = seqs.gather(start, T, 0);
    const std::vector<float> out = step(cache, qkv, start, T, d);
    ASSERT_LT(seqs.error(out, start, T), tolerance(pos + T, d));
    pos += static_cast<int32_t>(T);
  }
}

// Prompts of lengths 3, 17 and 70 prefilled right-padded in one call, decoded in lockstep (each at its
// own position), then one 4-token step from three different positions.
std::vector<std::vector<float>> padded_batch_run(const Sequences& seqs, Cache& cache,
                                                 const std::vector<int64_t>& prompt, int64_t decode_steps,
                                                 double* worst_error) {
  const Dims& d = seqs.d;
  std::vector<std::vector<float>> outs;
  *worst_error = 0;
  auto run = [&](std::vector<int32_t> start, int64_t T) {
    std::vector<float> qkv = seqs.gather(start, T, 1000 + outs.size());
    outs.push_back(step(cache, qkv, start, T, d));
    *worst_error = std::max(*worst_error, seqs.error(outs.back(), start, T) / tolerance(cache.capacity, d));
  };
  const int64_t longest = *std::max_element(prompt.begin(), prompt.end());
  run(std::vector<int32_t>(prompt.size(), 0), longest);
  std::vector<int32_t> start(prompt.begin(), prompt.end());
  for (int64_t s = 0; s < decode_steps; ++s) {
    run(start, 1);
    for (int32_t& p : start) ++p;
  }
  run(start, 4);
  return outs;
}

TEST(AttentionKvCache, PromptsOfDifferentLengthsShareOneBatch) {
  const Dims d{32, 4};
  const std::vector<int64_t> prompt = {3, 17, 70};
  const int64_t decode_steps = 12;
  std::vector<int64_t> lengths;
  for (int64_t p : prompt) lengths.push_back(p + decode_steps + 4);
  const Sequences seqs(d, lengths, 20);
  Cache cache(3, d, 90, kNaN);
  double worst = 0;  // in units of the tolerance
  padded_batch_run(seqs, cache, prompt, decode_steps, &worst);
  EXPECT_LT(worst, 1.0);
}

TEST(AttentionKvCache, PositionsPastASequenceNeverReachTheOutput) {
  const Dims d{32, 4};
  const std::vector<int64_t> prompt = {3, 17, 70};
  std::vector<int64_t> lengths;
  for (int64_t p : prompt) lengths.push_back(p + 6 + 4);
  const Sequences seqs(d, lengths, 30);
  double worst = 0;
  Cache nan_cache(3, d, 90, kNaN), inf_cache(3, d, 90, std::numeric_limits<float>::infinity()),
      zero_cache(3, d, 90, 0.0f);
  const auto with_nan = padded_batch_run(seqs, nan_cache, prompt, 6, &worst);
  const auto with_inf = padded_batch_run(seqs, inf_cache, prompt, 6, &worst);
  const auto with_zero = padded_batch_run(seqs, zero_cache, prompt, 6, &worst);
  for (size_t i = 0; i < with_nan.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "call " << i);
    EXPECT_TRUE(
        std::all_of(with_nan[i].begin(), with_nan[i].end(), [](float x) { return std::isfinite(x); }));
    EXPECT_EQ(with_nan[i], with_zero[i]);
    EXPECT_EQ(with_inf[i], with_zero[i]);
  }
}

TEST(AttentionKvCache, RejectsBadShapesAndPositions) {
  const Dims d{8, 2};
  const int64_t B = 2, T = 3, capacity = 10;
  std::vector<float> qkv(B * T * 3 * d.C), out(B * T * d.C), k(B * d.C * capacity), v(k.size());
  std::vector<int32_t> start = {0, 7};
  auto params = [&] {
    return AttentionKvCache{.out = Tensor(out.data(), DType::F32, {B, T, d.C}),
                            .qkv = Tensor(qkv.data(), DType::F32, {B, T, 3 * d.C}),
                            .k_cache = Tensor(k.data(), DType::F32, {B, d.NH, capacity, d.hd()}),
                            .v_cache = Tensor(v.data(), DType::F32, {B, d.NH, capacity, d.hd()}),
                            .start = Tensor(start.data(), DType::I32, {B}),
                            .n_head = static_cast<int>(d.NH)};
  };
  EXPECT_NO_THROW(cpu::attention_kv_cache(params()));  // 7 + 3 == capacity: the last positions
  auto rejects = [&](auto&& mutate) {
    AttentionKvCache p = params();
    mutate(p);
    EXPECT_THROW(cpu::attention_kv_cache(p), std::invalid_argument);
  };
  rejects([](AttentionKvCache& p) { p.n_head = 3; });
  rejects([&](AttentionKvCache& p) {
    p.k_cache = Tensor(k.data(), DType::F32, {B, d.NH, capacity, d.hd() / 2});
  });
  rejects([&](AttentionKvCache& p) {
    p.k_cache = Tensor(k.data(), DType::F32, {1, d.NH, capacity, d.hd()});
  });
  rejects([&](AttentionKvCache& p) {
    p.v_cache = Tensor(v.data(), DType::F32, {B, d.NH, capacity - 1, d.hd()});
  });
  rejects([&](AttentionKvCache& p) { p.start = Tensor(start.data(), DType::I32, {1}); });
  rejects([&](AttentionKvCache& p) { p.start.dtype = DType::F32; });
  rejects([&](AttentionKvCache& p) { p.out = Tensor(out.data(), DType::F32, {B, T - 1, d.C}); });
  start = {0, 8};  // 8 + 3 > capacity
  rejects([](AttentionKvCache&) {});
  start = {-1, 0};
  rejects([](AttentionKvCache&) {});
}

}  // namespace
}  // namespace inkstone
