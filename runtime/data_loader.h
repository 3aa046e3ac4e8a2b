// Batches of training and validation windows from a prepared data directory (see runtime/prepare.h).
//
// A split's shards are read whole into memory (tokens as int32; the corpora this targets, novels and
// poem collections, are megabytes). A window is T+1 consecutive tokens: inputs are its first T,
// targets its last T. Windows start at multiples of T, so an epoch covers every token once.
//
// Order::Shuffled: each epoch visits the windows in a permutation drawn from (seed, epoch) alone, and
// every epoch after the first shifts all its windows by an amount in [0, T) drawn with it, wrapping
// from the split's end to its start (where <|endoftext|> opens the first document). Without the
// shift a token would sit at the same position of the same window, after the same context, in every
// epoch; a poem collection is seen for tens of epochs, and the shift is what keeps the model from
// learning those windows by heart (nanoGPT draws every window's start at random for the same reason).
// The whole data order is a pure function of (seed, cursor): resuming from a saved cursor replays
// exactly the batches an uninterrupted run would have seen. Order::Sequential: windows in file order,
// never shifted (validation). `rank` / `world_size` give each process every world_size-th window.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/token_shard.h"

namespace inkstone {

struct TokenSplit {
  std::vector<int32_t> tokens;  // all shards of the split, concatenated in name order
  uint64_t text_bytes = 0;      // sum of the shards' text_bytes
  std::vector<std::filesystem::path> files;
};

// Reads every `<split>_*.bin` ("train" or "val") of `dir`, each checked against `expected`.
// Returns an empty split when there are no such files. Throws inkstone::Error on a bad shard.
TokenSplit read_token_split(const std::filesystem::path& dir, const std::string& split,
                            const std::optional<ExpectedTokenizer>& expected);

struct DataCursor {
  uint64_t epoch = 0;
  uint64_t index = 0;  // windows of this rank already taken in this epoch
  bool operator==(const DataCursor&) const = default;
};

class BatchLoader {
 public:
  enum class Order { Shuffled, Sequential };

  // Throws inkstone::Error when `tokens` holds fewer than T+1 tokens per rank's single window
  // (the message names `what`, e.g. "the training split of data/prepared/tang300", and the sizes).
  BatchLoader(std::span<const int32_t> tokens, int T, Order order, uint64_t seed, const std::string& what,
              int rank = 0, int world_size = 1);

  // Fills inputs and targets (B*T each, row-major [B, T]) with the next B windows, moving to the
  // next epoch (a new permutation) whenever this one is used up.
  void next(int B, std::span<int32_t> inputs, std::span<int32_t> targets);

  uint64_t windows_per_epoch() const;              // this rank's
  uint64_t epoch_shift() const { return shift_; }  // of the current epoch's windows; 0 in the first
  DataCursor cursor() const { return cursor_; }
  void restore(const DataCursor& cursor);  // throws inkstone::Error if index > windows_per_epoch()
  void rewind() { restore({}); }

 private:
  uint64_t window_start(uint64_t k) const;  // token offset of this rank's k-th window in the epoch

  std::span<const int32_t> tokens_;
  std::string what_;  // names the data in error messages
  int T_;
  Order order_;
  uint64_t seed_;
  int rank_, world_size_;
  uint64_t total_windows_;
  DataCursor cursor_;
  std::vector<uint64_t> permutation_;  // of the current epoch (Shuffled)
  uint64_t shift_ = 0;                 // of the current epoch's windows (Shuffled, after the first)
};

}  // namespace inkstone
