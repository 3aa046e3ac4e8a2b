#include "runtime/bpe_merge.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <functional>

namespace inkstone {
namespace {

// Up to this many bytes a piece is merged in small arrays, with a 64-bit mask of the pairs that have
// a merge: each merge searches the mask for the lowest rank, which is O(n^2) at worst, but n is small,
// everything stays in L1, and the mask is sparse in practice (in Chinese text, 3 pairs of 23 parts on
// average: most adjacent tokens that remain, like two characters, never merge).
constexpr size_t kShortPiece = 64;

void merge_short(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
                 std::vector<int32_t>& out) {
  // Parts stay where they start (no shifting) and are linked. Bit i of `mergeable` is set when part i
  // and the part after it have a merge: rank[i], making merged[i].
  const auto n = static_cast<int32_t>(piece.size());
  std::array<int32_t, kShortPiece> id, rank, merged, next, prev;
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  uint64_t mergeable = 0;
  const auto look_up = [&](int32_t i) {
    const uint64_t bit = uint64_t{1} << i;
    const MergeTable::Entry e =
        next[i] < n ? merges.find(id[i], id[next[i]]) : MergeTable::Entry{MergeTable::kNoRank, -1};
    rank[i] = e.rank;
    merged[i] = e.merged;
    mergeable = e.rank != MergeTable::kNoRank ? mergeable | bit : mergeable & ~bit;
  };
  for (int32_t i = 0; i + 1 < n; ++i) look_up(i);

  while (mergeable != 0) {
    int32_t best = std::countr_zero(mergeable), lowest = rank[best];
    for (uint64_t rest = mergeable & (mergeable - 1); rest != 0; rest &= rest - 1) {
      const int32_t i = std::countr_zero(rest);
      if (rank[i] < lowest) {  // strictly: the leftmost of equal pairs wins
        lowest = rank[i];
        best = i;
      }
    }
    const int32_t gone = next[best];
    id[best] = merged[best];
    mergeable &= ~(uint64_t{1} << gone);
    next[best] = next[gone];
    if (next[gone] < n) prev[next[gone]] = best;
    look_up(best);
    if (prev[best] >= 0) look_up(prev[best]);
  }
  for (int32_t i = 0; i < n; i = next[i]) out.push_back(id[i]);
}

// Long pieces: the parts form a linked list, and every adjacent pair that has a merge waits in a
// min-heap as (rank << 32 | position), so the lowest rank and then the leftmost comes first. An entry
// is stale once its pair has changed: rank[position] then differs (a rank names one pair, and a part
// merged away has kNoRank).
void merge_long(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
                std::vector<int32_t>& out) {
  const auto n = static_cast<int32_t>(piece.size());
  std::vector<int32_t> id(n), rank(n), merged(n), prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  std::vector<uint64_t> heap;
  const auto look_up = [&](int32_t i) {
    const MergeTable::Entry e =
        next[i] < n ? merges.find(id[i], id[next[i]]) : MergeTable::Entry{MergeTable::kNoRank, -1};
    rank[i] = e.rank;
    merged[i] = e.merged;
    if (e.rank == MergeTable::kNoRank) return;
    heap.push_back(uint64_t{static_cast<uint32_t>(e.rank)} << 32 | static_cast<uint32_t>(i));
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i < n; ++i) look_up(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const auto best = static_cast<int32_t>(heap.back()), lowest = static_cast<int32_t>(heap.back() >> 32);
    heap.pop_back();
    if (rank[best] != lowest) continue;  // stale
    const int32_t gone = next[best];
    id[best] = merged[best];
    rank[gone] = MergeTable::kNoRank;
    next[best] = next[gone];
    if (next[gone] < n) prev[next[gone]] = best;
    look_up(best);
    if (prev[best] >= 0) look_up(prev[best]);
  }
  for (int32_t i = 0; i < n; i = next[i]) out.push_back(id[i]);
}

}  // namespace

MergeTable::MergeTable(size_t expected_merges) : byte_pairs_(256 * 256, Entry{kNoRank, -1}) {
  make_slots(std::bit_ceil(std::max<size_t>(16, expected_merges * 2)));
}

void MergeTable::make_slots(size_t capacity) {
  constexpr int kFilterBitsPerSlot = 16;  // a miss gets past the filter 1 time in 32 at most
  slots_.assign(capacity, Slot{kEmpty, {kNoRank, -1}});
  filter_.assign(capacity * kFilterBitsPerSlot / 64, 0);
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
  filter_shift_ = shift_ - std::countr_zero(unsigned{kFilterBitsPerSlot});
}

void MergeTable::place(uint64_t key, Entry entry) {
  const uint64_t hash = hash_of(key), bucket = hash >> filter_shift_;
  size_t slot = hash >> shift_;
  while (slots_[slot].key != kEmpty) slot = (slot + 1) & mask_;
  slots_[slot] = {key, entry};
  filter_[bucket >> 6] |= uint64_t{1} << (bucket & 63);
}

bool MergeTable::insert(int32_t left, int32_t right, Entry entry) {
  if (find(left, right).rank != kNoRank) return false;
  if (is_byte_pair(left, right)) {
    byte_pairs_[(left << 8) | right] = entry;
  } else {
    if ((size_ + 1) * 2 > slots_.size()) {  // load factor at most 1/2 keeps probes short
      const std::vector<Slot> old = std::move(slots_);
      make_slots(old.size() * 2);
      for (const Slot& s : old) {
        if (s.key != kEmpty) place(s.key, s.entry);
      }
    }
    place(pack(left, right), entry);
  }
  ++size_;
  return true;
}

void bpe_merge(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
               std::vector<int32_t>& out) {
  if (piece.empty()) return;
  if (piece.size() <= kShortPiece) {
    merge_short(piece, byte_ids, merges, out);
  } else {
    merge_long(piece, byte_ids, merges, out);
  }
}

}  // namespace inkstone
