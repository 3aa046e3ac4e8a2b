#include "runtime/bpe_merge.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <queue>

namespace inkstone {
namespace {

// Up to this many bytes a piece is merged in a small array that is scanned for the lowest rank after
// each merge: O(n^2) comparisons, but n is small, each merge looks up only the two new pairs, and
// everything stays in L1.
constexpr size_t kShortPiece = 64;

void merge_short(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
                 std::vector<int32_t>& out) {
  // Parts stay where they start (no shifting) and are linked; a part merged away keeps kNoRank, so
  // the scan for the lowest rank reads one small array of ranks alone, which vectorizes.
  // rank[i], merged[i]: the merge of part i and the part after it.
  const auto n = static_cast<int32_t>(piece.size());
  std::array<int32_t, kShortPiece> id, rank, merged, next, prev;
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  const auto look_up = [&](int32_t i) {
    const MergeTable::Entry e =
        next[i] < n ? merges.find(id[i], id[next[i]]) : MergeTable::Entry{MergeTable::kNoRank, -1};
    rank[i] = e.rank;
    merged[i] = e.merged;
  };
  for (int32_t i = 0; i < n; ++i) look_up(i);

  while (true) {
    int32_t lowest = MergeTable::kNoRank;
    for (int32_t i = 0; i < n; ++i) lowest = std::min(lowest, rank[i]);
    if (lowest == MergeTable::kNoRank) break;
    int32_t best = 0;
    while (rank[best] != lowest) ++best;  // the leftmost of equal pairs
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

// Long pieces: the parts form a linked list and every adjacent pair that has a merge waits in a
// min-heap ordered by (rank, position). A heap entry is stale once either of its parts has been
// merged away; it is recognised by the parts' ids no longer matching (a part's id only ever grows
// into a longer token, so it never takes an old value again).
void merge_long(std::string_view piece, const int32_t (&byte_ids)[256], const MergeTable& merges,
                std::vector<int32_t>& out) {
  const auto n = static_cast<int32_t>(piece.size());
  std::vector<int32_t> id(n), prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push_pair = [&](int32_t pos) {
    const int32_t right = next[pos];
    if (right < 0) return;
    const MergeTable::Entry e = merges.find(id[pos], id[right]);
    if (e.rank != MergeTable::kNoRank) heap.push({e.rank, pos, id[pos], id[right], e.merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.pos];
    if (id[c.pos] != c.left || right < 0 || id[right] != c.right) continue;  // stale
    id[c.pos] = c.merged;
    id[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    if (prev[c.pos] >= 0) push_pair(prev[c.pos]);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace

MergeTable::MergeTable(size_t expected_merges) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, expected_merges * 2));
  slots_.assign(capacity, Slot{kEmpty, {kNoRank, -1}});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
}

bool MergeTable::insert(int32_t left, int32_t right, Entry entry) {
  if ((size_ + 1) * 2 > slots_.size()) grow();  // load factor at most 1/2 keeps probes short
  const uint64_t key = pack(left, right);
  size_t slot = slot_of(key);
  for (; slots_[slot].key != kEmpty; slot = (slot + 1) & mask_) {
    if (slots_[slot].key == key) return false;
  }
  slots_[slot] = {key, entry};
  ++size_;
  return true;
}

void MergeTable::grow() {
  MergeTable bigger(slots_.size());
  for (const Slot& s : slots_) {
    if (s.key != kEmpty)
      bigger.insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key), s.entry);
  }
  *this = std::move(bigger);
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
