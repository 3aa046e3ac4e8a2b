// softmax_forward against the double reference: padded columns, large logits, in-place use.
#include <gtest/gtest.h>

#include <cmath>
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
  int64_t N, cols, valid;
};
const Shape kShapes[] = {{1, 1, 1}, {3, 10, 7}, {4, 300, 257}, {2, 50304, 50257}};

TEST(Softmax, MatchesReferenceAndZeroesPadding) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " cols=" << s.cols << " valid=" << s.valid);
    auto inp = random_floats(s.N * s.cols, 1, 10.0f);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = s.valid; c < s.cols; ++c) inp[n * s.cols + c] = 1e30f;  // must not enter the softmax
    std::vector<float> out(inp.size(), -1.0f);
    cpu::softmax_forward({.out = Tensor(out.data(), DType::F32, {s.N, s.cols}),
                          .inp = Tensor(inp.data(), DType::F32, {s.N, s.cols}),
                          .valid_cols = static_cast<int>(s.valid)});
    const ref::Vec expected = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
    EXPECT_LT(ref::max_scaled_error(out, expected), ref::fp32_tolerance(s.valid));
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = s.valid; c < s.cols; ++c) ASSERT_EQ(out[n * s.cols + c], 0.0f);
  }
}

TEST(Softmax, LargeLogitsStayFiniteAndInPlaceWorks) {
  const Shape s{3, 40, 33};
  auto inp = random_floats(s.N * s.cols, 2, 1000.0f);  // exp would overflow without the max shift
  const ref::Vec expected = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
  cpu::softmax_forward({.out = Tensor(inp.data(), DType::F32, {s.N, s.cols}),
                        .inp = Tensor(inp.data(), DType::F32, {s.N, s.cols}),
                        .valid_cols = static_cast<int>(s.valid)});
  for (float p : inp) ASSERT_TRUE(std::isfinite(p));
  EXPECT_LT(ref::max_scaled_error(inp, expected), ref::fp32_tolerance(s.valid));
}

TEST(Softmax, RejectsValidColumnsOutOfRange) {
  std::vector<float> x(2 * 4);
  SoftmaxForward p{.out = Tensor(x.data(), DType::F32, {2, 4}),
                   .inp = Tensor(x.data(), DType::F32, {2, 4}),
                   .valid_cols = 5};
  EXPECT_THROW(cpu::softmax_forward(p), std::invalid_argument);
  p.valid_cols = 0;
  EXPECT_THROW(cpu::softmax_forward(p), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
