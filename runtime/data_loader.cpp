#include "runtime/data_loader.h"

#include <algorithm>
#include <numeric>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

// `<split>_` followed by one or more digits and `.bin`: the names runtime/prepare.cpp writes.
bool is_split_shard(const std::string& name, const std::string& split) {
  const std::string prefix = split + "_";
  if (!name.starts_with(prefix) || !name.ends_with(".bin")) return false;
  const std::string_view digits =
      std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - 4);
  return !digits.empty() &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Unbiased draw from [0, bound) by rejection: the modulo of a raw u64 would favour small values
// (negligibly here, but the fix costs one comparison).
uint64_t uniform_below(Rng& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t r = rng.next_u64();
    if (r >= threshold) return r % bound;
  }
}

// The epoch's window order and shift, a pure function of (seed, epoch). The mixed seed goes through
// one SplitMix step so that neighbouring epochs do not start overlapping SplitMix streams. The shift
// is drawn after the permutation, so the permutations are those of runs made before it existed.
struct EpochPlan {
  std::vector<uint64_t> order;
  uint64_t shift = 0;
};

EpochPlan epoch_plan(uint64_t seed, uint64_t epoch, uint64_t n, uint64_t T) {
  Rng mixer(seed ^ (epoch * 0x9E3779B97F4A7C15ull));
  Rng rng(mixer.next_u64());
  EpochPlan plan;
  plan.order.resize(n);
  std::iota(plan.order.begin(), plan.order.end(), uint64_t{0});
  for (uint64_t i = n; i > 1; --i) std::swap(plan.order[i - 1], plan.order[uniform_below(rng, i)]);
  plan.shift = epoch == 0 ? 0 : uniform_below(rng, T);
  return plan;
}

}  // namespace

TokenSplit read_token_split(const fs::path& dir, const std::string& split,
                            const std::optional<ExpectedTokenizer>& expected) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fail("{}: no prepared data directory; run `inkstone prepare CONFIG` first", dir.string());
  }
  TokenSplit result;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_split_shard(entry.path().filename().string(), split)) {
      result.files.push_back(entry.path());
    }
  }
  std::sort(result.files.begin(), result.files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  for (const fs::path& file : result.files) {
    const TokenShard shard = read_token_shard(file, expected);
    result.tokens.insert(result.tokens.end(), shard.tokens.begin(), shard.tokens.end());
    result.text_bytes += shard.header.text_bytes;
  }
  return result;
}

BatchLoader::BatchLoader(std::span<const int32_t> tokens, int T, Order order, uint64_t seed,
                         const std::string& what, int rank, int world_size)
    : tokens_(tokens), what_(what), T_(T), order_(order), seed_(seed), rank_(rank), world_size_(world_size) {
  if (T < 1 || world_size < 1 || rank < 0 || rank >= world_size) {
    fail("internal error: BatchLoader for {} with seq_len {}, rank {} of {}", what, T, rank, world_size);
  }
  total_windows_ = tokens.empty() ? 0 : (tokens.size() - 1) / static_cast<uint64_t>(T);
  if (total_windows_ < static_cast<uint64_t>(world_size)) {
    fail(
        "{}: {} tokens make {} window(s) of seq_len {} + 1, fewer than the {} needed (one per process); "
        "use a smaller seq_len or more data",
        what, tokens.size(), total_windows_, T, world_size);
  }
  restore({});
}

uint64_t BatchLoader::windows_per_epoch() const {
  return total_windows_ / static_cast<uint64_t>(world_size_);
}

void BatchLoader::restore(const DataCursor& cursor) {
  if (cursor.index > windows_per_epoch()) {
    fail(
        "{}: data cursor at window {} of epoch {}, but an epoch has only {} windows per process at seq_len "
        "{}; "
        "resume with the data and seq_len the checkpoint was made with",
        what_, cursor.index, cursor.epoch, windows_per_epoch(), T_);
  }
  if (order_ == Order::Shuffled && (permutation_.empty() || cursor.epoch != cursor_.epoch)) {
    EpochPlan plan = epoch_plan(seed_, cursor.epoch, total_windows_, static_cast<uint64_t>(T_));
    permutation_ = std::move(plan.order);
    shift_ = plan.shift;
  }
  cursor_ = cursor;
}

uint64_t BatchLoader::window_start(uint64_t k) const {
  const uint64_t global = k * static_cast<uint64_t>(world_size_) + static_cast<uint64_t>(rank_);
  const uint64_t window = order_ == Order::Shuffled ? permutation_[global] : global;
  return window * static_cast<uint64_t>(T_) + shift_;  // < tokens_.size(): shift_ < T
}

void BatchLoader::next(int B, std::span<int32_t> inputs, std::span<int32_t> targets) {
  const size_t T = static_cast<size_t>(T_);
  if (B < 1 || inputs.size() != static_cast<size_t>(B) * T || targets.size() != inputs.size()) {
    fail("internal error: batch of {} x {} for {} given buffers of {} and {} tokens", B, T_, what_,
         inputs.size(), targets.size());
  }
  for (size_t b = 0; b < static_cast<size_t>(B); ++b) {
    if (cursor_.index == windows_per_epoch()) restore({cursor_.epoch + 1, 0});
    const size_t start = window_start(cursor_.index++);
    for (size_t t = 0; t < T; ++t) {  // a shifted window may run past the end into the start
      inputs[b * T + t] = tokens_[(start + t) % tokens_.size()];
      targets[b * T + t] = tokens_[(start + t + 1) % tokens_.size()];
    }
  }
}

}  // namespace inkstone
