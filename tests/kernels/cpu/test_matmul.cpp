// matmul_forward / matmul_backward against the double reference, for both weight layouts, with and
// without bias, the GELU epilogue, the += contract, and finite differences.
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

struct Shape {
  int64_t N, C, OC;
};

// Odd sizes on purpose: BLAS edge tiles and the tails of the SIMD bias/GELU loops.
const Shape kShapes[] = {{1, 1, 1}, {5, 7, 9}, {33, 65, 17}, {64, 256, 96}};

class MatmulTest : public ::testing::TestWithParam<WeightLayout> {
 protected:
  bool out_in() const { return GetParam() == WeightLayout::OutIn; }
  Tensor weight_view(std::vector<float>& w, const Shape& s) const {
    return out_in() ? Tensor(w.data(), DType::F32, {s.OC, s.C}) : Tensor(w.data(), DType::F32, {s.C, s.OC});
  }
};

TEST_P(MatmulTest, ForwardMatchesReferenceWithAndWithoutBias) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    auto inp = random_floats(s.N * s.C, 1), w = random_floats(s.C * s.OC, 2), bias = random_floats(s.OC, 3);
    std::vector<float> out(s.N * s.OC, -7.0f);
    for (bool with_bias : {false, true}) {
      MatmulForward p{.out = Tensor(out.data(), DType::F32, {s.N, s.OC}),
                      .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                      .weight = weight_view(w, s),
                      .bias = with_bias ? Tensor(bias.data(), DType::F32, {s.OC}) : Tensor(),
                      .pre_gelu = {},
                      .layout = GetParam()};
      cpu::matmul_forward(p);
      const ref::Vec bias_d = ref::to_double(bias);
      const ref::Vec expected = ref::matmul_forward(ref::to_double(inp), ref::to_double(w),
                                                    with_bias ? &bias_d : nullptr, s.N, s.C, s.OC, out_in());
      EXPECT_LT(ref::max_scaled_error(out, expected), ref::fp32_tolerance(s.C)) << "bias " << with_bias;
    }
  }
}

TEST_P(MatmulTest, GeluEpilogueKeepsPreActivationAndAppliesGelu) {
  const Shape s{17, 48, 40};
  auto inp = random_floats(s.N * s.C, 4), w = random_floats(s.C * s.OC, 5), bias = random_floats(s.OC, 6);
  std::vector<float> out(s.N * s.OC), pre(s.N * s.OC);
  cpu::matmul_forward({.out = Tensor(out.data(), DType::F32, {s.N, s.OC}),
                       .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                       .weight = weight_view(w, s),
                       .bias = Tensor(bias.data(), DType::F32, {s.OC}),
                       .pre_gelu = Tensor(pre.data(), DType::F32, {s.N, s.OC}),
                       .layout = GetParam(),
                       .epilogue = Epilogue::Gelu});
  const ref::Vec bias_d = ref::to_double(bias);
  const ref::Vec expected_pre =
      ref::matmul_forward(ref::to_double(inp), ref::to_double(w), &bias_d, s.N, s.C, s.OC, out_in());
  ref::Vec expected_out(expected_pre.size());
  for (size_t i = 0; i < expected_pre.size(); ++i) expected_out[i] = ref::gelu(expected_pre[i]);
  EXPECT_LT(ref::max_scaled_error(pre, expected_pre), ref::fp32_tolerance(s.C));
  EXPECT_LT(ref::max_scaled_error(out, expected_out), ref::fp32_tolerance(s.C));
}

TEST_P(MatmulTest, BackwardAccumulatesReferenceGradients) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    auto inp = random_floats(s.N * s.C, 7), w = random_floats(s.C * s.OC, 8),
         dout = random_floats(s.N * s.OC, 9);
    // Non-zero starting gradients: the op must add to them, not overwrite.
    auto dinp = random_floats(s.N * s.C, 10), dw = random_floats(s.C * s.OC, 11),
         db = random_floats(s.OC, 12);
    const auto dinp0 = dinp, dw0 = dw, db0 = db;
    cpu::matmul_backward({.dinp = Tensor(dinp.data(), DType::F32, {s.N, s.C}),
                          .dweight = weight_view(dw, s),
                          .dbias = Tensor(db.data(), DType::F32, {s.OC}),
                          .dout = Tensor(dout.data(), DType::F32, {s.N, s.OC}),
                          .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                          .weight = weight_view(w, s),
                          .layout = GetParam()});
    const ref::MatmulGrads g = ref::matmul_backward(ref::to_double(dout), ref::to_double(inp),
                                                    ref::to_double(w), s.N, s.C, s.OC, out_in());
    EXPECT_LT(ref::max_scaled_error(dinp, ref::add(ref::to_double(dinp0), g.dinp)),
              ref::fp32_tolerance(s.OC));
    EXPECT_LT(ref::max_scaled_error(dw, ref::add(ref::to_double(dw0), g.dweight)), ref::fp32_tolerance(s.N));
    EXPECT_LT(ref::max_scaled_error(db, ref::add(ref::to_double(db0), g.dbias)), ref::fp32_tolerance(s.N));
  }
}

TEST_P(MatmulTest, BackwardMatchesFiniteDifferences) {
  const Shape s{3, 5, 4};
  auto inp = random_floats(s.N * s.C, 13), w = random_floats(s.C * s.OC, 14), bias = random_floats(s.OC, 15);
  auto proj = random_floats(s.N * s.OC, 16);  // loss = sum(proj * out): d loss / d out = proj
  std::vector<float> dinp(s.N * s.C, 0.0f), dw(s.C * s.OC, 0.0f), db(s.OC, 0.0f);
  cpu::matmul_backward({.dinp = Tensor(dinp.data(), DType::F32, {s.N, s.C}),
                        .dweight = weight_view(dw, s),
                        .dbias = Tensor(db.data(), DType::F32, {s.OC}),
                        .dout = Tensor(proj.data(), DType::F32, {s.N, s.OC}),
                        .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                        .weight = weight_view(w, s),
                        .layout = GetParam()});

  const ref::Vec x = ref::to_double(inp), wd = ref::to_double(w), bd = ref::to_double(bias),
                 pd = ref::to_double(proj);
  const ref::MatmulGrads g = ref::matmul_backward(pd, x, wd, s.N, s.C, s.OC, out_in());
  const ref::Vec fd_inp = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        return ref::dot(pd, ref::matmul_forward(v, wd, &bd, s.N, s.C, s.OC, out_in()));
      },
      x);
  const ref::Vec fd_w = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        return ref::dot(pd, ref::matmul_forward(x, v, &bd, s.N, s.C, s.OC, out_in()));
      },
      wd);
  const ref::Vec fd_b = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        return ref::dot(pd, ref::matmul_forward(x, wd, &v, s.N, s.C, s.OC, out_in()));
      },
      bd);
  // The reference backward is exact up to double rounding; the op is fp32.
  EXPECT_LT(ref::max_scaled_error(g.dinp, fd_inp), 1e-8);
  EXPECT_LT(ref::max_scaled_error(g.dweight, fd_w), 1e-8);
  EXPECT_LT(ref::max_scaled_error(g.dbias, fd_b), 1e-8);
  EXPECT_LT(ref::max_scaled_error(dinp, fd_inp), ref::fp32_tolerance(s.OC));
  EXPECT_LT(ref::max_scaled_error(dw, fd_w), ref::fp32_tolerance(s.N));
  EXPECT_LT(ref::max_scaled_error(db, fd_b), ref::fp32_tolerance(s.N));
}

TEST_P(MatmulTest, BackwardSkipsAbsentInputAndBiasGradients) {
  const Shape s{6, 10, 12};
  auto inp = random_floats(s.N * s.C, 17), w = random_floats(s.C * s.OC, 18),
       dout = random_floats(s.N * s.OC, 19);
  std::vector<float> dw(s.C * s.OC, 0.0f);
  cpu::matmul_backward({.dinp = {},  // absent
                        .dweight = weight_view(dw, s),
                        .dbias = {},  // absent
                        .dout = Tensor(dout.data(), DType::F32, {s.N, s.OC}),
                        .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                        .weight = weight_view(w, s),
                        .layout = GetParam()});
  const ref::MatmulGrads g = ref::matmul_backward(ref::to_double(dout), ref::to_double(inp),
                                                  ref::to_double(w), s.N, s.C, s.OC, out_in());
  EXPECT_LT(ref::max_scaled_error(dw, g.dweight), ref::fp32_tolerance(s.N));
}

INSTANTIATE_TEST_SUITE_P(Layouts, MatmulTest, ::testing::Values(WeightLayout::InOut, WeightLayout::OutIn),
                         [](const ::testing::TestParamInfo<WeightLayout>& param) {
                           return param.param == WeightLayout::InOut ? "InOut" : "OutIn";
                         });

TEST(Matmul, RejectsMismatchedShapesAndDtypes) {
  std::vector<float> inp(6 * 4), w(5 * 3), out(6 * 3);
  MatmulForward p;
  p.out = Tensor(out.data(), DType::F32, {6, 3});
  p.inp = Tensor(inp.data(), DType::F32, {6, 4});
  p.weight = Tensor(w.data(), DType::F32, {5, 3});  // C = 4 but weight has 5 rows
  EXPECT_THROW(cpu::matmul_forward(p), std::invalid_argument);
  p.weight = Tensor(w.data(), DType::BF16, {4, 3});
  EXPECT_THROW(cpu::matmul_forward(p), std::invalid_argument);
  p.weight = Tensor(w.data(), DType::F32, {4, 3});
  p.out = Tensor(out.data(), DType::F32, {6, 2});
  EXPECT_THROW(cpu::matmul_forward(p), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
