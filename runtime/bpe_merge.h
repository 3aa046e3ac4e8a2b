// The merge step of byte-level BPE on one piece: its bytes start as byte tokens, and the adjacent pair
// with the lowest merge rank is merged (the leftmost of equal pairs first) until no pair has a merge.
// That is the rule of openai/gpt-2, tiktoken's byte_pair_merge and Hugging Face's BPE model alike.
//
// Short pieces (nearly all of them) rescan their few pair ranks after each merge, as tiktoken does;
// long ones (a run of 10,000 spaces, a base64 blob) keep their pairs in a heap, so no piece is
// quadratic.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace inkstone {

// Pair of token ids -> (rank, merged id), open addressing: the lookup is the inner loop of encoding.
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
    const uint64_t key = pack(left, right);
    for (size_t slot = slot_of(key);; slot = (slot + 1) & mask_) {
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
  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

// Appends the tokens of `piece` to `out`. `byte_ids[b]` is the token of byte b.
void bpe_merge(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
               std::vector<int32_t>& out);

}  // namespace inkstone
