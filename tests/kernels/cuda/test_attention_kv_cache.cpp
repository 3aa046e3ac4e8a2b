// cuda::attention_kv_cache against cpu::attention_kv_cache and a float64 attention over the cache
// contents: prefill from position 0 then decoding, sequences at different start positions, right-padded
// prompts prefilled in one call then decoded in lockstep, long caches (capacity 4096, decoding at
// position 3000 and at the last position) where decoding splits the cache over blocks, many (sequence,
// head) pairs (one block each), head dims that take the 16-byte path and ones that do not (6, 80), the
// cache contents after every step (equal to the CPU's, untouched past the new positions), an invalid
// start (NaN out, cache untouched), bit-identical repeats and rejected shapes.
// Label gpu: skips without a device.
//
// Both backends run the same calls on the same inputs; the CPU's cache (F32, holding the same
// bf16-representable values in BF16 runs) is the reference's input. Cache positions no call has written
// hold NaN on both sides, so reading one would show.
//
// Tolerances. F32: the budget test_attention_kv_cache.cpp (CPU) gives the same op, fp32_tolerance(keys +
// hd) as max_scaled_error against float64: scores are dot products over hd, outputs weighted sums over
// the keys. BF16: gpu_test_util.h's rule (plain = the CPU's fp32 output rounded to bf16).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::GpuBuffer;
using testing::random_floats;
using testing::round_to_bf16;
namespace ref = testing::ref;

constexpr float kInputScale = 2.0f;  // peaked softmax rows, as in the CPU tests
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Dims {
  int64_t C, NH;
  int64_t hd() const { return C / NH; }
};

bool same_or_both_nan(float a, float b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

// One layer's cache on both backends plus the calls that fill it.
class KvRun {
 public:
  KvRun(DType dtype, int64_t B, const Dims& d, int64_t capacity)
      : dtype_(dtype),
        B_(B),
        d_(d),
        capacity_(capacity),
        k_(B * d.C * capacity, kNaN),
        v_(B * d.C * capacity, kNaN),
        gpu_k_(dtype, {B, d.NH, capacity, d.hd()}),
        gpu_v_(dtype, {B, d.NH, capacity, d.hd()}) {
    upload_cache();
  }

  // Random keys and values at positions [0, upto[b]) of sequence b, on both backends: history that
  // earlier calls would have written.
  void fill_history(const std::vector<int32_t>& upto, uint64_t seed) {
    const int64_t hd = d_.hd();
    std::vector<float> k = values(B_ * d_.C * capacity_, seed), v = values(B_ * d_.C * capacity_, seed + 1);
    for (int64_t bh = 0; bh < B_ * d_.NH; ++bh)
      for (int64_t pos = 0; pos < upto[bh / d_.NH]; ++pos)
        for (int64_t i = 0; i < hd; ++i) {
          const int64_t at = (bh * capacity_ + pos) * hd + i;
          k_[at] = k[at];
          v_[at] = v[at];
        }
    upload_cache();
  }

  struct Step {
    std::vector<float> gpu, cpu;
    ref::Vec want;
    int64_t longest = 0;  // most keys any query attended to
  };

  // One call with T new tokens per sequence at start[b] + [0, T), on both backends.
  Step step(const std::vector<int32_t>& start, int64_t T, uint64_t seed) {
    std::vector<float> qkv = values(B_ * T * 3 * d_.C, seed);
    std::vector<int32_t> start_copy = start;
    GpuBuffer gpu_qkv(dtype_, {B_, T, 3 * d_.C}), gpu_out(dtype_, {B_, T, d_.C}), gpu_start(DType::I32, {B_});
    gpu_qkv.upload(qkv);
    gpu_out.upload(std::vector<float>(B_ * T * d_.C, kNaN));  // overwritten
    gpu_start.upload_ints(start);
    cuda::attention_kv_cache({.out = gpu_out,
                              .qkv = gpu_qkv,
                              .k_cache = gpu_k_,
                              .v_cache = gpu_v_,
                              .start = gpu_start,
                              .n_head = static_cast<int>(d_.NH)});
    Step r;
    r.gpu = gpu_out.download();
    r.cpu.assign(B_ * T * d_.C, kNaN);
    cpu::attention_kv_cache({.out = Tensor(r.cpu.data(), DType::F32, {B_, T, d_.C}),
                             .qkv = Tensor(qkv.data(), DType::F32, {B_, T, 3 * d_.C}),
                             .k_cache = Tensor(k_.data(), DType::F32, {B_, d_.NH, capacity_, d_.hd()}),
                             .v_cache = Tensor(v_.data(), DType::F32, {B_, d_.NH, capacity_, d_.hd()}),
                             .start = Tensor(start_copy.data(), DType::I32, {B_}),
                             .n_head = static_cast<int>(d_.NH)});
    r.want = reference(qkv, start, T);
    for (int32_t s : start) r.longest = std::max<int64_t>(r.longest, s + T);
    return r;
  }

  // The step's output against float64: the F32 budget, or twice the plain bf16 error.
  void expect_accurate(const Step& r) const {
    if (dtype_ == DType::F32) {
      const double tol = ref::fp32_tolerance(static_cast<double>(r.longest + d_.hd()));
      EXPECT_LT(ref::max_scaled_error(r.gpu, r.want), tol);
      EXPECT_LT(ref::max_scaled_error(r.cpu, r.want), tol);  // the budget is the CPU's own
    } else {
      testing::expect_bf16_error_within(r.gpu, round_to_bf16(r.cpu), r.want, "attention out");
    }
  }

  // The GPU's cache equals the CPU's everywhere: the new positions hold the same keys and values,
  // every other position what it held before (NaN where nothing was written).
  void expect_caches_match() const {
    const std::vector<float> k = gpu_k_.download(), v = gpu_v_.download();
    ASSERT_EQ(k.size(), k_.size());
    for (size_t i = 0; i < k.size(); ++i) {
      ASSERT_TRUE(same_or_both_nan(k[i], k_[i]))
          << "k_cache element " << i << ": " << k[i] << " vs " << k_[i];
      ASSERT_TRUE(same_or_both_nan(v[i], v_[i]))
          << "v_cache element " << i << ": " << v[i] << " vs " << v_[i];
    }
  }

  const GpuBuffer& gpu_k() const { return gpu_k_; }
  const GpuBuffer& gpu_v() const { return gpu_v_; }

 private:
  std::vector<float> values(int64_t n, uint64_t seed) const {
    std::vector<float> x = random_floats(n, seed, kInputScale);
    return dtype_ == DType::BF16 ? round_to_bf16(x) : x;
  }

  void upload_cache() {
    gpu_k_.upload(k_);
    gpu_v_.upload(v_);
  }

  // Causal attention in float64 of each new query at position start[b] + t over the CPU's cache rows
  // [0, start[b] + t] (the call has already written the new keys and values there).
  ref::Vec reference(const std::vector<float>& qkv, const std::vector<int32_t>& start, int64_t T) const {
    const int64_t hd = d_.hd(), C = d_.C;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    ref::Vec out(B_ * T * C);
    std::vector<double> scores;
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < d_.NH; ++h) {
          const float* q = &qkv[(b * T + t) * 3 * C + h * hd];
          const int64_t block = (b * d_.NH + h) * capacity_ * hd, n = start[b] + t + 1;
          scores.assign(n, 0.0);
          for (int64_t j = 0; j < n; ++j) {
            for (int64_t i = 0; i < hd; ++i) scores[j] += double{q[i]} * k_[block + j * hd + i];
            scores[j] *= scale;
          }
          const double max = *std::max_element(scores.begin(), scores.end());
          double sum = 0;
          for (double& s : scores) sum += (s = std::exp(s - max));
          for (int64_t i = 0; i < hd; ++i) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j) o += scores[j] * v_[block + j * hd + i];
            out[(b * T + t) * C + h * hd + i] = o / sum;
          }
        }
    return out;
  }

  DType dtype_;
  int64_t B_;
  Dims d_;
  int64_t capacity_;
  std::vector<float> k_, v_;  // the CPU's cache
  GpuBuffer gpu_k_, gpu_v_;
};

// Head dims: 64 (GPT-2; 16-byte path, 8 or 16 lanes per key), 256 (the largest: 2 vectors per lane in
// F32), 80 (BF16: 10 vectors over 16 lanes), 8 (BF16: one vector, one lane per key), 6 (element-wise).
const Dims kDims[] = {{128, 2}, {256, 1}, {160, 2}, {32, 4}, {18, 3}};

TEST(CudaAttentionKvCache, PrefillThenDecodeMatchesCpu) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Dims& d : kDims)
      for (int64_t T : {1, 7, 16, 17, 70}) {  // 1: decoding; partial, whole and several query tiles
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(dtype) << " C=" << d.C << " NH=" << d.NH << " T=" << T);
        KvRun run(dtype, 2, d, T + 40);
        std::vector<int32_t> start = {0, 0};
        const KvRun::Step prefill = run.step(start, T, 1);
        run.expect_accurate(prefill);
        run.expect_caches_match();
        for (int step = 0; step < 3; ++step) {
          for (int32_t& s : start) s = static_cast<int32_t>(T) + step;
          run.expect_accurate(run.step(start, 1, 10 + step));
        }
        run.expect_caches_match();
      }
}

TEST(CudaAttentionKvCache, SequencesAtDifferentPositions) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Dims d{128, 2};
    KvRun run(dtype, 4, d, 200);
    std::vector<int32_t> start = {0, 5, 40, 190};
    run.fill_history(start, 3);
    run.expect_accurate(run.step(start, 3, 4));  // a short chunk: the prefill kernel
    run.expect_caches_match();
    for (int32_t& s : start) s += 3;
    run.expect_accurate(run.step(start, 1, 5));  // decoding, split over blocks for the longer ones
    run.expect_caches_match();
  }
}

// Prompts of lengths 3, 17 and 70 prefilled right-padded in one call (the padding's keys land past
// each prompt), decoded in lockstep from each prompt's end (overwriting those keys), then a 4-token
// step from three different positions.
TEST(CudaAttentionKvCache, RightPaddedPromptsThenDecoding) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16})
    for (int64_t capacity : {100, 300}) {  // 300: decoding splits the cache over 3 blocks
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " capacity=" << capacity);
      const Dims d{128, 2};
      KvRun run(dtype, 3, d, capacity);
      run.expect_accurate(run.step({0, 0, 0}, 70, 1));
      std::vector<int32_t> start = {3, 17, 70};
      for (int step = 0; step < 8; ++step) {
        run.expect_accurate(run.step(start, 1, 100 + step));
        for (int32_t& s : start) ++s;
      }
      run.expect_accurate(run.step(start, 4, 200));
      run.expect_caches_match();
    }
}

// capacity 4096: decoding at 3000, 17 and 4095 (the last position) splits each cache over 32 blocks
// of 128 positions (3000: 24 of them hold keys), then a 5-token chunk far into the cache.
TEST(CudaAttentionKvCache, LongCacheSplitDecoding) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Dims& d : {Dims{256, 4}, Dims{18, 3}}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " C=" << d.C << " NH=" << d.NH);
      KvRun run(dtype, 3, d, 4096);
      const std::vector<int32_t> start = {3000, 17, 4095};
      run.fill_history(start, 7);
      run.expect_accurate(run.step(start, 1, 8));
      run.expect_caches_match();
      // Every position these read was written by fill_history or an earlier step.
      run.expect_accurate(run.step({3001, 18, 4000}, 1, 9));
      run.expect_accurate(run.step({2990, 0, 4000}, 5, 10));
      run.expect_caches_match();
    }
}

// 64 sequences x 16 heads = 1024 pairs: one block per pair walks its whole chunk of up to 512 keys.
TEST(CudaAttentionKvCache, ManyPairsOneBlockEach) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Dims d{128, 16};
    const int64_t B = 64;
    std::vector<int32_t> start(B);
    std::mt19937 rng(11);
    for (int32_t& s : start) s = static_cast<int32_t>(rng() % 512);
    KvRun run(dtype, B, d, 512);
    run.fill_history(start, 12);
    run.expect_accurate(run.step(start, 1, 13));
    run.expect_caches_match();
  }
}

TEST(CudaAttentionKvCache, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16})
    for (int64_t T : {1, 33}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " T=" << T);
      const Dims d{128, 2};
      const int64_t B = 2, capacity = 2048;
      GpuBuffer qkv(dtype, {B, T, 3 * d.C}), out(dtype, {B, T, d.C}), k(dtype, {B, d.NH, capacity, d.hd()}),
          v(dtype, {B, d.NH, capacity, d.hd()}), start(DType::I32, {B});
      qkv.upload(random_floats(B * T * 3 * d.C, 20, kInputScale));
      k.upload(random_floats(B * d.C * capacity, 21, kInputScale));
      v.upload(random_floats(B * d.C * capacity, 22, kInputScale));
      start.upload_ints({1500, static_cast<int32_t>(capacity - T)});
      std::vector<char> first(out.view().nbytes()), second(out.view().nbytes());
      const AttentionKvCache p{
          .out = out, .qkv = qkv, .k_cache = k, .v_cache = v, .start = start, .n_head = 2};
      cuda::attention_kv_cache(p);
      out.download_bytes(first.data());
      cuda::attention_kv_cache(p);  // same cache contents: the new keys are rewritten identically
      out.download_bytes(second.data());
      EXPECT_EQ(first, second);
    }
}

// start[b] + T > capacity cannot be reported from the device: that sequence's outputs are NaN and its
// cache is left alone; the other sequences are unaffected.
TEST(CudaAttentionKvCache, InvalidStartGivesNaNAndLeavesTheCache) {
  REQUIRE_GPU();
  const Dims d{128, 2};
  for (int64_t T : {1, 3}) {
    for (int64_t capacity : {64, 1024}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " capacity=" << capacity);
      KvRun run(DType::F32, 2, d, capacity);
      const std::vector<int32_t> start = {5, static_cast<int32_t>(capacity - T + 1)};
      run.fill_history({5, 0}, 30);
      const std::vector<float> k_before = run.gpu_k().download();
      GpuBuffer qkv(DType::F32, {2, T, 3 * d.C}), out(DType::F32, {2, T, d.C}), gpu_start(DType::I32, {2});
      qkv.upload(random_floats(2 * T * 3 * d.C, 31, kInputScale));
      gpu_start.upload_ints(start);
      cuda::attention_kv_cache({.out = out,
                                .qkv = qkv,
                                .k_cache = run.gpu_k(),
                                .v_cache = run.gpu_v(),
                                .start = gpu_start,
                                .n_head = static_cast<int>(d.NH)});
      const std::vector<float> got = out.download(), k_after = run.gpu_k().download();
      for (int64_t i = 0; i < T * d.C; ++i) {
        ASSERT_TRUE(std::isfinite(got[i])) << "valid sequence, element " << i;
        ASSERT_TRUE(std::isnan(got[T * d.C + i])) << "invalid sequence, element " << i;
      }
      const int64_t half = static_cast<int64_t>(k_after.size()) / 2;  // sequence 1's cache
      for (int64_t i = half; i < 2 * half; ++i) ASSERT_TRUE(same_or_both_nan(k_after[i], k_before[i]));
    }
  }
}

TEST(CudaAttentionKvCache, RejectsBadShapes) {
  REQUIRE_GPU();
  const Dims d{8, 2};
  const int64_t B = 2, T = 3, capacity = 10;
  GpuBuffer qkv(DType::F32, {B, T, 3 * d.C}), out(DType::F32, {B, T, d.C}),
      out_bf16(DType::BF16, {B, T, d.C}), k(DType::F32, {B, d.NH, capacity, d.hd()}),
      v(DType::F32, {B, d.NH, capacity, d.hd()}), start(DType::I32, {B}),
      big_qkv(DType::F32, {1, 1, 3 * 2 * 257}), big_out(DType::F32, {1, 1, 2 * 257}),
      big_k(DType::F32, {1, 2, 4, 257}), tiny_k(DType::F32, {B, d.NH, 2, d.hd()});
  start.upload_ints({0, 7});
  auto params = [&] {
    return AttentionKvCache{.out = out, .qkv = qkv, .k_cache = k, .v_cache = v, .start = start, .n_head = 2};
  };
  EXPECT_NO_THROW(cuda::attention_kv_cache(params()));  // 7 + 3 == capacity: the last positions
  auto rejects = [&](auto&& mutate) {
    AttentionKvCache p = params();
    mutate(p);
    EXPECT_THROW(cuda::attention_kv_cache(p), std::invalid_argument);
  };
  rejects([](AttentionKvCache& p) { p.n_head = 3; });
  rejects([&](AttentionKvCache& p) { p.out = out_bf16; });
  rejects([&](AttentionKvCache& p) {
    p.k_cache = Tensor(k.view().data, DType::F32, {B, d.NH, capacity / 2, 8});
  });
  rejects([&](AttentionKvCache& p) {
    p.k_cache = Tensor(k.view().data, DType::F32, {1, d.NH, capacity, d.hd()});
  });
  rejects([&](AttentionKvCache& p) {
    p.v_cache = Tensor(v.view().data, DType::F32, {B, d.NH, capacity - 1, 4});
  });
  rejects([&](AttentionKvCache& p) { p.start = Tensor(start.view().data, DType::I32, {1}); });
  rejects([&](AttentionKvCache& p) { p.start = Tensor(start.view().data, DType::F32, {B}); });
  rejects([&](AttentionKvCache& p) { p.out = Tensor(out.view().data, DType::F32, {B, T - 1, d.C}); });
  rejects([&](AttentionKvCache& p) { p.k_cache = p.v_cache = tiny_k; });  // T = 3 > capacity 2
  rejects([&](AttentionKvCache& p) {                                      // head dim 257
    p = {.out = big_out,
         .qkv = big_qkv,
         .k_cache = big_k,
         .v_cache = big_k,
         .start = Tensor(start.view().data, DType::I32, {1}),
         .n_head = 2};
  });
}

}  // namespace
}  // namespace inkstone
