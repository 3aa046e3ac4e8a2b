#include "runtime/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/bpe_json.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/byte_level.h"
#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/read_file.h"
#include "runtime/sha256.h"

namespace inkstone {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// The ByteLevel pre-tokenizer and decoder of a tokenizer whose ids are exactly its bytes: no prefix
// space (it would add an id) and no regex split (harmless without merges, but pointless work).
ordered_json byte_level_component() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
}

std::string json_type(const json& value) {
  return value.is_object() ? value.value("type", "") : "";
}

// Whether `doc` is the byte tokenizer's tokenizer.json (what ByteTokenizer::to_json writes, give or
// take what does not change ids: offsets settings, <|endoftext|> listed in the vocab as GPT-2 does).
// Those files load as ByteTokenizer, whose name and hash existing shards and checkpoints record.
bool is_byte_tokenizer(const json& doc) {
  if (!doc.is_object()) return false;
  const json model = doc.value("model", json());
  if (json_type(model) != "BPE") return false;
  const json merges = model.value("merges", json::array());
  if (!merges.is_array() || !merges.empty()) return false;
  const json vocab = model.value("vocab", json());
  if (!vocab.is_object()) return false;
  size_t bytes_seen = 0;
  for (const auto& [symbol, id] : vocab.items()) {
    if (symbol == kEndOfText && id == ByteTokenizer::kEndOfTextId) continue;  // GPT-2 lists it here too
    const auto byte = byte_from_symbol(symbol);
    if (!byte || !id.is_number_integer() || id.get<int64_t>() != *byte) return false;
    ++bytes_seen;
  }
  if (bytes_seen != 256) return false;
  if (!doc.value("normalizer", json()).is_null()) return false;
  const json pre = doc.value("pre_tokenizer", json());
  if (json_type(pre) != "ByteLevel" || pre.value("add_prefix_space", false)) return false;
  const json post = doc.value("post_processor", json());
  if (!post.is_null() && json_type(post) != "ByteLevel") return false;
  const json added = doc.value("added_tokens", json());
  return added.is_array() && added.size() == 1 && added[0].is_object() &&
         added[0].value("content", "") == kEndOfText &&
         added[0].value("id", -1) == ByteTokenizer::kEndOfTextId && added[0].value("special", false);
}

}  // namespace

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (const int32_t id : ids) {
    if (id >= 0 && id < kEndOfTextId) {
      text.push_back(static_cast<char>(id));
    } else if (id == kEndOfTextId) {
      text.append(kEndOfText);
    } else {
      fail("token id {} is outside the byte tokenizer's vocabulary of {}", id, vocab_size());
    }
  }
  return text;
}

std::string ByteTokenizer::to_json() const {
  ordered_json vocab = ordered_json::object();
  const auto& symbols = byte_level_symbols();
  for (int byte = 0; byte < 256; ++byte) vocab[symbols[byte]] = byte;

  ordered_json end_of_text = {{"id", kEndOfTextId}, {"content", kEndOfText}, {"single_word", false},
                              {"lstrip", false},    {"rstrip", false},       {"normalized", false},
                              {"special", true}};
  ordered_json model = {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"vocab", std::move(vocab)},
                        {"merges", ordered_json::array()}};
  ordered_json doc = {
      {"version", "1.0"},          {"truncation", nullptr},
      {"padding", nullptr},        {"added_tokens", ordered_json::array({std::move(end_of_text)})},
      {"normalizer", nullptr},     {"pre_tokenizer", byte_level_component()},
      {"post_processor", nullptr}, {"decoder", byte_level_component()},
      {"model", std::move(model)}};
  return doc.dump(2) + "\n";
}

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const std::string& source) {
  const json doc = parse_tokenizer_json(json_text, source);
  if (is_byte_tokenizer(doc)) return std::make_unique<ByteTokenizer>();
  return std::make_unique<BpeTokenizer>(bpe_model_from_json(doc, source), source);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  const auto gpt2_pair_in = [&path](const fs::path& dir) {
    return std::make_unique<BpeTokenizer>(
        bpe_model_from_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string()), path);
  };
  std::error_code ec;
  const fs::path file(path);
  if (fs::is_directory(file, ec)) {
    if (fs::exists(file / "tokenizer.json", ec)) return load_tokenizer((file / "tokenizer.json").string());
    if (fs::exists(file / "vocab.json", ec) && fs::exists(file / "merges.txt", ec)) return gpt2_pair_in(file);
    fail(
        "{}: the directory holds neither tokenizer.json nor vocab.json + merges.txt; check the path "
        "(data.tokenizer)",
        path);
  }
  if (file.filename() == "vocab.json" || file.filename() == "merges.txt")
    return gpt2_pair_in(file.parent_path());
  if (file.extension() == ".tiktoken")
    return std::make_unique<BpeTokenizer>(bpe_model_from_tiktoken(path), path);
  return tokenizer_from_json(read_whole_file(path, "the tokenizer file", "check the path (data.tokenizer)"),
                             path);
}

std::unique_ptr<Tokenizer> tokenizer_from_spec(const std::string& spec) {
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  return load_tokenizer(spec);
}

std::string tokenizer_hash(std::string_view json_text) {
  json doc;
  try {
    doc = parse_json_bounded(json_text);
  } catch (const json::exception& e) {
    fail("cannot hash a tokenizer that is not valid JSON ({})", e.what());
  } catch (const JsonTooDeep& e) {
    fail("cannot hash a tokenizer that is not a tokenizer.json ({})", e.what());
  }
  return sha256_hex(doc.dump());
}

}  // namespace inkstone
