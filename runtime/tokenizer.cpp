#include "runtime/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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

// Why `doc` is not the byte tokenizer's shape, or "" when it is. Only what changes ids is checked
// strictly (vocab, merges, normalizer, prefix space, added tokens); offsets settings are free.
std::string byte_tokenizer_mismatch(const json& doc) {
  if (!doc.is_object()) return "the file is not a JSON object";
  const json model = doc.value("model", json());
  if (json_type(model) != "BPE") return "its model is not BPE";
  const json merges = model.value("merges", json::array());
  if (!merges.is_array() || !merges.empty()) return "it has BPE merges";
  const json vocab = model.value("vocab", json());
  if (!vocab.is_object()) return "its model has no vocab object";
  size_t bytes_seen = 0;
  for (const auto& [symbol, id] : vocab.items()) {
    if (symbol == kEndOfText && id == ByteTokenizer::kEndOfTextId) continue;  // GPT-2 lists it here too
    const auto byte = byte_from_symbol(symbol);
    if (!byte || !id.is_number_integer() || id.get<int64_t>() != *byte) {
      return "its vocab is not the 256 byte symbols in byte order";
    }
    ++bytes_seen;
  }
  if (bytes_seen != 256) return "its vocab is not the 256 byte symbols in byte order";
  if (!doc.value("normalizer", json()).is_null()) return "it has a normalizer";
  const json pre = doc.value("pre_tokenizer", json());
  if (json_type(pre) != "ByteLevel" || pre.value("add_prefix_space", false)) {
    return "its pre_tokenizer is not ByteLevel without a prefix space";
  }
  const json post = doc.value("post_processor", json());
  if (!post.is_null() && json_type(post) != "ByteLevel") return "its post_processor adds tokens";
  const json added = doc.value("added_tokens", json());
  if (!added.is_array() || added.size() != 1 || !added[0].is_object() ||
      added[0].value("content", "") != kEndOfText ||
      added[0].value("id", -1) != ByteTokenizer::kEndOfTextId || !added[0].value("special", false)) {
    return "its added_tokens are not exactly <|endoftext|> with id 256";
  }
  return "";
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
  json doc;
  try {
    doc = parse_json_bounded(json_text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); a tokenizer.json from inkstone or Hugging Face is expected", source,
         e.what());
  } catch (const JsonTooDeep& e) {
    fail("{}: not a tokenizer.json ({}); a tokenizer.json from inkstone or Hugging Face is expected", source,
         e.what());
  }
  const std::string mismatch = byte_tokenizer_mismatch(doc);
  if (mismatch.empty()) return std::make_unique<ByteTokenizer>();
  fail(
      "{}: not a byte-level tokenizer ({}); only the byte tokenizer can be loaded so far, use "
      "data.tokenizer: byte",
      source, mismatch);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
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
