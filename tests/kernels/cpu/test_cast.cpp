// F32 <-> BF16 casts: round-to-nearest-even at exact ties, overflow to infinity, NaN kept NaN
// (including payloads that truncation would turn into infinity), signed zeros, subnormals, every
// BF16 value round-tripping, and random values against an independent nearest-value reference.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

float from_bits(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

std::vector<uint16_t> to_bf16(std::vector<float> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> out(n);
  cpu::cast({.out = Tensor(out.data(), DType::BF16, {n}), .inp = Tensor(x.data(), DType::F32, {n})});
  return out;
}

std::vector<float> to_f32(std::vector<uint16_t> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> out(n);
  cpu::cast({.out = Tensor(out.data(), DType::F32, {n}), .inp = Tensor(x.data(), DType::BF16, {n})});
  return out;
}

bool bf16_is_nan(uint16_t b) {
  return (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0;
}

TEST(Cast, RoundsToNearestEvenAtTies) {
  struct Case {
    float in;
    uint16_t out;
  };
  const Case cases[] = {
      {1.0f, 0x3f80},
      {1.0f + 0x1p-8f, 0x3f80},         // tie between 1 (even) and 1 + 2^-7: down
      {1.0f + 3 * 0x1p-8f, 0x3f82},     // tie between 1 + 2^-7 (odd) and 1 + 2^-6: up
      {from_bits(0x3f808001), 0x3f81},  // just above the tie: up
      {from_bits(0x3f807fff), 0x3f80},  // just below the tie: down
      {-(1.0f + 0x1p-8f), 0xbf80},      // ties are symmetric in sign
      {-(1.0f + 3 * 0x1p-8f), 0xbf82},
      {from_bits(0x00008000), 0x0000},  // subnormal tie: even (zero)
      {from_bits(0x00018000), 0x0002},  // subnormal tie: even (up)
      {from_bits(0x00000001), 0x0000},  // smallest subnormal rounds to zero
      {-0.0f, 0x8000},
      {std::numeric_limits<float>::max(), 0x7f80},  // past the largest bf16's halfway point: infinity
      {from_bits(0x7f7f7fff), 0x7f7f},              // just below that halfway point: largest finite
      {std::numeric_limits<float>::infinity(), 0x7f80},
      {-std::numeric_limits<float>::infinity(), 0xff80},
  };
  std::vector<float> in;
  for (const Case& c : cases) in.push_back(c.in);
  const std::vector<uint16_t> out = to_bf16(in);
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_EQ(out[i], cases[i].out) << "input bits 0x" << std::hex << std::bit_cast<uint32_t>(in[i]);
}

TEST(Cast, NanStaysNan) {
  // 0x7f800001 has its only payload bit in the low half: truncating or rounding the bits would give inf.
  const std::vector<float> in = {std::numeric_limits<float>::quiet_NaN(), from_bits(0x7f800001),
                                 from_bits(0xff800001), from_bits(0x7fffffff)};
  const std::vector<uint16_t> out = to_bf16(in);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_TRUE(bf16_is_nan(out[i])) << "input bits 0x" << std::hex << std::bit_cast<uint32_t>(in[i]);
    EXPECT_EQ(out[i] >> 15, std::bit_cast<uint32_t>(in[i]) >> 31) << "sign kept";
  }
  EXPECT_TRUE(std::isnan(to_f32({0x7fc0})[0]));
}

TEST(Cast, EveryBf16ValueRoundTripsExactly) {
  std::vector<uint16_t> all(1 << 16);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  const std::vector<float> widened = to_f32(all);
  for (uint32_t i = 0; i < all.size(); ++i)
    if (!bf16_is_nan(all[i])) {
      ASSERT_EQ(std::bit_cast<uint32_t>(widened[i]), i << 16);  // BF16 -> F32 is exact
    }
  const std::vector<uint16_t> back = to_bf16(widened);
  for (uint32_t i = 0; i < all.size(); ++i) {
    if (bf16_is_nan(all[i])) {
      ASSERT_TRUE(bf16_is_nan(back[i]));
    } else {
      ASSERT_EQ(back[i], all[i]);
    }
  }
}

// The value of a bf16 bit pattern, with infinity counted as 2^128 (the next step past the largest
// finite value, which is how IEEE rounding decides overflow).
double bf16_value_for_rounding(uint16_t b) {
  if ((b & 0x7fff) == 0x7f80) return (b & 0x8000 ? -1 : 1) * std::ldexp(1.0, 128);
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

TEST(Cast, RandomValuesRoundToTheNearestBf16) {
  // Random bit patterns over all finite exponents: the nearest of the two bf16 neighbours, ties to even.
  std::vector<float> in = testing::random_floats(200000, 3);
  for (size_t i = 0; i < in.size(); ++i) {
    uint32_t bits = std::bit_cast<uint32_t>(in[i]) * 2654435761u;
    if ((bits & 0x7f800000) == 0x7f800000) bits ^= 0x40000000;  // keep it finite
    in[i] = from_bits(bits);
  }
  const std::vector<uint16_t> out = to_bf16(in);
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t below = static_cast<uint16_t>(std::bit_cast<uint32_t>(in[i]) >> 16);  // toward zero
    const uint16_t above = static_cast<uint16_t>(below + 1);                             // away from zero
    const double d_below = std::abs(in[i] - bf16_value_for_rounding(below));
    const double d_above = std::abs(bf16_value_for_rounding(above) - in[i]);
    const uint16_t expected = d_below < d_above   ? below
                              : d_above < d_below ? above
                                                  : (below % 2 ? above : below);
    ASSERT_EQ(out[i], expected) << "input bits 0x" << std::hex << std::bit_cast<uint32_t>(in[i]);
  }
}

TEST(Cast, RejectsUnsupportedDtypesAndSizes) {
  std::vector<int32_t> ints(4);
  std::vector<float> floats(4);
  EXPECT_THROW(
      cpu::cast({.out = Tensor(floats.data(), DType::F32, {4}), .inp = Tensor(ints.data(), DType::I32, {4})}),
      std::invalid_argument);
  EXPECT_THROW(cpu::cast({.out = Tensor(floats.data(), DType::BF16, {3}),
                          .inp = Tensor(floats.data(), DType::F32, {4})}),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
