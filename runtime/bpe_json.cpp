#include "runtime/bpe_json.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/byte_level.h"
#include "runtime/error.h"
#include "runtime/json_limits.h"

namespace inkstone {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

ordered_json byte_level_component() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

ordered_json pre_tokenizer_json(PreTokenizerRule rule) {
  if (rule == PreTokenizerRule::Gpt2) return byte_level_component();
  ordered_json split = {{"type", "Split"},
                        {"pattern", {{"Regex", cjk_split_regex()}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  return {{"type", "Sequence"},
          {"pretokenizers", ordered_json::array({std::move(split), byte_level_component()})}};
}

// ordered_json's objects find keys by linear search, which 50,000 vocab entries would make quadratic;
// the keys here are unique by construction (BpeTokenizer validates that), so they are appended as is.
void append_unique_key(ordered_json& object, std::string key, ordered_json value) {
  auto& entries = object.get_ref<ordered_json::object_t&>();
  entries.ordered_json::object_t::Container::emplace_back(std::move(key), std::move(value));
}

std::string json_type(const json& value) {
  if (!value.is_object()) return value.is_null() ? "null" : "not an object";
  const auto it = value.find("type");
  return it != value.end() && it->is_string() ? it->get<std::string>() : "untyped";
}

bool is_false_or_absent(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() || *it == false;
}

bool is_empty_or_absent(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() || *it == "";
}

// A ByteLevel pre-tokenizer that splits with GPT-2's regex and adds no prefix space, or a reason.
// Without merges the split changes no id (every byte is its own token), so use_regex is then free.
std::string byte_level_mismatch(const json& pre, bool has_merges) {
  if (json_type(pre) != "ByteLevel") return fmt::format("it is {}, not ByteLevel", json_type(pre));
  const auto prefix = pre.find("add_prefix_space");
  if (prefix == pre.end() || *prefix != false) {
    return "it adds a prefix space (add_prefix_space is not false), which GPT-2 does not";
  }
  const auto regex = pre.find("use_regex");
  if (has_merges && regex != pre.end() && *regex != true)
    return "use_regex is false, so text is not cut into words";
  return "";
}

PreTokenizerRule rule_of(const json& pre, bool has_merges, const std::string& source) {
  const std::string advice =
      "inkstone supports ByteLevel(add_prefix_space=false), alone (gpt2) or after a Split of CJK ideographs "
      "(gpt2-cjk)";
  if (json_type(pre) == "Sequence") {
    const json parts = pre.value("pretokenizers", json());
    const bool cjk_split = parts.is_array() && parts.size() == 2 && json_type(parts[0]) == "Split" &&
                           parts[0].value("pattern", json()) == json{{"Regex", cjk_split_regex()}} &&
                           parts[0].value("behavior", "") == "Isolated" &&
                           is_false_or_absent(parts[0], "invert");
    if (!cjk_split) fail("{}: its pre_tokenizer Sequence is not gpt2-cjk's; {}", source, advice);
    const std::string mismatch = byte_level_mismatch(parts[1], has_merges);
    if (!mismatch.empty())
      fail("{}: the ByteLevel part of its pre_tokenizer: {}; {}", source, mismatch, advice);
    return PreTokenizerRule::Gpt2Cjk;
  }
  const std::string mismatch = byte_level_mismatch(pre, has_merges);
  if (!mismatch.empty()) fail("{}: its pre_tokenizer is unsupported: {}; {}", source, mismatch, advice);
  return PreTokenizerRule::Gpt2;
}

// What besides the model changes ids: all of it must be absent or the identity.
void check_pipeline(const json& doc, const std::string& source) {
  for (const char* key : {"normalizer", "truncation", "padding"}) {
    if (!is_false_or_absent(doc, key)) {
      fail("{}: it has a {} ({}), which inkstone does not support; remove it", source, key,
           json_excerpt(doc[key]));
    }
  }
  const json post = doc.value("post_processor", json());
  if (!post.is_null() && json_type(post) != "ByteLevel") {
    fail("{}: its post_processor {} adds tokens, which inkstone does not support; use null", source,
         json_type(post));
  }
  if (json_type(doc.value("decoder", json())) != "ByteLevel") {
    fail("{}: its decoder is {}, not ByteLevel", source, json_type(doc.value("decoder", json())));
  }
}

void check_model_options(const json& model, const std::string& source) {
  if (json_type(model) != "BPE") {
    fail("{}: its model is {}, not BPE; inkstone supports byte-level BPE tokenizers only", source,
         json_type(model));
  }
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() && *dropout != 0) {
    fail("{}: its BPE model has dropout {}, which makes ids random; set it to null", source,
         json_excerpt(*dropout));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!is_empty_or_absent(model, key))
      fail("{}: its BPE model has a {}, which byte-level BPE has not", source, key);
  }
  if (!is_false_or_absent(model, "ignore_merges")) {
    fail("{}: its BPE model has ignore_merges true, which inkstone does not support", source);
  }
}

struct AddedToken {
  std::string content;
  int64_t id;
};

std::vector<AddedToken> read_added_tokens(const json& doc, const std::string& source) {
  const json added = doc.value("added_tokens", json::array());
  if (!added.is_array()) fail("{}: added_tokens is not an array", source);
  std::vector<AddedToken> tokens;
  for (size_t i = 0; i < added.size(); ++i) {
    const json& t = added[i];
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
        !t["id"].is_number_integer()) {
      fail("{}: added_tokens[{}] has no string content and integer id", source, i);
    }
    const auto content = t["content"].get<std::string>();
    if (!t.value("special", false)) {
      fail("{}: added_tokens[{}] {} is not special; inkstone supports special added tokens only", source, i,
           quoted_name(content));
    }
    for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
      if (!is_false_or_absent(t, flag)) {
        fail("{}: added_tokens[{}] {} sets {}, which inkstone does not support", source, i,
             quoted_name(content), flag);
      }
    }
    tokens.push_back({content, t["id"].get<int64_t>()});
  }
  if (std::none_of(tokens.begin(), tokens.end(),
                   [](const AddedToken& t) { return t.content == kEndOfText; })) {
    fail("{}: added_tokens has no special {}; add it", source, kEndOfText);
  }
  return tokens;
}

// "a b" (the classic form) or ["a", "b"] (tokenizers 0.20 and later).
std::pair<std::string, std::string> merge_symbols(const json& merge, size_t index,
                                                  const std::string& source) {
  if (merge.is_string()) {
    const auto text = merge.get<std::string>();
    const size_t space = text.find(' ');
    if (space != std::string::npos && space > 0 && space + 1 < text.size() &&
        text.find(' ', space + 1) == std::string::npos) {
      return {text.substr(0, space), text.substr(space + 1)};
    }
  } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  fail("{}: model.merges[{}] is {}, not two tokens", source, index, json_excerpt(merge));
}

}  // namespace

std::string symbols_from_bytes(std::string_view bytes) {
  const auto& symbols = byte_level_symbols();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char b : bytes) out += symbols[static_cast<unsigned char>(b)];
  return out;
}

std::optional<std::string> bytes_from_symbols(std::string_view symbols) {
  std::string bytes;
  bytes.reserve(symbols.size());
  for (size_t i = 0; i < symbols.size();) {
    // The symbols are U+0021..U+0143: one UTF-8 byte, or two with a lead byte below 0xE0.
    const size_t length = static_cast<unsigned char>(symbols[i]) < 0x80 ? 1 : 2;
    const std::optional<uint8_t> byte = byte_from_symbol(symbols.substr(i, length));
    if (!byte) return std::nullopt;
    bytes.push_back(static_cast<char>(*byte));
    i += length;
  }
  return bytes;
}

std::string cjk_split_regex() {
  std::string regex = "[";
  for (const CodePointRange& r : kCjkRanges) {
    regex +=
        fmt::format("\\x{{{:X}}}-\\x{{{:X}}}", static_cast<uint32_t>(r.first), static_cast<uint32_t>(r.last));
  }
  return regex + "]";
}

std::string bpe_model_to_json(const BpeModel& model) {
  std::vector<bool> is_special(model.tokens.size(), false);
  for (const int32_t id : model.specials) is_special[id] = true;

  ordered_json added = ordered_json::array();
  ordered_json vocab = ordered_json::object();
  vocab.get_ref<ordered_json::object_t&>().reserve(model.tokens.size());
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    const std::string& token = model.tokens[id];
    // A special is in the vocab too (as in GPT-2's vocab.json): `tokenizers` takes an added token's id
    // from the vocab when it is there, and would otherwise number it after the vocab's size.
    append_unique_key(vocab, is_special[id] ? token : symbols_from_bytes(token), id);
    if (is_special[id]) {
      added.push_back({{"id", id},
                       {"content", token},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    }
  }
  ordered_json merges = ordered_json::array();
  merges.get_ref<ordered_json::array_t&>().reserve(model.merges.size());
  for (const BpeModel::Merge& m : model.merges) {
    merges.push_back(symbols_from_bytes(model.tokens[m.left]) + " " +
                     symbols_from_bytes(model.tokens[m.right]));
  }
  ordered_json bpe = {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", std::move(vocab)},
                      {"merges", std::move(merges)}};
  ordered_json doc = {{"version", "1.0"},          {"truncation", nullptr},
                      {"padding", nullptr},        {"added_tokens", std::move(added)},
                      {"normalizer", nullptr},     {"pre_tokenizer", pre_tokenizer_json(model.rule)},
                      {"post_processor", nullptr}, {"decoder", byte_level_component()},
                      {"model", std::move(bpe)}};
  return doc.dump(2) + "\n";
}

BpeModel bpe_model_from_json(const json& doc, const std::string& source) {
  if (!doc.is_object()) fail("{}: not a tokenizer.json (not a JSON object)", source);
  const json& model = doc.contains("model") ? doc["model"] : json();
  check_model_options(model, source);
  BpeModel out;

  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) fail("{}: its model has no vocab object", source);
  const json& vocab = *vocab_it;
  const std::vector<AddedToken> added = read_added_tokens(doc, source);

  // Ids: the vocab's, then each added token that is not in it, numbered on after the vocab as
  // `tokenizers` numbers them (it ignores the id written beside them).
  std::vector<const std::string*> text_of;  // by id
  const auto assign = [&](const std::string& text, int64_t id, std::string_view where) {
    if (id < 0 || id >= INT32_MAX) fail("{}: {} gives {} the id {}", source, where, quoted_name(text), id);
    if (static_cast<size_t>(id) >= text_of.size()) text_of.resize(id + 1, nullptr);
    if (text_of[id]) {
      fail("{}: {} gives the id {} to both {} and {}; ids must be unique", source, where, id,
           quoted_name(*text_of[id]), quoted_name(text));
    }
    text_of[id] = &text;
  };
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {  // it.key() refers into `vocab`, which stays
    if (!it->is_number_integer()) fail("{}: model.vocab {} has no integer id", source, quoted_name(it.key()));
    assign(it.key(), it->get<int64_t>(), "model.vocab");
  }
  for (const AddedToken& t : added) {
    const auto in_vocab = vocab.find(t.content);
    if (in_vocab != vocab.end()) {
      if (*in_vocab != t.id) {
        fail("{}: added_tokens gives {} the id {}, model.vocab {}", source, quoted_name(t.content), t.id,
             in_vocab->dump());
      }
      continue;
    }
    assign(t.content, t.id, "added_tokens");
  }
  for (size_t id = 0; id < text_of.size(); ++id) {
    if (!text_of[id])
      fail("{}: model.vocab and added_tokens have no token with id {}; ids must be dense", source, id);
  }
  int64_t next_added = static_cast<int64_t>(vocab.size());
  for (const AddedToken& t : added) {
    if (vocab.contains(t.content)) continue;
    if (t.id != next_added) {
      fail("{}: added_tokens gives {} the id {}, but a token that is not in model.vocab gets the next id, {}",
           source, quoted_name(t.content), t.id, next_added);
    }
    ++next_added;
  }

  out.tokens.resize(text_of.size());
  for (size_t id = 0; id < text_of.size(); ++id) {
    const std::string& text = *text_of[id];
    const bool special =
        std::any_of(added.begin(), added.end(), [&](const AddedToken& t) { return t.content == text; });
    if (special) {
      out.tokens[id] = text;
      out.specials.push_back(static_cast<int32_t>(id));
      continue;
    }
    std::optional<std::string> bytes = bytes_from_symbols(text);
    if (!bytes) {
      fail("{}: model.vocab {} is not written in byte-level symbols; is this a byte-level BPE?", source,
           quoted_name(text));
    }
    out.tokens[id] = std::move(*bytes);
  }

  const auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) fail("{}: its model has no merges array", source);
  const auto id_of = [&](const std::string& symbols, size_t index, std::string_view what) {
    const auto it = vocab.find(symbols);
    if (it == vocab.end()) {
      fail("{}: model.merges[{}] {} {}, which is not in model.vocab", source, index, what,
           quoted_name(symbols));
    }
    return it->get<int32_t>();
  };
  out.merges.reserve(merges_it->size());
  for (size_t i = 0; i < merges_it->size(); ++i) {
    const auto [left, right] = merge_symbols((*merges_it)[i], i, source);
    out.merges.push_back(
        {id_of(left, i, "names"), id_of(right, i, "names"), id_of(left + right, i, "makes")});
  }
  // The vocabulary first, then the pipeline around it, whose checks may depend on it.
  check_pipeline(doc, source);
  out.rule = rule_of(doc.value("pre_tokenizer", json()), !out.merges.empty(), source);
  return out;
}

nlohmann::json parse_tokenizer_json(std::string_view json_text, const std::string& source) {
  try {
    return parse_json_bounded(json_text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); a tokenizer.json from inkstone or Hugging Face is expected", source,
         e.what());
  } catch (const JsonTooDeep& e) {
    fail("{}: not a tokenizer.json ({}); a tokenizer.json from inkstone or Hugging Face is expected", source,
         e.what());
  }
}

BpeModel bpe_model_from_tokenizer_json(std::string_view json_text, const std::string& source) {
  return bpe_model_from_json(parse_tokenizer_json(json_text, source), source);
}

}  // namespace inkstone
