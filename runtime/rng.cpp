#include "runtime/rng.h"

#include <cmath>
#include <numbers>

namespace inkstone {
namespace {

// One Box-Muller pair from two uniforms; u1 is taken in (0, 1] so that log(u1) is finite.
struct NormalPair {
  double a, b;
};

NormalPair box_muller(Rng& rng) {
  const double u1 = 1.0 - rng.uniform();
  const double u2 = rng.uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  return {radius * std::cos(angle), radius * std::sin(angle)};
}

}  // namespace

uint64_t Rng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

double Rng::normal() {
  return box_muller(*this).a;
}

void Rng::fill_normal(std::span<float> out, double mean, double stddev) {
  size_t i = 0;
  for (; i + 1 < out.size(); i += 2) {
    const NormalPair z = box_muller(*this);
    out[i] = static_cast<float>(mean + stddev * z.a);
    out[i + 1] = static_cast<float>(mean + stddev * z.b);
  }
  if (i < out.size()) out[i] = static_cast<float>(mean + stddev * normal());
}

}  // namespace inkstone
