#include "runtime/bpe_word_count.h"

#include <algorithm>
#include <atomic>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "runtime/unicode_tables.h"

namespace inkstone {
namespace {

// What starts `text` (not empty), as the pre-tokenizer sees it: a sequence that is not well-formed
// UTF-8 is a character that is neither space nor ideograph.
enum class Lead { kSpace, kIdeograph, kOther };

Lead lead_of(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(0);
  if (first < 0x80) return char_class(first) == CharClass::Space ? Lead::kSpace : Lead::kOther;
  const size_t length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 0;
  if (length == 0 || first > 0xF4 || text.size() < length) return Lead::kOther;
  char32_t cp = first & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return Lead::kOther;
    cp = (cp << 6) | (byte(i) & 0x3F);
  }
  constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};  // below: an overlong form
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Lead::kOther;
  if (char_class(cp) == CharClass::Space) return Lead::kSpace;
  const bool ideograph = std::any_of(kCjkRanges.begin(), kCjkRanges.end(),
                                     [cp](const CodePointRange& r) { return cp >= r.first && cp <= r.last; });
  return ideograph ? Lead::kIdeograph : Lead::kOther;
}

// What ends `text` (not empty): the character whose last byte is text.back().
Lead trail_of(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && text.size() - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
    --start;
  return lead_of(text.substr(start));  // a stray continuation byte: Other, as the pre-tokenizer has it
}

// Chunks of about total / (4 * threads) bytes, so that threads that draw slow text (long words,
// many multi-byte characters) can be evened out by the others.
std::vector<std::string_view> chunks_of(std::span<const std::string_view> texts, PreTokenizerRule rule,
                                        size_t threads) {
  size_t total = 0;
  for (const std::string_view text : texts) total += text.size();
  constexpr size_t kMinChunkBytes = 64 << 10;  // smaller chunks would only add bookkeeping
  const size_t target = std::max(kMinChunkBytes, total / (4 * threads));
  std::vector<std::string_view> chunks;
  for (const std::string_view text : texts) {
    size_t begin = 0;
    for (const size_t cut : piece_safe_cuts(text, rule, target)) {
      chunks.push_back(text.substr(begin, cut - begin));
      begin = cut;
    }
    if (begin < text.size()) chunks.push_back(text.substr(begin));
  }
  return chunks;
}

using WordMap = std::unordered_map<std::string_view, int64_t>;

}  // namespace

std::vector<size_t> piece_safe_cuts(std::string_view text, PreTokenizerRule rule, size_t min_chunk_bytes) {
  std::vector<size_t> cuts;
  for (size_t from = std::max<size_t>(min_chunk_bytes, 1); from < text.size();) {
    const size_t newline = text.find('\n', from);
    if (newline == std::string_view::npos || newline + 1 >= text.size()) break;
    size_t cut = newline;
    switch (lead_of(text.substr(newline + 1))) {
      case Lead::kSpace:
        // A newline after a non-space still starts its pieces afresh: nothing before it reaches it.
        if (newline > 0 && trail_of(text.substr(0, newline)) != Lead::kSpace) break;
        from = newline + 1;
        continue;
      case Lead::kIdeograph:
        if (rule == PreTokenizerRule::Gpt2Cjk) cut = newline + 1;
        break;
      case Lead::kOther:
        break;
    }
    cuts.push_back(cut);
    from = cut + min_chunk_bytes;
  }
  return cuts;
}

WordCounts count_words(std::span<const std::string_view> texts, PreTokenizerRule rule, int threads) {
  const size_t workers =
      threads > 0 ? static_cast<size_t>(threads) : std::max<size_t>(1, std::thread::hardware_concurrency());
  const std::vector<std::string_view> chunks = chunks_of(texts, rule, workers);

  std::vector<WordMap> maps(std::min(workers, std::max<size_t>(chunks.size(), 1)));
  std::vector<int64_t> pieces(maps.size(), 0);
  std::atomic<size_t> next_chunk{0};
  const auto count_chunks = [&](size_t worker) {
    WordMap& words = maps[worker];
    std::vector<std::string_view> chunk_pieces;
    for (size_t i; (i = next_chunk.fetch_add(1)) < chunks.size();) {
      chunk_pieces.clear();
      pre_tokenize(chunks[i], rule, chunk_pieces);
      for (const std::string_view piece : chunk_pieces) ++words[piece];
      pieces[worker] += static_cast<int64_t>(chunk_pieces.size());
    }
  };
  {
    std::vector<std::jthread> pool;
    for (size_t worker = 1; worker < maps.size(); ++worker) pool.emplace_back(count_chunks, worker);
    count_chunks(0);
  }  // the jthreads join here

  // Sums do not depend on which thread counted what; sorting by bytes removes the hash order.
  WordMap& total = maps[0];
  for (size_t worker = 1; worker < maps.size(); ++worker) {
    for (const auto& [word, count] : maps[worker]) total[word] += count;
    WordMap().swap(maps[worker]);
  }
  WordCounts result;
  result.words.reserve(total.size());
  for (const auto& [word, count] : total) result.words.push_back({word, count});
  std::sort(result.words.begin(), result.words.end(),
            [](const WordCount& a, const WordCount& b) { return a.word < b.word; });
  for (const int64_t n : pieces) result.pieces += n;
  return result;
}

}  // namespace inkstone
