// The two file layouts of a vocabulary besides tokenizer.json (runtime/bpe_json.cpp): GPT-2's
// vocab.json + merges.txt, and tiktoken's rank files.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>

#include "runtime/bpe_json.h"
#include "runtime/bpe_merge.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/read_file.h"

namespace inkstone {
namespace {

constexpr std::string_view kAdvice = "check the path (data.tokenizer)";

// The lines of a text file without their "\n" (or "\r\n"); no empty last line for a final newline.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return lines;
}

// Standard base64 (RFC 4648, '+' '/' and '=' padding), all of it; nullopt on anything else.
std::optional<std::string> decode_base64(std::string_view text) {
  static const std::array<int8_t, 256> value = [] {
    std::array<int8_t, 256> v;
    v.fill(-1);
    const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < alphabet.size(); ++i)
      v[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return v;
  }();
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  const size_t padding = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  std::string bytes;
  uint32_t bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool pad = i >= text.size() - padding;
    const int8_t v = pad ? int8_t{0} : value[static_cast<unsigned char>(text[i])];
    if (v < 0) return std::nullopt;
    bits = bits << 6 | static_cast<uint32_t>(v);
    if (i % 4 == 3) {
      for (int shift = 16; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(bits >> shift));
      bits = 0;
    }
  }
  bytes.resize(bytes.size() - padding);
  return bytes;
}

std::optional<int64_t> parse_rank(std::string_view text) {
  int64_t rank = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rank);
  if (ec != std::errc() || end != text.data() + text.size() || rank < 0) return std::nullopt;
  return rank;
}

// vocab.json: {"symbols": id, ...}. GPT-2's lists <|endoftext|> there too; it is the special.
void read_vocab_json(const std::string& path, BpeModel& model, nlohmann::json& vocab) {
  const std::string text = read_whole_file(path, "the vocab file (vocab.json)", kAdvice);
  try {
    vocab = parse_json_bounded(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({}); GPT-2's vocab.json is expected", path, e.what());
  } catch (const JsonTooDeep& e) {
    fail("{}: not a vocab.json ({})", path, e.what());
  }
  if (!vocab.is_object()) fail("{}: not a vocab.json (a JSON object of token -> id is expected)", path);
  model.tokens.assign(vocab.size(), std::string());
  std::vector<bool> seen(vocab.size(), false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string& key = it.key();
    const int64_t id = it->is_number_integer() ? it->get<int64_t>() : -1;
    if (id < 0 || id >= static_cast<int64_t>(vocab.size())) {
      fail("{}: token {} has id {}; ids must be 0..{} (one per token)", path, quoted_name(key),
           json_excerpt(*it), vocab.size() - 1);
    }
    if (seen[id]) fail("{}: two tokens have the id {}; ids must be unique", path, id);
    seen[id] = true;
    if (key == kEndOfText) {
      model.tokens[id] = key;
      model.specials.push_back(static_cast<int32_t>(id));
      continue;
    }
    std::optional<std::string> bytes = bytes_from_symbols(key);
    if (!bytes)
      fail("{}: token {} is not written in byte-level symbols; is this GPT-2's vocab.json?", path,
           quoted_name(key));
    model.tokens[id] = std::move(*bytes);
  }
}

// A model whose vocabulary has no <|endoftext|> gets one after its last token, as GPT-2's.
void add_end_of_text_if_missing(BpeModel& model) {
  if (!model.specials.empty()) return;
  model.specials.push_back(static_cast<int32_t>(model.tokens.size()));
  model.tokens.emplace_back(kEndOfText);
}

}  // namespace

BpeModel bpe_model_from_vocab_merges(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  BpeModel model;
  nlohmann::json vocab;
  read_vocab_json(vocab_json_path, model, vocab);

  const std::string text = read_whole_file(merges_txt_path, "the merges file (merges.txt)", kAdvice);
  const std::vector<std::string_view> lines = lines_of(text);
  model.merges.reserve(lines.size());
  const auto id_of = [&](const std::string& symbols, size_t line, std::string_view what) {
    const auto it = vocab.find(symbols);
    if (it == vocab.end()) {
      fail("{}:{}: the merge {} {}, which is not in {}", merges_txt_path, line, what, quoted_name(symbols),
           vocab_json_path);
    }
    return it->get<int32_t>();
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (i == 0 && line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      fail("{}:{}: {} is not two tokens separated by one space; is this GPT-2's merges.txt?", merges_txt_path,
           i + 1, quoted_name(line));
    }
    const std::string left(line.substr(0, space)), right(line.substr(space + 1));
    model.merges.push_back(
        {id_of(left, i + 1, "names"), id_of(right, i + 1, "names"), id_of(left + right, i + 1, "makes")});
  }
  add_end_of_text_if_missing(model);
  return model;
}

// Ranks are token ids, and each multi-byte token's rank is the rank of the merge that makes it. The
// merge list is recovered by merging each token's bytes with the lower ranks alone: that must leave
// exactly two tokens, its parts (tiktoken's own encoder takes the same path to reach it).
BpeModel bpe_model_from_tiktoken(const std::string& path) {
  const std::string text = read_whole_file(path, "the tiktoken rank file", kAdvice);
  BpeModel model;
  std::vector<bool> seen;
  const std::vector<std::string_view> lines = lines_of(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const size_t space = line.find(' ');
    const std::optional<std::string> bytes =
        space == std::string_view::npos ? std::nullopt : decode_base64(line.substr(0, space));
    const std::optional<int64_t> rank =
        space == std::string_view::npos ? std::nullopt : parse_rank(line.substr(space + 1));
    if (!bytes || !rank || *rank >= static_cast<int64_t>(lines.size())) {
      fail("{}:{}: {} is not a base64 token and a rank below {}; is this a tiktoken file?", path, i + 1,
           quoted_name(line), lines.size());
    }
    if (seen.empty()) {
      seen.assign(lines.size(), false);
      model.tokens.resize(lines.size());
    }
    if (seen[*rank]) fail("{}:{}: rank {} appears twice", path, i + 1, *rank);
    seen[*rank] = true;
    model.tokens[*rank] = *bytes;
  }
  if (lines.empty()) fail("{}: the tiktoken rank file is empty", path);
  // A rank file carries neither its pre-tokenizer pattern nor its special ids: GPT-2's are assumed.
  // The larger encodings (cl100k_base, o200k_base) use other patterns and ids, so they would load
  // and quietly give wrong ids.
  constexpr size_t kGpt2Ranks = 50256;
  if (lines.size() > kGpt2Ranks)
    fail(
        "{}: {} ranks, more than GPT-2's {}; only GPT-2's rank file (r50k pattern, <|endoftext|> = 50256) "
        "can be read this way; give the vocabulary as a tokenizer.json instead",
        path, lines.size(), kGpt2Ranks);

  int32_t byte_ids[256];
  std::fill(std::begin(byte_ids), std::end(byte_ids), -1);
  for (size_t rank = 0; rank < model.tokens.size(); ++rank) {
    if (model.tokens[rank].size() == 1)
      byte_ids[static_cast<unsigned char>(model.tokens[rank][0])] = static_cast<int32_t>(rank);
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (byte_ids[byte] < 0) fail("{}: byte 0x{:02X} has no token; byte-level BPE needs all 256", path, byte);
  }
  MergeTable merges(model.tokens.size());
  std::vector<int32_t> parts;
  for (size_t rank = 0; rank < model.tokens.size(); ++rank) {
    const std::string& token = model.tokens[rank];
    if (token.size() < 2) continue;
    parts.clear();
    bpe_merge(token, byte_ids, merges, parts);
    if (parts.size() != 2) {
      fail(
          "{}: the token of rank {} ({}) is not two tokens of lower rank merged ({} parts); the ranks are "
          "not BPE's",
          path, rank, quoted_name(symbols_from_bytes(token)), parts.size());
    }
    const BpeModel::Merge merge = {parts[0], parts[1], static_cast<int32_t>(rank)};
    merges.insert(merge.left, merge.right, {static_cast<int32_t>(model.merges.size()), merge.merged});
    model.merges.push_back(merge);
  }
  add_end_of_text_if_missing(model);
  return model;
}

}  // namespace inkstone
