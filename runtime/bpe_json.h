// A BpeModel as a Hugging Face tokenizer.json, both ways (the public loader is
// bpe_model_from_tokenizer_json in runtime/bpe_tokenizer.h), and the byte-level symbol strings the
// vocabulary and merges of that format are written in.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "runtime/bpe_tokenizer.h"

namespace inkstone {

// Token bytes as GPT-2's byte-level symbols ("Ġthe" for " the"), and back; nullopt when `symbols`
// holds a character that is not one of the 256 symbols.
std::string symbols_from_bytes(std::string_view bytes);
std::optional<std::string> bytes_from_symbols(std::string_view symbols);

// The regex of the Split pre-tokenizer that makes gpt2-cjk in Hugging Face terms: one character
// class of kCjkRanges, as \x{...} escapes (Oniguruma syntax, which `tokenizers` uses).
std::string cjk_split_regex();

// The canonical tokenizer.json text: keys in a fixed order, vocab in id order, merges in rank order.
std::string bpe_model_to_json(const BpeModel& model);

// Parses a tokenizer.json (depth-bounded); throws inkstone::Error naming `source` when it is not JSON.
nlohmann::json parse_tokenizer_json(std::string_view json_text, const std::string& source);

// From a parsed tokenizer.json; throws inkstone::Error naming `source` and what is unsupported or
// inconsistent. The model is not yet validated as a whole (BpeTokenizer's constructor does that).
BpeModel bpe_model_from_json(const nlohmann::json& doc, const std::string& source);

}  // namespace inkstone
