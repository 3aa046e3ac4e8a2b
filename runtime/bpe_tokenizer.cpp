#include "runtime/bpe_tokenizer.h"

#include <fmt/format.h>

#include <atomic>
#include <unordered_map>

#include "runtime/bpe_json.h"
#include "runtime/bpe_merge.h"
#include "runtime/bpe_word_count.h"
#include "runtime/error.h"
#include "runtime/utf8.h"

namespace inkstone {
namespace {

// Text is pre-tokenized and merged this much at a time, so that the list of pieces stays small and
// in cache whatever the size of the text (a whole corpus is one call to encode()); the cuts are
// piece_safe_cuts (runtime/bpe_word_count.h), where the pieces of the parts are those of the whole.
constexpr size_t kChunkBytes = size_t{1} << 16;

// Pieces this thread has encoded lately, for one tokenizer at a time: words repeat, so most pieces
// of a text are found here instead of being merged again. Bounded: emptied when full.
//
// Open addressing on flat arrays, the pieces' bytes and ids kept in two arenas, so caching a piece
// allocates nothing of its own. Most pieces of Chinese text are not cached (few repeat), so a miss
// must be cheap: it nearly always reads 16-bit tags alone, a table that stays in cache where the
// entries would not.
class PieceCache {
 public:
  static constexpr size_t kMaxPieceBytes = 64;
  static constexpr size_t kMaxEntries = size_t{1} << 16;

  // This thread's cache, emptied first when it last served another tokenizer.
  static PieceCache& of_thread(uint64_t tokenizer_serial) {
    thread_local PieceCache cache;
    if (cache.owner_ != tokenizer_serial) {
      cache.clear();
      cache.owner_ = tokenizer_serial;
    }
    return cache;
  }

  // Appends the ids of `piece` to `out`: the cached ones, or else those `merge(piece, out)` appends,
  // which are then cached.
  template <class Merge>
  void append(std::string_view piece, std::vector<int32_t>& out, const Merge& merge) {
    const uint64_t hash = std::hash<std::string_view>{}(piece);
    const uint16_t tag = static_cast<uint16_t>(hash) | 1;  // the low bits; the high ones pick the slot
    size_t slot = hash >> (64 - kSlotBits);
    for (; tags_[slot] != kEmpty; slot = (slot + 1) & (kSlots - 1)) {
      const Entry& e = entries_[slot];
      if (tags_[slot] == tag && piece == std::string_view(bytes_).substr(e.bytes_at, e.bytes_size)) {
        out.insert(out.end(), ids_.begin() + e.ids_at, ids_.begin() + e.ids_at + e.ids_size);
        return;
      }
    }
    const size_t first = out.size();
    merge(piece, out);
    if (size_ == kMaxEntries) {
      clear();
      return;
    }
    tags_[slot] = tag;
    entries_[slot] = {static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(ids_.size()),
                      static_cast<uint8_t>(piece.size()), static_cast<uint8_t>(out.size() - first)};
    bytes_.append(piece);
    ids_.insert(ids_.end(), out.begin() + static_cast<ptrdiff_t>(first), out.end());
    ++size_;
  }

 private:
  static constexpr int kSlotBits = 17;  // twice kMaxEntries: probe sequences stay short
  static constexpr size_t kSlots = size_t{1} << kSlotBits;
  static constexpr uint16_t kEmpty = 0;  // tags are odd
  static_assert(kMaxEntries * 2 <= kSlots && kMaxPieceBytes <= UINT8_MAX);
  struct Entry {
    uint32_t bytes_at, ids_at;  // into bytes_ and ids_
    uint8_t bytes_size, ids_size;
  };

  void clear() {
    if (size_ == 0) return;  // no tag is set, so a thread that has cached nothing pays nothing
    tags_.assign(kSlots, kEmpty);
    bytes_.clear();
    ids_.clear();
    size_ = 0;
  }

  uint64_t owner_ = 0;  // serials start at 1
  std::vector<uint16_t> tags_ = std::vector<uint16_t>(kSlots, kEmpty);
  std::vector<Entry> entries_ = std::vector<Entry>(kSlots);
  std::string bytes_;         // every cached piece's bytes, one after another
  std::vector<int32_t> ids_;  // and their ids
  size_t size_ = 0;
};

std::atomic<uint64_t> next_tokenizer_serial{1};

}  // namespace

struct BpeTokenizer::Impl {
  BpeModel model;
  std::string source;
  MergeTable merges;
  int32_t byte_ids[256];
  int32_t eot = -1;
  // Never reused, unlike an address, so a thread's cache cannot outlive its tokenizer and serve the
  // next one allocated in the same place.
  uint64_t serial = next_tokenizer_serial.fetch_add(1);

  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  void validate_tokens();
  void build_merges();
};

void BpeTokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  PieceCache& cache = PieceCache::of_thread(serial);
  const auto merge = [&](std::string_view piece, std::vector<int32_t>& ids) {
    bpe_merge(piece, byte_ids, merges, ids);
  };
  std::vector<std::string_view> pieces;
  std::vector<size_t> ends = piece_safe_cuts(text, model.rule, kChunkBytes);
  ends.push_back(text.size());
  size_t begin = 0;
  for (const size_t end : ends) {
    pieces.clear();
    pre_tokenize(text.substr(begin, end - begin), model.rule, pieces);
    for (const std::string_view piece : pieces) {
      if (piece.size() == 1) {
        out.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
      } else if (piece.size() > PieceCache::kMaxPieceBytes) {
        merge(piece, out);
      } else {
        cache.append(piece, out, merge);
      }
    }
    begin = end;
  }
}

// Each byte has exactly one ordinary token, token bytes are unique, specials are valid UTF-8 (they
// are JSON strings in a tokenizer.json) and one of them is <|endoftext|>.
void BpeTokenizer::Impl::validate_tokens() {
  const auto n = static_cast<int64_t>(model.tokens.size());
  if (n < 257 || n > INT32_MAX)
    fail("{}: {} tokens; a byte-level BPE vocabulary has 257 to 2^31-1", source, n);
  std::vector<bool> is_special(n, false);
  for (const int32_t id : model.specials) {
    if (id < 0 || id >= n) fail("{}: special token id {} is outside the vocabulary of {}", source, id, n);
    if (is_special[id]) fail("{}: special token id {} is listed twice", source, id);
    is_special[id] = true;
    const std::string& text = model.tokens[id];
    if (text.empty() || find_invalid_utf8(text)) {
      fail("{}: special token {} is empty or not UTF-8 text", source, id);
    }
    if (text == kEndOfText) eot = id;
    // In a tokenizer.json a special is a vocab key too, beside the ordinary tokens' symbol strings.
    const std::optional<std::string> as_symbols = bytes_from_symbols(text);
    if (as_symbols && *as_symbols != text) {
      for (int32_t other = 0; other < n; ++other) {
        if (model.tokens[other] == *as_symbols) {
          fail("{}: special token {} ({}) is spelled like the symbols of token {}; rename it", source, id,
               text, other);
        }
      }
    }
  }
  if (eot < 0) fail("{}: no special token {}; add it (GPT-2's is id 50256)", source, kEndOfText);

  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(model.tokens.size());
  std::fill(std::begin(byte_ids), std::end(byte_ids), -1);
  for (int32_t id = 0; id < n; ++id) {
    const std::string& bytes = model.tokens[id];
    if (bytes.empty()) fail("{}: token {} is empty", source, id);
    const auto [it, added] = id_of.emplace(bytes, id);
    if (!added)
      fail("{}: tokens {} and {} are the same bytes; token bytes must be unique", source, it->second, id);
    if (bytes.size() == 1 && !is_special[id]) byte_ids[static_cast<unsigned char>(bytes[0])] = id;
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (byte_ids[byte] < 0)
      fail("{}: byte 0x{:02X} has no token; byte-level BPE needs all 256", source, byte);
  }
}

// Every merge joins two ordinary tokens into the token of their bytes, and no pair merges twice.
void BpeTokenizer::Impl::build_merges() {
  const auto n = static_cast<int64_t>(model.tokens.size());
  std::vector<bool> is_special(n, false);
  for (const int32_t id : model.specials) is_special[id] = true;
  const auto ordinary = [&](int32_t id) { return id >= 0 && id < n && !is_special[id]; };
  merges = MergeTable(model.merges.size());
  for (size_t rank = 0; rank < model.merges.size(); ++rank) {
    const BpeModel::Merge& m = model.merges[rank];
    if (!ordinary(m.left) || !ordinary(m.right) || !ordinary(m.merged)) {
      fail("{}: merge {} ({} + {} -> {}) names a special token or an id outside the vocabulary", source, rank,
           m.left, m.right, m.merged);
    }
    if (model.tokens[m.merged] != model.tokens[m.left] + model.tokens[m.right]) {
      fail("{}: merge {} makes token {} from tokens {} and {}, whose bytes do not join to it", source, rank,
           m.merged, m.left, m.right);
    }
    if (!merges.insert(m.left, m.right, {static_cast<int32_t>(rank), m.merged})) {
      fail("{}: merge {} repeats the pair of tokens {} and {} of an earlier merge", source, rank, m.left,
           m.right);
    }
  }
}

BpeTokenizer::BpeTokenizer(BpeModel model, std::string source) {
  auto impl = std::make_shared<Impl>();
  impl->model = std::move(model);
  impl->source = std::move(source);
  impl->validate_tokens();
  impl->build_merges();
  impl_ = std::move(impl);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  impl_->encode_ordinary(text, ids);
  return ids;
}

std::vector<int32_t> BpeTokenizer::encode_with_specials(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  const BpeModel& m = impl_->model;
  constexpr size_t kNone = std::string_view::npos;
  // Where each special next occurs at or after `done`; searched again only once passed, so a text
  // full of one special is not rescanned for the others at each occurrence.
  std::vector<size_t> next_at(m.specials.size());
  for (size_t k = 0; k < m.specials.size(); ++k) next_at[k] = text.find(m.tokens[m.specials[k]]);
  size_t done = 0;
  while (true) {
    size_t found = kNone;
    int32_t found_id = -1;
    for (size_t k = 0; k < m.specials.size(); ++k) {
      const std::string& special = m.tokens[m.specials[k]];
      if (next_at[k] != kNone && next_at[k] < done) next_at[k] = text.find(special, done);
      if (k == 0 || next_at[k] < found ||
          (next_at[k] == found && found != kNone && special.size() > m.tokens[found_id].size())) {
        found = next_at[k];  // the earliest, and the longest of those starting there
        found_id = m.specials[k];
      }
    }
    impl_->encode_ordinary(text.substr(done, found == kNone ? kNone : found - done), ids);
    if (found == kNone) break;
    ids.push_back(found_id);
    done = found + m.tokens[found_id].size();
  }
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  const std::vector<std::string>& tokens = impl_->model.tokens;
  size_t bytes = 0;
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size()) {
      fail("token id {} is outside the vocabulary of {} ({})", id, tokens.size(), name());
    }
    bytes += tokens[id].size();
  }
  std::string text;
  text.reserve(bytes);
  for (const int32_t id : ids) text += tokens[id];
  return text;
}

int32_t BpeTokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->model.tokens.size());
}

int32_t BpeTokenizer::eot_id() const {
  return impl_->eot;
}

std::string BpeTokenizer::name() const {
  return fmt::format("bpe ({} tokens, {} pre-tokenizer)", vocab_size(), rule_name(impl_->model.rule));
}

std::string BpeTokenizer::to_json() const {
  return bpe_model_to_json(impl_->model);
}

const BpeModel& BpeTokenizer::model() const {
  return impl_->model;
}

}  // namespace inkstone
