// bfloat16 <-> float on the CPU. bf16 is the top half of an IEEE float; storage is uint16_t.
#pragma once

#include <bit>
#include <cstdint>

namespace inkstone::cpu::detail {

// Round to nearest, ties to even; NaN stays NaN (quieted, sign and top payload bits kept) instead of
// rounding up into infinity; infinities and overflow to infinity behave as IEEE rounding says.
inline uint16_t float_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(is_nan ? ((bits >> 16) | 0x0040u) : rounded);
}

inline float bf16_to_float(uint16_t x) {
  return std::bit_cast<float>(static_cast<uint32_t>(x) << 16);
}

}  // namespace inkstone::cpu::detail
