// embedding_forward / embedding_backward against the double reference: repeated tokens, a position
// offset, per-sequence positions, the += contract, finite differences, and out-of-range inputs.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

struct Shape {
  int64_t B, T, C, V, ctx;
  int pos_offset;
};

// V smaller than B*T guarantees repeated tokens (the scatter-add case); odd C exercises SIMD tails.
const Shape kShapes[] = {
    {1, 1, 1, 1, 1, 0}, {2, 5, 7, 11, 9, 3}, {3, 16, 64, 20, 32, 0}, {4, 33, 80, 50, 40, 7}};

std::vector<int32_t> random_tokens(int64_t n, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = dist(rng);
  return tokens;
}

TEST(Embedding, ForwardMatchesReference) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " offset=" << s.pos_offset);
    auto tokens = random_tokens(s.B * s.T, s.V, 1);
    auto wte = random_floats(s.V * s.C, 2), wpe = random_floats(s.ctx * s.C, 3);
    std::vector<float> out(s.B * s.T * s.C, -1.0f);
    cpu::embedding_forward({.out = Tensor(out.data(), DType::F32, {s.B, s.T, s.C}),
                            .tokens = Tensor(tokens.data(), DType::I32, {s.B, s.T}),
                            .wte = Tensor(wte.data(), DType::F32, {s.V, s.C}),
                            .wpe = Tensor(wpe.data(), DType::F32, {s.ctx, s.C}),
                            .pos_offset = s.pos_offset,
                            .positions = {}});
    const ref::Vec expected =
        ref::embedding_forward(tokens, s.T, s.C, ref::to_double(wte), ref::to_double(wpe), s.pos_offset);
    EXPECT_LT(ref::max_scaled_error(out, expected), ref::fp32_tolerance(1, 2));  // one rounded add
  }
}

TEST(Embedding, PerSequencePositionsReplaceTheOffset) {
  const int64_t B = 3, T = 4, C = 5, V = 7, ctx = 12;
  std::vector<int32_t> positions = {0, 5, 8};  // 8 + T == ctx: the last positions
  auto tokens = random_tokens(B * T, V, 12);
  auto wte = random_floats(V * C, 13), wpe = random_floats(ctx * C, 14);
  std::vector<float> out(B * T * C, -1.0f);
  EmbeddingForward p{.out = Tensor(out.data(), DType::F32, {B, T, C}),
                     .tokens = Tensor(tokens.data(), DType::I32, {B, T}),
                     .wte = Tensor(wte.data(), DType::F32, {V, C}),
                     .wpe = Tensor(wpe.data(), DType::F32, {ctx, C}),
                     .pos_offset = 2,  // ignored when positions is given
                     .positions = Tensor(positions.data(), DType::I32, {B})};
  cpu::embedding_forward(p);
  ref::Vec expected;  // sequence b alone, with its own position as the offset
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t> row(tokens.begin() + b * T, tokens.begin() + (b + 1) * T);
    const ref::Vec e =
        ref::embedding_forward(row, T, C, ref::to_double(wte), ref::to_double(wpe), positions[b]);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  EXPECT_LT(ref::max_scaled_error(out, expected), ref::fp32_tolerance(1, 2));

  positions = {0, 5, 9};  // 9 + T > ctx
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
  positions = {0, -1, 0};
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
  positions = {0, 0, 0};
  p.positions = Tensor(positions.data(), DType::I32, {B - 1});  // one start per sequence
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
}

TEST(Embedding, BackwardAccumulatesReferenceGradients) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " offset=" << s.pos_offset);
    auto tokens = random_tokens(s.B * s.T, s.V, 4);
    auto dout = random_floats(s.B * s.T * s.C, 5);
    auto dwte = random_floats(s.V * s.C, 6), dwpe = random_floats(s.ctx * s.C, 7);  // += onto these
    const auto dwte0 = dwte, dwpe0 = dwpe;
    cpu::embedding_backward({.dwte = Tensor(dwte.data(), DType::F32, {s.V, s.C}),
                             .dwpe = Tensor(dwpe.data(), DType::F32, {s.ctx, s.C}),
                             .dout = Tensor(dout.data(), DType::F32, {s.B, s.T, s.C}),
                             .tokens = Tensor(tokens.data(), DType::I32, {s.B, s.T}),
                             .pos_offset = s.pos_offset});
    const ref::EmbeddingGrads g =
        ref::embedding_backward(ref::to_double(dout), tokens, s.T, s.C, s.V, s.ctx, s.pos_offset);
    // A token row sums at most B*T contributions, a position row B.
    EXPECT_LT(ref::max_scaled_error(dwte, ref::add(ref::to_double(dwte0), g.dwte)),
              ref::fp32_tolerance(s.B * s.T));
    EXPECT_LT(ref::max_scaled_error(dwpe, ref::add(ref::to_double(dwpe0), g.dwpe)), ref::fp32_tolerance(s.B));
  }
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  const Shape s{2, 3, 4, 5, 6, 2};
  auto tokens = random_tokens(s.B * s.T, s.V, 8);
  tokens[0] = tokens[4];  // make sure one token repeats
  auto wte = random_floats(s.V * s.C, 9), wpe = random_floats(s.ctx * s.C, 10),
       proj = random_floats(s.B * s.T * s.C, 11);
  std::vector<float> dwte(s.V * s.C, 0.0f), dwpe(s.ctx * s.C, 0.0f);
  cpu::embedding_backward({.dwte = Tensor(dwte.data(), DType::F32, {s.V, s.C}),
                           .dwpe = Tensor(dwpe.data(), DType::F32, {s.ctx, s.C}),
                           .dout = Tensor(proj.data(), DType::F32, {s.B, s.T, s.C}),
                           .tokens = Tensor(tokens.data(), DType::I32, {s.B, s.T}),
                           .pos_offset = s.pos_offset});
  const ref::Vec te = ref::to_double(wte), pe = ref::to_double(wpe), pd = ref::to_double(proj);
  const ref::Vec fd_wte = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        return ref::dot(pd, ref::embedding_forward(tokens, s.T, s.C, v, pe, s.pos_offset));
      },
      te);
  const ref::Vec fd_wpe = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        return ref::dot(pd, ref::embedding_forward(tokens, s.T, s.C, te, v, s.pos_offset));
      },
      pe);
  const ref::EmbeddingGrads g = ref::embedding_backward(pd, tokens, s.T, s.C, s.V, s.ctx, s.pos_offset);
  EXPECT_LT(ref::max_scaled_error(g.dwte, fd_wte), 1e-8);
  EXPECT_LT(ref::max_scaled_error(g.dwpe, fd_wpe), 1e-8);
  EXPECT_LT(ref::max_scaled_error(dwte, fd_wte), ref::fp32_tolerance(s.B * s.T));
  EXPECT_LT(ref::max_scaled_error(dwpe, fd_wpe), ref::fp32_tolerance(s.B));
}

TEST(Embedding, RejectsTokensOutsideVocabularyAndPositionsPastContext) {
  std::vector<int32_t> tokens = {0, 1, 2, 3};
  std::vector<float> wte(4 * 2), wpe(3 * 2), out(4 * 2);
  EmbeddingForward p{.out = Tensor(out.data(), DType::F32, {2, 2, 2}),
                     .tokens = Tensor(tokens.data(), DType::I32, {2, 2}),
                     .wte = Tensor(wte.data(), DType::F32, {4, 2}),
                     .wpe = Tensor(wpe.data(), DType::F32, {3, 2}),
                     .pos_offset = 0,
                     .positions = {}};
  EXPECT_NO_THROW(cpu::embedding_forward(p));
  tokens[3] = 4;  // V = 4
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
  tokens[3] = -1;
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
  tokens[3] = 3;
  p.pos_offset = 2;  // positions 2, 3 but ctx = 3
  EXPECT_THROW(cpu::embedding_forward(p), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
