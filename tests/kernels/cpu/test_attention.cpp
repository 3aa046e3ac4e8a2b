// Causal attention against a naive double softmax(Q K^T / sqrt(hd)) V with the full T x T matrix:
// outputs, log-sum-exps, gradients (+= contract), finite differences, T that is no power of two and T
// longer than one block of keys, and bit-identical repeated runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

// Inputs of scale 2 give peaked softmax rows (scores up to ~|2|^2 * sqrt(hd)), not near-uniform ones.
constexpr float kInputScale = 2.0f;

const ref::AttentionDims kShapes[] = {
    {1, 1, 4, 1},    // one token: out = v
    {2, 7, 8, 2},    // odd T
    {1, 13, 48, 3},  // hd = 16
    {2, 64, 64, 2},  // the training shape's T
    {1, 300, 32, 2}  // several 64-query tiles, and longer than one 256-key tile
};

std::string describe(const ref::AttentionDims& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " NH=" + std::to_string(s.NH);
}

struct Forward {
  std::vector<float> out, lse;
};

Forward run_forward(std::vector<float>& qkv, const ref::AttentionDims& s) {
  Forward f{std::vector<float>(s.B * s.T * s.C), std::vector<float>(s.B * s.NH * s.T)};
  cpu::attention_forward({.out = Tensor(f.out.data(), DType::F32, {s.B, s.T, s.C}),
                          .lse = Tensor(f.lse.data(), DType::F32, {s.B, s.NH, s.T}),
                          .qkv = Tensor(qkv.data(), DType::F32, {s.B, s.T, 3 * s.C}),
                          .n_head = static_cast<int>(s.NH)});
  return f;
}

void run_backward(std::vector<float>& dqkv, std::vector<float>& dout, std::vector<float>& qkv, Forward& f,
                  const ref::AttentionDims& s) {
  cpu::attention_backward({.dqkv = Tensor(dqkv.data(), DType::F32, {s.B, s.T, 3 * s.C}),
                           .dout = Tensor(dout.data(), DType::F32, {s.B, s.T, s.C}),
                           .qkv = Tensor(qkv.data(), DType::F32, {s.B, s.T, 3 * s.C}),
                           .out = Tensor(f.out.data(), DType::F32, {s.B, s.T, s.C}),
                           .lse = Tensor(f.lse.data(), DType::F32, {s.B, s.NH, s.T}),
                           .n_head = static_cast<int>(s.NH)});
}

// Errors enter through the scores (a dot product over hd, then exp) and the weighted sums over T keys.
double tolerance(const ref::AttentionDims& s) {
  return ref::fp32_tolerance(static_cast<double>(s.T + s.hd()));
}

TEST(Attention, ForwardMatchesNaiveCausalSoftmax) {
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    auto qkv = random_floats(s.B * s.T * 3 * s.C, 1, kInputScale);
    const Forward got = run_forward(qkv, s);
    const ref::AttentionResult expected = ref::attention_forward(ref::to_double(qkv), s);
    EXPECT_LT(ref::max_scaled_error(got.out, expected.out), tolerance(s));
    EXPECT_LT(ref::max_scaled_error(got.lse, expected.lse), tolerance(s));
  }
}

TEST(Attention, FirstTokenAttendsOnlyToItself) {
  const ref::AttentionDims s{1, 5, 8, 2};
  auto qkv = random_floats(s.B * s.T * 3 * s.C, 2, kInputScale);
  const Forward got = run_forward(qkv, s);
  for (int64_t c = 0; c < s.C; ++c) EXPECT_FLOAT_EQ(got.out[c], qkv[2 * s.C + c]);  // out_0 = v_0
}

TEST(Attention, LongSequenceMatches) {
  const ref::AttentionDims s{1, 1024, 16, 1};  // GPT-2's context: many query tiles and key tiles
  auto qkv = random_floats(s.B * s.T * 3 * s.C, 3, kInputScale);
  auto dout = random_floats(s.B * s.T * s.C, 11);
  Forward got = run_forward(qkv, s);
  const ref::AttentionResult expected = ref::attention_forward(ref::to_double(qkv), s);
  EXPECT_LT(ref::max_scaled_error(got.out, expected.out), tolerance(s));
  EXPECT_LT(ref::max_scaled_error(got.lse, expected.lse), tolerance(s));
  std::vector<float> dqkv(qkv.size(), 0.0f);
  run_backward(dqkv, dout, qkv, got, s);
  const ref::Vec expected_dqkv = ref::attention_backward(ref::to_double(dout), ref::to_double(qkv), s);
  EXPECT_LT(ref::max_scaled_error(dqkv, expected_dqkv), tolerance(s));
}

TEST(Attention, BackwardAccumulatesReferenceGradients) {
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    auto qkv = random_floats(s.B * s.T * 3 * s.C, 4, kInputScale);
    auto dout = random_floats(s.B * s.T * s.C, 5);
    auto dqkv = random_floats(qkv.size(), 6);  // += onto these
    const auto dqkv0 = dqkv;
    Forward f = run_forward(qkv, s);
    run_backward(dqkv, dout, qkv, f, s);
    const ref::Vec expected = ref::attention_backward(ref::to_double(dout), ref::to_double(qkv), s);
    EXPECT_LT(ref::max_scaled_error(dqkv, ref::add(ref::to_double(dqkv0), expected)), tolerance(s));
  }
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  for (const ref::AttentionDims s : {ref::AttentionDims{1, 5, 8, 2}, ref::AttentionDims{2, 3, 6, 3}}) {
    SCOPED_TRACE(describe(s));
    auto qkv = random_floats(s.B * s.T * 3 * s.C, 7, kInputScale);
    auto proj = random_floats(s.B * s.T * s.C, 8);
    std::vector<float> dqkv(qkv.size(), 0.0f);
    Forward f = run_forward(qkv, s);
    run_backward(dqkv, proj, qkv, f, s);
    const ref::Vec pd = ref::to_double(proj);
    const ref::Vec fd = ref::numerical_gradient(
        [&](const ref::Vec& v) { return ref::dot(pd, ref::attention_forward(v, s).out); },
        ref::to_double(qkv));
    EXPECT_LT(ref::max_scaled_error(ref::attention_backward(pd, ref::to_double(qkv), s), fd), 1e-8);
    EXPECT_LT(ref::max_scaled_error(dqkv, fd), tolerance(s));
  }
}

TEST(Attention, RepeatedRunsAreBitIdentical) {
  const ref::AttentionDims s{2, 37, 32, 4};
  auto qkv = random_floats(s.B * s.T * 3 * s.C, 9, kInputScale);
  auto dout = random_floats(s.B * s.T * s.C, 10);
  Forward first = run_forward(qkv, s), second = run_forward(qkv, s);
  EXPECT_EQ(first.out, second.out);
  EXPECT_EQ(first.lse, second.lse);
  std::vector<float> d1(qkv.size(), 0.0f), d2(qkv.size(), 0.0f);
  run_backward(d1, dout, qkv, first, s);
  run_backward(d2, dout, qkv, first, s);
  EXPECT_EQ(d1, d2);
}

TEST(Attention, RejectsHeadCountThatDoesNotDivideChannels) {
  const ref::AttentionDims s{1, 4, 10, 3};
  std::vector<float> qkv(s.B * s.T * 3 * s.C), out(s.B * s.T * s.C), lse(s.B * s.NH * s.T);
  EXPECT_THROW(cpu::attention_forward({.out = Tensor(out.data(), DType::F32, {s.B, s.T, s.C}),
                                       .lse = Tensor(lse.data(), DType::F32, {s.B, s.NH, s.T}),
                                       .qkv = Tensor(qkv.data(), DType::F32, {s.B, s.T, 3 * s.C}),
                                       .n_head = 3}),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
