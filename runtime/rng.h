// Portable pseudo-random numbers for initialisation and sampling.
//
// The same seed gives the same stream on every compiler, standard library and machine:
// std::normal_distribution (and friends) make no such promise, and a checkpoint's init or a
// sampled story must not change when libstdc++ does. SplitMix64 (Steele, Lea, Flood 2014) for the
// bits; Box-Muller in double precision for normals.
#pragma once

#include <cstdint>
#include <span>

namespace inkstone {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next_u64();
  double uniform();  // [0, 1), 53 random bits
  double normal();   // standard normal; draws two uniforms and discards the pair's second value

  // out[i] = mean + stddev * z_i with z_i standard normal, both values of each Box-Muller pair used.
  void fill_normal(std::span<float> out, double mean, double stddev);

  // The whole state, for saving and restoring a stream (training checkpoints).
  uint64_t state() const { return state_; }
  void set_state(uint64_t state) { state_ = state; }

 private:
  uint64_t state_;
};

}  // namespace inkstone
