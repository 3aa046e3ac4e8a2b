// GPT2::forward_cached against GPT2::forward over whole prefixes, on a tiny model: one sequence
// prefilled then decoded token by token; prompts of different lengths prefilled right-padded in one
// call then decoded in lockstep; one row prefilled again while the others keep their cache. Every new
// token's logits are compared. Plus the input checks and the memory accounting of the cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::random_floats;

// Cached and full passes compute the same function in fp32 with different summation orders (a softmax
// over whole rows against the tiled online one, GEMMs of 1 row against many), so logits differ by
// rounding: measured at up to 7e-7 of the largest logit over these tests. 2e-5 leaves ~30x headroom
// for other BLAS builds and thread counts, while a real defect (a position off by one, a stale or
// missing cache row, a padding token attended to) moves logits by 1e-2 .. 1 of their scale.
constexpr double kRelativeToMaxAbs = 2e-5;

GPT2Shape tiny_shape() {
  return {.n_layer = 2, .n_head = 4, .n_embd = 32, .context = 64, .vocab = 97};
}

// Uniform +-0.3 weights (LayerNorm gains 1 +- 0.3) instead of GPT-2's 0.02 init: attention scores of
// order 1 make the softmax peaked and the position embeddings matter, so a wrong position or cache row
// shows in the logits, whose scale is then ~1.
void randomise(GPT2& model, uint64_t seed) {
  for (const ParamInfo& p : model.parameters()) {
    std::vector<float> v = random_floats(p.numel(), seed++, 0.3f);
    if (p.name.find("ln_") != std::string::npos && p.name.ends_with(".weight"))
      for (float& x : v) x += 1.0f;
    model.write_parameter(p.name, v);
  }
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = dist(rng);
  return tokens;
}

// max |got - want| / max |want| over rows [first, first + count) of the full forward over `prefix`
// (count rows of `got`, row-major [count, vocab]).
double error_against_full_forward(GPT2& model, const std::vector<float>& got,
                                  const std::vector<int32_t>& prefix, int64_t first, int64_t count) {
  model.forward(prefix, {}, 1, static_cast<int>(prefix.size()));
  const std::vector<float> want = model.read_logits(first, count);
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::abs(want[i])));
  }
  EXPECT_GT(scale, 0.1);  // a meaningful scale, not an all-zero model
  return std::isnan(err) ? std::numeric_limits<double>::infinity() : err / scale;
}

class GPT2KvCache : public ::testing::Test {
 protected:
  GPT2KvCache() : backend_(make_backend("cpu")), model_(*backend_, shape_, 4, shape_.context) {
    randomise(model_, 7);
  }

  // Appends one random token to every sequence and decodes them in lockstep (sequence b in cache row
  // b, at its own position), `steps` times; returns the worst error against full forwards.
  double decode_lockstep(std::vector<std::vector<int32_t>>& seqs, int steps, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, shape_.vocab - 1);
    const int B = static_cast<int>(seqs.size());
    double worst = 0;
    for (int s = 0; s < steps; ++s) {
      std::vector<int32_t> tokens, start;
      for (auto& seq : seqs) {
        start.push_back(static_cast<int32_t>(seq.size()));
        seq.push_back(dist(rng));
        tokens.push_back(seq.back());
      }
      model_.forward_cached(tokens, start, B, 1);
      const std::vector<float> got = model_.read_logits(0, B);
      for (int b = 0; b < B; ++b) {
        const std::vector<float> row(got.begin() + b * shape_.vocab, got.begin() + (b + 1) * shape_.vocab);
        worst = std::max(worst, error_against_full_forward(model_, row, seqs[b], start[b], 1));
      }
    }
    return worst;
  }

  GPT2Shape shape_ = tiny_shape();
  std::unique_ptr<Backend> backend_;
  GPT2 model_;
};

TEST_F(GPT2KvCache, DecodingOneSequenceMatchesFullForwardAtEveryPosition) {
  model_.allocate_kv_cache(1, shape_.context);
  std::vector<std::vector<int32_t>> seqs = {random_tokens(9, shape_.vocab, 1)};
  model_.forward_cached(seqs[0], {{0}}, 1, 9);
  const std::vector<float> prefill = model_.read_logits(0, 9);
  EXPECT_LT(error_against_full_forward(model_, prefill, seqs[0], 0, 9), kRelativeToMaxAbs);
  // Then token by token to the end of the context.
  EXPECT_LT(decode_lockstep(seqs, shape_.context - 9, 2), kRelativeToMaxAbs);
  EXPECT_EQ(seqs[0].size(), static_cast<size_t>(shape_.context));
}

TEST_F(GPT2KvCache, PromptsOfDifferentLengthsDecodeInLockstep) {
  model_.allocate_kv_cache(3, shape_.context);
  const std::vector<int> lengths = {4, 11, 23};
  const int longest = 23;
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> padded;  // right-padded with tokens that are not the sequences' own
  for (int b = 0; b < 3; ++b) {
    seqs.push_back(random_tokens(lengths[b], shape_.vocab, 10 + b));
    const std::vector<int32_t> junk = random_tokens(longest - lengths[b], shape_.vocab, 20 + b);
    padded.insert(padded.end(), seqs[b].begin(), seqs[b].end());
    padded.insert(padded.end(), junk.begin(), junk.end());
  }
  model_.forward_cached(padded, {{0, 0, 0}}, 3, longest);
  const std::vector<float> prefill = model_.read_logits(0, 3 * longest);
  for (int b = 0; b < 3; ++b) {
    SCOPED_TRACE(b);
    const auto first = prefill.begin() + static_cast<int64_t>(b) * longest * shape_.vocab;
    const std::vector<float> rows(first, first + lengths[b] * shape_.vocab);
    EXPECT_LT(error_against_full_forward(model_, rows, seqs[b], 0, lengths[b]), kRelativeToMaxAbs);
  }
  // The shorter prompts' padding is overwritten token by token as they catch up.
  EXPECT_LT(decode_lockstep(seqs, 20, 3), kRelativeToMaxAbs);

  // Row 1 starts a new text (first_row = 1); rows 0 and 2 keep theirs.
  seqs[1] = random_tokens(6, shape_.vocab, 30);
  model_.forward_cached(seqs[1], {{0}}, 1, 6, /*first_row=*/1);
  const std::vector<float> reprefill = model_.read_logits(0, 6);
  EXPECT_LT(error_against_full_forward(model_, reprefill, seqs[1], 0, 6), kRelativeToMaxAbs);
  EXPECT_LT(decode_lockstep(seqs, 8, 4), kRelativeToMaxAbs);
}

TEST_F(GPT2KvCache, MultiTokenStepsFromDifferentPositions) {
  // After prompts of different lengths, chunks of 5 tokens per sequence from different starts.
  model_.allocate_kv_cache(2, shape_.context);
  std::vector<std::vector<int32_t>> seqs = {random_tokens(3, shape_.vocab, 40),
                                            random_tokens(17, shape_.vocab, 41)};
  model_.forward_cached(seqs[0], {{0}}, 1, 3, 0);
  model_.forward_cached(seqs[1], {{0}}, 1, 17, 1);
  for (int chunk = 0; chunk < 3; ++chunk) {
    std::vector<int32_t> tokens, start;
    for (int b = 0; b < 2; ++b) {
      start.push_back(static_cast<int32_t>(seqs[b].size()));
      const std::vector<int32_t> next = random_tokens(5, shape_.vocab, 50 + 2 * chunk + b);
      seqs[b].insert(seqs[b].end(), next.begin(), next.end());
      tokens.insert(tokens.end(), next.begin(), next.end());
    }
    model_.forward_cached(tokens, start, 2, 5);
    const std::vector<float> got = model_.read_logits(0, 10);
    for (int b = 0; b < 2; ++b) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk << " row " << b);
      const std::vector<float> rows(got.begin() + b * 5 * shape_.vocab,
                                    got.begin() + (b + 1) * 5 * shape_.vocab);
      EXPECT_LT(error_against_full_forward(model_, rows, seqs[b], start[b], 5), kRelativeToMaxAbs);
    }
  }
}

TEST_F(GPT2KvCache, DropoutIsNeverApplied) {
  model_.allocate_kv_cache(1, 16);
  const std::vector<int32_t> tokens = random_tokens(8, shape_.vocab, 60);
  model_.forward_cached(tokens, {{0}}, 1, 8);
  const std::vector<float> plain = model_.read_logits(0, 8);
  model_.set_dropout(0.5f, 1);
  model_.forward_cached(tokens, {{0}}, 1, 8);
  EXPECT_EQ(model_.read_logits(0, 8), plain);
}

TEST_F(GPT2KvCache, RejectsBadInput) {
  const std::vector<int32_t> one = {1}, three = {1, 2, 3};
  EXPECT_THROW(model_.forward_cached(one, {{0}}, 1, 1), Error);  // no cache yet
  EXPECT_THROW(model_.allocate_kv_cache(0, 8), Error);
  EXPECT_THROW(model_.allocate_kv_cache(1, 0), Error);
  EXPECT_THROW(model_.allocate_kv_cache(1, shape_.context + 1), Error);

  model_.allocate_kv_cache(2, 16);
  EXPECT_EQ(model_.kv_cache_batch(), 2);
  EXPECT_EQ(model_.kv_cache_capacity(), 16);
  EXPECT_NO_THROW(model_.forward_cached(three, {{13}}, 1, 3, 1));   // the last positions of the last row
  EXPECT_THROW(model_.forward_cached(three, {{14}}, 1, 3), Error);  // 14 + 3 > capacity
  EXPECT_THROW(model_.forward_cached(three, {{-1}}, 1, 3), Error);
  EXPECT_THROW(model_.forward_cached(three, {{0}}, 1, 3, 2), Error);  // row 2 of 2
  EXPECT_THROW(model_.forward_cached(three, {{0}}, 1, 3, -1), Error);
  EXPECT_THROW(model_.forward_cached(three, {{0, 0}}, 2, 1, 1), Error);  // rows [1, 3) of 2
  EXPECT_THROW(model_.forward_cached(three, {{0}}, 1, 2), Error);        // 3 tokens for 1 x 2
  EXPECT_THROW(model_.forward_cached(three, {{0, 0}}, 1, 3), Error);     // 2 starts for 1 sequence
  EXPECT_THROW(model_.forward_cached(std::vector<int32_t>{1, shape_.vocab, 2}, {{0}}, 1, 3), Error);
  EXPECT_THROW(model_.forward_cached(std::vector<int32_t>{1, -1, 2}, {{0}}, 1, 3), Error);
  EXPECT_THROW(model_.forward_cached(one, {{0}}, 0, 1), Error);

  // The cached pass computed logits but no loss: there is nothing to differentiate.
  model_.forward_cached(three, {{0}}, 1, 3);
  EXPECT_NO_THROW(model_.read_logits(0, 3));
  EXPECT_THROW(model_.backward(), Error);

  // More tokens in one call than the activation buffers hold (1 x 8 here).
  GPT2 small(*backend_, shape_, 1, 8);
  small.allocate_kv_cache(2, 16);
  EXPECT_THROW(small.forward_cached(random_tokens(18, shape_.vocab, 1), {{0, 0}}, 2, 9), Error);
}

TEST_F(GPT2KvCache, MemoryCountsTheCache) {
  EXPECT_EQ(model_.memory().kv_cache, 0u);
  model_.allocate_kv_cache(3, 20);
  const ModelMemory m = model_.memory();
  // Keys and values, every layer, fp32: 2 x L x batch x capacity x C floats.
  EXPECT_EQ(m.kv_cache, size_t{4} * 2 * shape_.n_layer * 3 * 20 * shape_.n_embd);
  EXPECT_EQ(m.total(), m.parameters + m.gradients + m.activations + m.kv_cache);
  model_.allocate_kv_cache(1, 20);  // fits: the buffer is kept
  EXPECT_EQ(model_.memory().kv_cache, m.kv_cache);
  EXPECT_EQ(model_.kv_cache_batch(), 1);
  model_.allocate_kv_cache(4, 20);  // does not: reallocated
  EXPECT_EQ(model_.memory().kv_cache, size_t{4} * 2 * shape_.n_layer * 4 * 20 * shape_.n_embd);
}

TEST_F(GPT2KvCache, ReadingLogitsIntoASpanEqualsTheVectorAndChecksItsSize) {
  model_.allocate_kv_cache(1, shape_.context);
  const std::vector<int32_t> tokens = {5, 10, 20, 30};
  const int32_t zero = 0;
  model_.forward_cached(tokens, std::span<const int32_t>(&zero, 1), 1, 4);
  const std::vector<float> want = model_.read_logits(1, 2);
  std::vector<float> got(want.size());
  model_.read_logits(1, 2, got);
  EXPECT_EQ(got, want);
  std::vector<float> short_buffer(want.size() - 1);
  EXPECT_THROW(model_.read_logits(1, 2, short_buffer), Error);
}

}  // namespace
}  // namespace inkstone
