// The committed transformers results of tests/fixtures/make_hf_parity.py (tests/fixtures/hf_parity/)
// and the measurements the Hugging Face tests make against them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace inkstone::testing {

// tests/fixtures/hf_parity in the source tree.
std::filesystem::path hf_parity_dir();

// A `tokens` I32 [T] + `logits` F32 [T, vocab] file: what transformers computed in float64.
struct ReferenceLogits {
  std::vector<int32_t> tokens;
  std::vector<float> logits;
  int vocab = 0;
};
ReferenceLogits read_reference_logits(const std::filesystem::path& file);

// The logits inkstone computes (CPU, F32) for `tokens` as one sequence with the model in `dir`, read
// by read_model_source + load_model_weights as init_from does, [T, vocab].
std::vector<float> inkstone_logits(const std::filesystem::path& dir, const std::vector<int32_t>& tokens);

// max |a - reference| / max |reference|: the error relative to the scale of the logits, which is what a
// float32 forward pass's rounding is proportional to.
double max_relative_error(const std::vector<float>& a, const std::vector<float>& reference);

// For max_relative_error against the float64 references, whose weights float32 holds exactly (the F16
// and BF16 files' values included, see make_hf_parity.py), so the error is float32 rounding alone:
// transformers' own float32 forward is 2-3e-7 off them, inkstone's 1-3e-7. 1e-5 leaves 30x room and
// stays below the smallest formula slip measured on these models: LayerNorm eps 1e-6 instead of 1e-5
// moves the logits by 5.8e-5 of the largest, exact GELU instead of tanh's by 3.3e-4.
inline constexpr double kLogitTolerance = 1e-5;

}  // namespace inkstone::testing
