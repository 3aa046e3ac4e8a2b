#include "runtime/bpe_trainer.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "runtime/bpe_word_count.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

// A pair of adjacent token ids, left in the high half.
using PairKey = uint64_t;
constexpr PairKey pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
constexpr int32_t left_of(PairKey key) {
  return static_cast<int32_t>(key >> 32);
}
constexpr int32_t right_of(PairKey key) {
  return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

// Pair counts count every adjacent position, so "a a a" holds (a, a) twice (as Hugging Face's trainer
// counts them), although merging it left to right makes one "aa" and leaves an "a".
struct PairStats {
  int64_t count = 0;
  // Words that held the pair at some point, in the order it appeared in them: a word may be listed
  // twice or no longer hold it. Both are harmless, as a merge rescans each word it visits.
  std::vector<int32_t> words;
  uint32_t gained_at = 0;  // the last merge that raised the count (0: none yet)
};

struct HeapEntry {
  int64_t count;
  PairKey pair;
};

// The BPE merge loop over the distinct words of a corpus.
class Merger {
 public:
  Merger(const WordCounts& counts, std::vector<std::string>& tokens, int64_t min_frequency)
      : tokens_(tokens), min_frequency_(min_frequency), heap_(HeapOrder{&tokens}) {
    size_t symbols = 0;
    for (const WordCount& w : counts.words) symbols += w.word.size();
    symbols_.reserve(symbols);
    words_.reserve(counts.words.size());
    for (const WordCount& w : counts.words) {
      words_.push_back({symbols_.size(), static_cast<uint32_t>(w.word.size()), w.count});
      for (const char c : w.word) symbols_.push_back(static_cast<unsigned char>(c));
    }
    visited_.assign(words_.size(), 0);
    pairs_.reserve(symbols / 4);
    for (size_t w = 0; w < words_.size(); ++w) {
      const Word& word = words_[w];
      const int32_t* s = &symbols_[word.begin];
      for (uint32_t i = 0; i + 1 < word.size; ++i) add(pair_key(s[i], s[i + 1]), word.count, w);
    }
    std::vector<HeapEntry> entries;
    for (const auto& [pair, stats] : pairs_) {
      if (stats.count >= min_frequency_) entries.push_back({stats.count, pair});
    }
    heap_ = Heap(HeapOrder{&tokens_}, std::move(entries));
    changed_.clear();
  }

  // The most frequent pair (ties: the one whose bytes sort first) seen at least min_frequency
  // times, or false when there is none left. Entries whose count has changed since they were pushed
  // are pushed again with the count they have now, or dropped when a newer entry stands for them.
  bool pop_best(PairKey& best) {
    while (!heap_.empty()) {
      const HeapEntry top = heap_.top();
      heap_.pop();
      const auto it = pairs_.find(top.pair);
      const int64_t now = it == pairs_.end() ? 0 : it->second.count;
      if (now == top.count) {
        best = top.pair;
        return true;
      }
      if (now < top.count && now >= min_frequency_) heap_.push({now, top.pair});
    }
    return false;
  }

  // Rewrites every word holding `pair` with `merged` in its place, left to right, and updates the
  // counts of the pairs around each rewritten place.
  void apply(PairKey pair, int32_t merged) {
    const auto it = pairs_.find(pair);
    assert(it != pairs_.end());
    const std::vector<int32_t> words = std::move(it->second.words);
    ++merge_stamp_;
    for (const int32_t w : words) {
      if (visited_[w] == merge_stamp_) continue;
      visited_[w] = merge_stamp_;
      merge_in_word(w, left_of(pair), right_of(pair), merged);
    }
    // Every place of the pair was rewritten, and a new pair always holds `merged`, never left and right.
    pairs_.erase(pair);

    for (const PairKey key : changed_) {
      const int64_t count = pairs_.at(key).count;
      if (count >= min_frequency_) heap_.push({count, key});
    }
    changed_.clear();
  }

 private:
  struct Word {
    size_t begin;   // first symbol in symbols_
    uint32_t size;  // symbols; merges shrink it in place
    int64_t count;
  };

  // Orders the heap: higher count on top, then the pair whose (left bytes, right bytes) sorts first.
  struct HeapOrder {
    const std::vector<std::string>* tokens;
    bool operator()(const HeapEntry& a, const HeapEntry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const std::string& a_left = (*tokens)[left_of(a.pair)];
      const std::string& b_left = (*tokens)[left_of(b.pair)];
      if (a_left != b_left) return a_left > b_left;
      return (*tokens)[right_of(a.pair)] > (*tokens)[right_of(b.pair)];
    }
  };
  using Heap = std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder>;

  void add(PairKey pair, int64_t count, size_t word) {
    PairStats& stats = pairs_[pair];
    stats.count += count;
    const int32_t w = static_cast<int32_t>(word);
    if (stats.words.empty() || stats.words.back() != w) stats.words.push_back(w);
    if (stats.gained_at != merge_stamp_) {
      stats.gained_at = merge_stamp_;
      changed_.push_back(pair);
    }
  }

  void remove(PairKey pair, int64_t count) {
    const auto it = pairs_.find(pair);
    assert(it != pairs_.end() && it->second.count >= count);
    it->second.count -= count;
  }

  // The old pairs that touch a rewritten place lose the word's count, each once: the pair on the
  // left of an occurrence always, the one on its right unless the next occurrence starts right there
  // (it is that one's left pair). The new pairs that hold `merged` gain it. The pair being merged is
  // left alone: apply() drops it whole.
  void merge_in_word(int32_t w, int32_t left, int32_t right, int32_t merged) {
    Word& word = words_[w];
    int32_t* s = &symbols_[word.begin];
    const uint32_t n = word.size;
    const auto starts_occurrence = [&](uint32_t i) { return i + 1 < n && s[i] == left && s[i + 1] == right; };
    uint32_t out = 0;
    bool previous_is_new = false;
    int32_t previous_old = -1;  // the old symbol before position r; s[r - 1] may be overwritten
    const auto emit = [&](int32_t symbol, bool is_new) {
      if (out > 0 && (previous_is_new || is_new)) add(pair_key(s[out - 1], symbol), word.count, w);
      s[out++] = symbol;
      previous_is_new = is_new;
    };
    for (uint32_t r = 0; r < n;) {
      if (!starts_occurrence(r)) {
        previous_old = s[r];
        emit(s[r], false);
        ++r;
        continue;
      }
      if (r > 0) remove(pair_key(previous_old, left), word.count);
      if (r + 2 < n && !starts_occurrence(r + 2)) remove(pair_key(right, s[r + 2]), word.count);
      previous_old = right;
      emit(merged, true);
      r += 2;
    }
    word.size = out;
  }

  std::vector<std::string>& tokens_;
  const int64_t min_frequency_;
  std::vector<int32_t> symbols_;  // every word's token ids, one after another
  std::vector<Word> words_;
  std::unordered_map<PairKey, PairStats> pairs_;
  Heap heap_;
  std::vector<PairKey> changed_;   // pairs that gained count during the current merge, once each
  std::vector<uint32_t> visited_;  // per word: the last merge that rewrote it
  uint32_t merge_stamp_ = 0;
};

void check_config(const BpeTrainerConfig& config) {
  const int minimum = 256 + static_cast<int>(config.specials.size());
  if (config.vocab_size < minimum) {
    fail(
        "vocab size {} is too small: a byte-level BPE vocabulary holds the 256 bytes and {} special "
        "token{}; ask for at least {}",
        config.vocab_size, config.specials.size(), config.specials.size() == 1 ? "" : "s", minimum);
  }
  if (config.min_frequency < 1) {
    fail("minimum pair frequency {} is below 1; use 1 to merge every pair seen", config.min_frequency);
  }
  if (config.threads < 0) fail("thread count {} is negative; use 0 for every core", config.threads);
  std::set<std::string_view> seen;
  for (const std::string& special : config.specials) {
    if (special.size() < 2) {
      fail("special token '{}' is shorter than 2 bytes, so it would repeat a byte token; name it longer",
           special);
    }
    if (!seen.insert(special).second) fail("special token '{}' is listed twice; list it once", special);
  }
  if (!seen.contains(kEndOfText)) {
    fail("the special tokens do not include {}, which marks document boundaries; add it", kEndOfText);
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BpeModel train_bpe(std::span<const std::string_view> texts, const BpeTrainerConfig& config,
                   BpeTrainingStats* stats) {
  check_config(config);
  BpeTrainingStats local;
  BpeTrainingStats& s = stats ? *stats : local;
  s = {};
  for (const std::string_view text : texts) s.corpus_bytes += static_cast<int64_t>(text.size());
  if (s.corpus_bytes == 0) fail("the training text is empty; a BPE vocabulary needs a corpus with text");

  auto start = std::chrono::steady_clock::now();
  const WordCounts counts = count_words(texts, config.rule, config.threads);
  s.pieces = counts.pieces;
  s.distinct_words = static_cast<int64_t>(counts.words.size());
  s.count_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  BpeModel model;
  model.rule = config.rule;
  for (int b = 0; b < 256; ++b) model.tokens.emplace_back(1, static_cast<char>(b));
  for (const std::string& special : config.specials) {
    model.specials.push_back(static_cast<int32_t>(model.tokens.size()));
    model.tokens.push_back(special);
  }
  // Ids of the ordinary tokens by their bytes: a pair whose bytes some other pair made already
  // (("ab", "c") after ("a", "bc")) merges to that token, as Hugging Face's trainer does, and adds none.
  std::unordered_map<std::string, int32_t> ids;
  for (int b = 0; b < 256; ++b) ids.emplace(model.tokens[b], b);
  const std::unordered_set<std::string> special_texts(config.specials.begin(), config.specials.end());

  Merger merger(counts, model.tokens, config.min_frequency);
  PairKey best;
  while (model.tokens.size() < static_cast<size_t>(config.vocab_size) && merger.pop_best(best)) {
    std::string bytes = model.tokens[left_of(best)] + model.tokens[right_of(best)];
    // Ordinary text must never encode to a special token, so a pair that would spell one stays apart.
    if (special_texts.contains(bytes)) continue;
    const auto [it, added] = ids.try_emplace(bytes, static_cast<int32_t>(model.tokens.size()));
    if (added) model.tokens.push_back(std::move(bytes));
    model.merges.push_back({left_of(best), right_of(best), it->second});
    merger.apply(best, it->second);
  }
  s.merge_seconds = seconds_since(start);
  return model;
}

}  // namespace inkstone
