#include "infer/next_token_logits.h"

#include <algorithm>
#include <cassert>

#include "runtime/error.h"

namespace inkstone {

NextTokenLogits::NextTokenLogits(GPT2& model, int rows, int capacity)
    : model_(model),
      rows_(rows),
      capacity_(capacity),
      vocab_(static_cast<size_t>(model.shape().vocab)),
      logits_(static_cast<size_t>(rows) * vocab_) {
  if (rows < 1 || capacity < 1 || capacity > model.shape().context ||
      int64_t{rows} * capacity > int64_t{model.max_batch()} * model.max_seq())
    fail("generation: {} rows of {} tokens do not fit a model built for {} x {} tokens (context {})", rows,
         capacity, model.max_batch(), model.max_seq(), model.shape().context);
}

void NextTokenLogits::read_row(size_t row, int64_t model_row) {
  model_.read_logits(model_row, 1, std::span<float>(logits_).subspan(row * vocab_, vocab_));
}

namespace {

class CachedLogits final : public NextTokenLogits {
 public:
  CachedLogits(GPT2& model, int rows, int capacity)
      : NextTokenLogits(model, rows, capacity), cached_(static_cast<size_t>(rows), 0) {
    if (model.kv_cache_batch() < rows || model.kv_cache_capacity() < capacity)
      model.allocate_kv_cache(rows, capacity);
    step_tokens_.resize(static_cast<size_t>(rows));
    step_start_.resize(static_cast<size_t>(rows));
  }

  // One forward over every prompt, right-padded to the longest: a shorter prompt's padding lands in
  // cache positions its own later tokens overwrite before they are read.
  void start(std::span<const std::vector<int32_t>> sequences) override {
    assert(sequences.size() == static_cast<size_t>(rows_));
    size_t T = 0;
    for (const auto& s : sequences) T = std::max(T, s.size());
    std::vector<int32_t> tokens(static_cast<size_t>(rows_) * T);
    for (size_t r = 0; r < sequences.size(); ++r) {
      const auto& s = sequences[r];
      std::copy(s.begin(), s.end(), tokens.begin() + static_cast<std::ptrdiff_t>(r * T));
      std::fill(tokens.begin() + static_cast<std::ptrdiff_t>(r * T + s.size()),
                tokens.begin() + static_cast<std::ptrdiff_t>((r + 1) * T), s.back());
    }
    const std::vector<int32_t> zeros(static_cast<size_t>(rows_), 0);
    model_.forward_cached(tokens, zeros, rows_, static_cast<int>(T));
    for (size_t r = 0; r < sequences.size(); ++r) {
      cached_[r] = static_cast<int>(sequences[r].size());
      read_row(r, static_cast<int64_t>(r * T + sequences[r].size() - 1));
    }
  }

  void advance(std::span<const std::vector<int32_t>> sequences, const std::vector<bool>& active) override {
    // One batched step for the rows that fit. Rows that are done, or about to be rebuilt, run too (the
    // batch is fixed) at position 0 with a harmless token: their cache is dead or about to be rewritten.
    std::vector<size_t> rebuild;
    for (size_t r = 0; r < static_cast<size_t>(rows_); ++r) {
      const bool grows = active[r] && cached_[r] < capacity_;
      if (active[r] && !grows) rebuild.push_back(r);
      step_tokens_[r] = grows ? sequences[r].back() : 0;
      step_start_[r] = grows ? cached_[r] : 0;
    }
    if (rebuild.size() < static_cast<size_t>(rows_)) {
      model_.forward_cached(step_tokens_, step_start_, rows_, 1);
      for (size_t r = 0; r < static_cast<size_t>(rows_); ++r) {
        if (!active[r] || cached_[r] >= capacity_) continue;
        ++cached_[r];
        read_row(r, static_cast<int64_t>(r));
      }
    }
    for (const size_t r : rebuild) {
      const size_t keep = static_cast<size_t>(std::max(1, capacity_ / 2));
      const std::span<const int32_t> tail(sequences[r].data() + sequences[r].size() - keep, keep);
      const int32_t zero = 0;
      model_.forward_cached(tail, std::span<const int32_t>(&zero, 1), 1, static_cast<int>(keep),
                            static_cast<int>(r));
      cached_[r] = static_cast<int>(keep);
      read_row(r, static_cast<int64_t>(keep - 1));
    }
  }

 private:
  std::vector<int> cached_;  // positions of each row held in the cache
  std::vector<int32_t> step_tokens_, step_start_;
};

class RecomputedLogits final : public NextTokenLogits {
 public:
  RecomputedLogits(GPT2& model, int rows, int capacity) : NextTokenLogits(model, rows, capacity) {}

  void start(std::span<const std::vector<int32_t>> sequences) override {
    for (size_t r = 0; r < sequences.size(); ++r) compute(r, sequences[r]);
  }
  void advance(std::span<const std::vector<int32_t>> sequences, const std::vector<bool>& active) override {
    for (size_t r = 0; r < sequences.size(); ++r)
      if (active[r]) compute(r, sequences[r]);
  }

 private:
  void compute(size_t row, const std::vector<int32_t>& sequence) {
    const size_t T = std::min(sequence.size(), static_cast<size_t>(capacity_));
    model_.forward(std::span<const int32_t>(sequence.data() + sequence.size() - T, T), {}, 1,
                   static_cast<int>(T));
    read_row(row, static_cast<int64_t>(T - 1));
  }
};

}  // namespace

std::unique_ptr<NextTokenLogits> make_cached_logits(GPT2& model, int rows, int capacity) {
  return std::make_unique<CachedLogits>(model, rows, capacity);
}

std::unique_ptr<NextTokenLogits> make_recomputed_logits(GPT2& model, int rows, int capacity) {
  return std::make_unique<RecomputedLogits>(model, rows, capacity);
}

}  // namespace inkstone
