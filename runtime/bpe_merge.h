// The merge step of byte-level BPE on one piece: its bytes start as byte tokens, and the adjacent pair
// with the lowest merge rank is merged (the leftmost of equal pairs first) until no pair has a merge.
// That is the rule of openai/gpt-2, tiktoken's byte_pair_merge and Hugging Face's BPE model alike.
//
// Short pieces (nearly all of them) search their pairs that have a merge for the lowest rank after
// each merge, as tiktoken does, with a bit mask that skips the pairs without one; long ones (a run of
// 10,000 spaces, a base64 blob) keep their pairs in a heap, so no piece is quadratic.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace inkstone {

// Pair of token ids -> (rank, merged id): the lookup is the inner loop of encoding. A table of 50,000
// pairs does not fit in L1 or L2, and most lookups find nothing (in Chinese text most adjacent tokens
// never merge), so the common cases stay out of it: pairs of two ids below 256 (the byte tokens, where
// every piece starts, in GPT-2 and the vocabularies trained here) are a dense 256 x 256 array, and a
// bit per hash bucket (16 per slot, 256 KiB for GPT-2) turns away most pairs without a merge before
// they reach the open-addressing table.
class MergeTable {
 public:
  struct Entry {
    int32_t rank, merged;
  };
  static constexpr int32_t kNoRank = INT32_MAX;

  explicit MergeTable(size_t expected_merges = 0);
  // Returns false (and changes nothing) when the pair already has a merge.
  bool insert(int32_t left, int32_t right, Entry entry);
  // {kNoRank, -1} when the pair has no merge.
  Entry find(int32_t left, int32_t right) const {
    if (is_byte_pair(left, right)) return byte_pairs_[(left << 8) | right];
    const uint64_t key = pack(left, right), hash = hash_of(key);
    const uint64_t bucket = hash >> filter_shift_;
    if (((filter_[bucket >> 6] >> (bucket & 63)) & 1) == 0) return {kNoRank, -1};
    for (size_t slot = hash >> shift_;; slot = (slot + 1) & mask_) {
      const Slot& s = slots_[slot];
      if (s.key == key) return s.entry;
      if (s.key == kEmpty) return {kNoRank, -1};
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    Entry entry;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // no pair of non-negative ids packs to this
  // Both ids below 256: the byte tokens of GPT-2 and of the vocabularies trained here.
  static bool is_byte_pair(int32_t left, int32_t right) { return static_cast<uint32_t>(left | right) < 256; }
  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  // Fibonacci hashing: the top bits of the product depend on all the bits of the key.
  static uint64_t hash_of(uint64_t key) { return key * 0x9E3779B97F4A7C15ull; }
  void make_slots(size_t capacity);
  void place(uint64_t key, Entry entry);

  std::vector<Entry> byte_pairs_;  // [left * 256 + right]
  std::vector<Slot> slots_;
  // Bit b is set when a key in slots_ has a hash whose top bits are b.
  std::vector<uint64_t> filter_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64, filter_shift_ = 64;
};

// Appends the tokens of `piece` to `out`. `byte_ids[b]` is the token of byte b.
void bpe_merge(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
               std::vector<int32_t>& out);

}  // namespace inkstone
