// layernorm_forward / layernorm_backward against the double reference (whose backward is an explicit
// Jacobian), the saved statistics, the += contract and finite differences.
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

constexpr float kEps = 1e-5f;

struct Shape {
  int64_t N, C;
};
// {64, 768} is past kParallelElementwise: the multi-threaded path with per-thread partial sums.
const Shape kShapes[] = {{1, 2}, {7, 33}, {16, 768}, {3, 1000}, {64, 768}};

// Rows with a non-zero mean (inputs shifted by +3): the variance must not cancel catastrophically.
std::vector<float> shifted_inputs(int64_t n, uint64_t seed) {
  auto x = random_floats(n, seed, 2.0f);
  for (auto& v : x) v += 3.0f;
  return x;
}

struct Buffers {
  std::vector<float> out, mean, rstd;
};

Buffers run_forward(std::vector<float>& inp, std::vector<float>& w, std::vector<float>& b, const Shape& s) {
  Buffers r{std::vector<float>(s.N * s.C), std::vector<float>(s.N), std::vector<float>(s.N)};
  cpu::layernorm_forward({.out = Tensor(r.out.data(), DType::F32, {s.N, s.C}),
                          .mean = Tensor(r.mean.data(), DType::F32, {s.N}),
                          .rstd = Tensor(r.rstd.data(), DType::F32, {s.N}),
                          .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                          .weight = Tensor(w.data(), DType::F32, {s.C}),
                          .bias = Tensor(b.data(), DType::F32, {s.C}),
                          .eps = kEps});
  return r;
}

TEST(LayerNorm, ForwardMatchesReference) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    auto inp = shifted_inputs(s.N * s.C, 1), w = random_floats(s.C, 2), b = random_floats(s.C, 3);
    const Buffers got = run_forward(inp, w, b, s);
    const ref::LayerNormResult expected =
        ref::layernorm_forward(ref::to_double(inp), ref::to_double(w), ref::to_double(b), s.N, s.C, kEps);
    EXPECT_LT(ref::max_scaled_error(got.out, expected.out), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(got.mean, expected.mean), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(got.rstd, expected.rstd), ref::fp32_tolerance(s.C));
  }
}

TEST(LayerNorm, ForwardWithoutSavedStatistics) {
  const Shape s{5, 31};
  auto inp = shifted_inputs(s.N * s.C, 4), w = random_floats(s.C, 5), b = random_floats(s.C, 6);
  std::vector<float> out(s.N * s.C);
  cpu::layernorm_forward({.out = Tensor(out.data(), DType::F32, {s.N, s.C}),
                          .mean = {},
                          .rstd = {},
                          .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                          .weight = Tensor(w.data(), DType::F32, {s.C}),
                          .bias = Tensor(b.data(), DType::F32, {s.C}),
                          .eps = kEps});
  const ref::LayerNormResult expected =
      ref::layernorm_forward(ref::to_double(inp), ref::to_double(w), ref::to_double(b), s.N, s.C, kEps);
  EXPECT_LT(ref::max_scaled_error(out, expected.out), ref::fp32_tolerance(s.C));
}

// Runs the op's backward from the op's own saved statistics, onto pre-filled gradients.
struct Grads {
  std::vector<float> dinp, dweight, dbias;
};

void run_backward(Grads& g, std::vector<float>& dout, std::vector<float>& inp, std::vector<float>& w,
                  std::vector<float>& b, const Shape& s) {
  Buffers fwd = run_forward(inp, w, b, s);
  cpu::layernorm_backward({.dinp = Tensor(g.dinp.data(), DType::F32, {s.N, s.C}),
                           .dweight = Tensor(g.dweight.data(), DType::F32, {s.C}),
                           .dbias = Tensor(g.dbias.data(), DType::F32, {s.C}),
                           .dout = Tensor(dout.data(), DType::F32, {s.N, s.C}),
                           .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                           .weight = Tensor(w.data(), DType::F32, {s.C}),
                           .mean = Tensor(fwd.mean.data(), DType::F32, {s.N}),
                           .rstd = Tensor(fwd.rstd.data(), DType::F32, {s.N})});
}

TEST(LayerNorm, BackwardAccumulatesReferenceGradients) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    auto inp = shifted_inputs(s.N * s.C, 7), w = random_floats(s.C, 8), b = random_floats(s.C, 9);
    auto dout = random_floats(s.N * s.C, 10);
    Grads g{random_floats(s.N * s.C, 11), random_floats(s.C, 12), random_floats(s.C, 13)};
    const Grads g0 = g;
    run_backward(g, dout, inp, w, b, s);
    const ref::LayerNormGrads expected =
        ref::layernorm_backward(ref::to_double(dout), ref::to_double(inp), ref::to_double(w), s.N, s.C, kEps);
    EXPECT_LT(ref::max_scaled_error(g.dinp, ref::add(ref::to_double(g0.dinp), expected.dinp)),
              ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(g.dweight, ref::add(ref::to_double(g0.dweight), expected.dweight)),
              ref::fp32_tolerance(s.N * s.C));
    EXPECT_LT(ref::max_scaled_error(g.dbias, ref::add(ref::to_double(g0.dbias), expected.dbias)),
              ref::fp32_tolerance(s.N));
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  const Shape s{3, 6};
  auto inp = shifted_inputs(s.N * s.C, 14), w = random_floats(s.C, 15), b = random_floats(s.C, 16);
  auto proj = random_floats(s.N * s.C, 17);
  Grads g{std::vector<float>(s.N * s.C, 0.0f), std::vector<float>(s.C, 0.0f), std::vector<float>(s.C, 0.0f)};
  run_backward(g, proj, inp, w, b, s);

  const ref::Vec x = ref::to_double(inp), wd = ref::to_double(w), bd = ref::to_double(b),
                 pd = ref::to_double(proj);
  auto loss = [&](const ref::Vec& xv, const ref::Vec& wv, const ref::Vec& bv) {
    return ref::dot(pd, ref::layernorm_forward(xv, wv, bv, s.N, s.C, kEps).out);
  };
  const ref::Vec fd_x = ref::numerical_gradient([&](const ref::Vec& v) { return loss(v, wd, bd); }, x);
  const ref::Vec fd_w = ref::numerical_gradient([&](const ref::Vec& v) { return loss(x, v, bd); }, wd);
  const ref::Vec fd_b = ref::numerical_gradient([&](const ref::Vec& v) { return loss(x, wd, v); }, bd);
  const ref::LayerNormGrads expected = ref::layernorm_backward(pd, x, wd, s.N, s.C, kEps);
  EXPECT_LT(ref::max_scaled_error(expected.dinp, fd_x), 1e-7);
  EXPECT_LT(ref::max_scaled_error(expected.dweight, fd_w), 1e-7);
  EXPECT_LT(ref::max_scaled_error(expected.dbias, fd_b), 1e-7);
  EXPECT_LT(ref::max_scaled_error(g.dinp, fd_x), ref::fp32_tolerance(s.C));
  EXPECT_LT(ref::max_scaled_error(g.dweight, fd_w), ref::fp32_tolerance(s.N * s.C));
  EXPECT_LT(ref::max_scaled_error(g.dbias, fd_b), ref::fp32_tolerance(s.N));
}

TEST(LayerNorm, RejectsMismatchedParameters) {
  std::vector<float> inp(4 * 8), out(4 * 8), w(7), b(8);
  LayerNormForward p{.out = Tensor(out.data(), DType::F32, {4, 8}),
                     .mean = {},
                     .rstd = {},
                     .inp = Tensor(inp.data(), DType::F32, {4, 8}),
                     .weight = Tensor(w.data(), DType::F32, {7}),
                     .bias = Tensor(b.data(), DType::F32, {8}),
                     .eps = kEps};
  EXPECT_THROW(cpu::layernorm_forward(p), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
