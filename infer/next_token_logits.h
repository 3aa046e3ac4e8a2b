// Where generation gets each row's next-token logits: from a KV cache (the prompt prefilled in one
// forward pass, then one token per step reusing the cached keys and values), or by recomputing a
// full forward pass over the row's whole window every step (the reference the cache is measured and
// tested against). Rows are sequences decoded in lockstep, one per prompt and sample.
//
// A row may outgrow the window (`capacity` tokens) only when generation allows a sliding window:
//   recomputed: every step reads the last `capacity` tokens (an exact sliding window);
//   cached: the row is re-prefilled with its last capacity/2 tokens, then grows again (llama.cpp's
//     context shift: learned absolute positions cannot be shifted in the cache, so it is rebuilt, and
//     halving amortises the rebuild over capacity/2 new tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/gpt2.h"

namespace inkstone {

class NextTokenLogits {
 public:
  virtual ~NextTokenLogits() = default;

  // Starts every row from its sequence (each 1..capacity tokens) and computes its next-token logits.
  virtual void start(std::span<const std::vector<int32_t>> sequences) = 0;
  // Every row with active[r] has grown by one token (its last); computes their next-token logits.
  // Inactive rows keep stale logits.
  virtual void advance(std::span<const std::vector<int32_t>> sequences, const std::vector<bool>& active) = 0;

  // Row r's next-token logits over the real vocabulary.
  std::span<const float> logits(size_t row) const { return {logits_.data() + row * vocab_, vocab_}; }
  int capacity() const { return capacity_; }

 protected:
  NextTokenLogits(GPT2& model, int rows, int capacity);
  void read_row(size_t row, int64_t model_row);  // the last forward's logits row -> logits(row)

  GPT2& model_;
  int rows_, capacity_;
  size_t vocab_;
  std::vector<float> logits_;
};

// The model must take `rows` x `capacity` tokens per forward (max_batch * max_seq) and capacity <= its
// context. The cached source allocates the model's KV cache for `rows` x `capacity` when it is smaller.
std::unique_ptr<NextTokenLogits> make_cached_logits(GPT2& model, int rows, int capacity);
std::unique_ptr<NextTokenLogits> make_recomputed_logits(GPT2& model, int rows, int capacity);

}  // namespace inkstone
