// residual_layernorm_forward: bit for bit the same as add followed by layernorm_forward (the model's CPU
// numbers and its LayerNorm recomputation depend on it), on ragged shapes and on buffers placed off
// their alignment; against the float64 reference; the aliasing contract (residual may alias a or b, out
// aliases none of them) and absent statistics.
#include <gtest/gtest.h>

#include <cstring>
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
// Ragged C (1, 33, 1000, 4099: SIMD remainders), and {64, 768}, past kParallelElementwise: the rows
// shared among threads.
const Shape kShapes[] = {{1, 1}, {7, 33}, {16, 768}, {3, 1000}, {64, 768}, {2, 4099}};

// One op's inputs. a has rows with a non-zero mean (+3), so the variance must not cancel.
struct Inputs {
  std::vector<float> a, b, weight, bias;
};

Inputs make_inputs(const Shape& s, uint64_t seed) {
  Inputs in{random_floats(s.N * s.C, seed, 2.0f), random_floats(s.N * s.C, seed + 1),
            random_floats(s.C, seed + 2), random_floats(s.C, seed + 3)};
  for (float& v : in.a) v += 3.0f;
  return in;
}

// Floats placed `offset` elements into their allocation: offsets 1 and 3 move a buffer off 16- and
// 64-byte alignment, where a vectoriser that peels for alignment would change the order of the sums.
class Placed {
 public:
  Placed(int64_t n, int64_t offset) : storage_(static_cast<size_t>(n + offset), -7.0f), offset_(offset) {}
  float* data() { return storage_.data() + offset_; }
  Tensor view(std::initializer_list<int64_t> shape) { return Tensor(data(), DType::F32, shape); }
  std::vector<float> values() const { return {storage_.begin() + offset_, storage_.end()}; }
  void set(const std::vector<float>& v) { std::copy(v.begin(), v.end(), data()); }

 private:
  std::vector<float> storage_;
  int64_t offset_;
};

struct Outputs {
  std::vector<float> residual, out, mean, rstd;
};

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

void expect_same_bits(const Outputs& got, const Outputs& want) {
  EXPECT_TRUE(same_bits(got.residual, want.residual)) << "residual";
  EXPECT_TRUE(same_bits(got.out, want.out)) << "out";
  EXPECT_TRUE(same_bits(got.mean, want.mean)) << "mean";
  EXPECT_TRUE(same_bits(got.rstd, want.rstd)) << "rstd";
}

// The two ops the fused one replaces.
Outputs add_then_layernorm(Inputs in, const Shape& s) {
  const int64_t N = s.N, C = s.C;
  Outputs r{std::vector<float>(N * C), std::vector<float>(N * C), std::vector<float>(N),
            std::vector<float>(N)};
  cpu::add({.out = Tensor(r.residual.data(), DType::F32, {N, C}),
            .a = Tensor(in.a.data(), DType::F32, {N, C}),
            .b = Tensor(in.b.data(), DType::F32, {N, C})});
  cpu::layernorm_forward({.out = Tensor(r.out.data(), DType::F32, {N, C}),
                          .mean = Tensor(r.mean.data(), DType::F32, {N}),
                          .rstd = Tensor(r.rstd.data(), DType::F32, {N}),
                          .inp = Tensor(r.residual.data(), DType::F32, {N, C}),
                          .weight = Tensor(in.weight.data(), DType::F32, {C}),
                          .bias = Tensor(in.bias.data(), DType::F32, {C}),
                          .eps = kEps});
  return r;
}

// The fused op with every buffer `offset` elements off its allocation's alignment.
Outputs fused(const Inputs& in, const Shape& s, int64_t offset) {
  const int64_t N = s.N, C = s.C;
  Placed a(N * C, offset), b(N * C, offset), weight(C, offset), bias(C, offset);
  Placed residual(N * C, offset), out(N * C, offset), mean(N, offset), rstd(N, offset);
  a.set(in.a);
  b.set(in.b);
  weight.set(in.weight);
  bias.set(in.bias);
  cpu::residual_layernorm_forward({.residual = residual.view({N, C}),
                                   .out = out.view({N, C}),
                                   .mean = mean.view({N}),
                                   .rstd = rstd.view({N}),
                                   .a = a.view({N, C}),
                                   .b = b.view({N, C}),
                                   .weight = weight.view({C}),
                                   .bias = bias.view({C}),
                                   .eps = kEps});
  return {residual.values(), out.values(), mean.values(), rstd.values()};
}

TEST(ResidualLayerNorm, IsBitIdenticalToAddThenLayerNorm) {
  for (const Shape& s : kShapes) {
    const Inputs in = make_inputs(s, 1);
    const Outputs want = add_then_layernorm(in, s);
    for (int64_t offset : {0, 1, 3}) {
      SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " offset=" << offset);
      expect_same_bits(fused(in, s, offset), want);
    }
  }
}

TEST(ResidualLayerNorm, MatchesFloat64Reference) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const Inputs in = make_inputs(s, 2);
    const Outputs got = fused(in, s, 0);
    // An IEEE float add is correctly rounded: the double sum rounded to float is the only right answer.
    for (int64_t i = 0; i < s.N * s.C; ++i)
      ASSERT_EQ(got.residual[i], static_cast<float>(static_cast<double>(in.a[i]) + in.b[i])) << "i=" << i;
    const ref::LayerNormResult want = ref::layernorm_forward(
        ref::to_double(got.residual), ref::to_double(in.weight), ref::to_double(in.bias), s.N, s.C, kEps);
    EXPECT_LT(ref::max_scaled_error(got.out, want.out), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(got.mean, want.mean), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(got.rstd, want.rstd), ref::fp32_tolerance(s.C));
  }
}

// The model adds the projection into the buffer that holds it: residual = a + residual.
TEST(ResidualLayerNorm, ResidualMayAliasEitherInput) {
  const Shape s{9, 771};
  const int64_t N = s.N, C = s.C;
  Inputs in = make_inputs(s, 3);
  const Outputs want = add_then_layernorm(in, s);
  for (bool alias_a : {true, false}) {
    SCOPED_TRACE(alias_a ? "residual = a" : "residual = b");
    Inputs io = in;
    Outputs got{{}, std::vector<float>(N * C), std::vector<float>(N), std::vector<float>(N)};
    const Tensor a(io.a.data(), DType::F32, {N, C}), b(io.b.data(), DType::F32, {N, C});
    cpu::residual_layernorm_forward({.residual = alias_a ? a : b,
                                     .out = Tensor(got.out.data(), DType::F32, {N, C}),
                                     .mean = Tensor(got.mean.data(), DType::F32, {N}),
                                     .rstd = Tensor(got.rstd.data(), DType::F32, {N}),
                                     .a = a,
                                     .b = b,
                                     .weight = Tensor(io.weight.data(), DType::F32, {C}),
                                     .bias = Tensor(io.bias.data(), DType::F32, {C}),
                                     .eps = kEps});
    got.residual = alias_a ? io.a : io.b;
    expect_same_bits(got, want);
  }
}

TEST(ResidualLayerNorm, StatisticsMayBeAbsent) {
  const Shape s{5, 31};
  const int64_t N = s.N, C = s.C;
  Inputs in = make_inputs(s, 4);
  const Outputs want = add_then_layernorm(in, s);
  std::vector<float> residual(N * C), out(N * C);
  cpu::residual_layernorm_forward({.residual = Tensor(residual.data(), DType::F32, {N, C}),
                                   .out = Tensor(out.data(), DType::F32, {N, C}),
                                   .mean = {},
                                   .rstd = {},
                                   .a = Tensor(in.a.data(), DType::F32, {N, C}),
                                   .b = Tensor(in.b.data(), DType::F32, {N, C}),
                                   .weight = Tensor(in.weight.data(), DType::F32, {C}),
                                   .bias = Tensor(in.bias.data(), DType::F32, {C}),
                                   .eps = kEps});
  EXPECT_TRUE(same_bits(residual, want.residual));
  EXPECT_TRUE(same_bits(out, want.out));
}

TEST(ResidualLayerNorm, RejectsContractViolations) {
  std::vector<float> a(4 * 8), b(4 * 8), residual(4 * 8), out(4 * 8), w(8), w7(7), mean(4), rstd(4);
  const ResidualLayerNormForward ok{.residual = Tensor(residual.data(), DType::F32, {4, 8}),
                                    .out = Tensor(out.data(), DType::F32, {4, 8}),
                                    .mean = Tensor(mean.data(), DType::F32, {4}),
                                    .rstd = Tensor(rstd.data(), DType::F32, {4}),
                                    .a = Tensor(a.data(), DType::F32, {4, 8}),
                                    .b = Tensor(b.data(), DType::F32, {4, 8}),
                                    .weight = Tensor(w.data(), DType::F32, {8}),
                                    .bias = Tensor(w.data(), DType::F32, {8}),
                                    .eps = kEps};
  EXPECT_NO_THROW(cpu::residual_layernorm_forward(ok));
  auto broken = [&](auto change) {
    ResidualLayerNormForward p = ok;
    change(p);
    return p;
  };
  EXPECT_THROW(cpu::residual_layernorm_forward(broken([](auto& p) { p.out = p.residual; })),
               std::invalid_argument);
  EXPECT_THROW(cpu::residual_layernorm_forward(broken([](auto& p) { p.out = p.a; })), std::invalid_argument);
  EXPECT_THROW(cpu::residual_layernorm_forward(broken([](auto& p) { p.out = p.b; })), std::invalid_argument);
  EXPECT_THROW(cpu::residual_layernorm_forward(
                   broken([&](auto& p) { p.weight = Tensor(w7.data(), DType::F32, {7}); })),
               std::invalid_argument);
  EXPECT_THROW(cpu::residual_layernorm_forward(broken([&](auto& p) {
                 p.b = Tensor(b.data(), DType::F32, {3, 8});
               })),
               std::invalid_argument);
  EXPECT_THROW(cpu::residual_layernorm_forward(broken([](auto& p) { p.rstd = {}; })), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
