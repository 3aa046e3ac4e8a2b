// Reading JSON from files that may be hostile. nlohmann::json recurses on nesting (copying and dumping
// values), so 200,000 '[' in a checkpoint header would overflow the stack and crash instead of being
// an error: every file inkstone reads is parsed with a nesting limit, and values shown in messages
// are cut short and kept on one line.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace inkstone {

// Deeper than any file inkstone reads (tokenizer.json, the deepest, nests about 5 levels).
inline constexpr int kMaxJsonDepth = 64;

struct JsonTooDeep : std::runtime_error {
  JsonTooDeep() : std::runtime_error("it nests deeper than 64 levels") {}
};

// nlohmann::json::parse with the nesting limit. Throws nlohmann::json::exception on invalid JSON and
// JsonTooDeep on nesting deeper than kMaxJsonDepth.
template <class Json = nlohmann::json>
Json parse_json_bounded(std::string_view text) {
  return Json::parse(text, [](int depth, typename Json::parse_event_t, Json&) {
    if (depth >= kMaxJsonDepth) throw JsonTooDeep();  // depth counts from 0 at the outermost value
    return true;
  });
}

// A value for a one-line message, escaped and cut to `max_chars` at a UTF-8 character boundary.
// Only for values parsed with parse_json_bounded: printing recurses over nesting too.
template <class Json>
std::string json_excerpt(const Json& value, size_t max_chars = 80) {
  std::string text = value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
  if (text.size() <= max_chars) return text;
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

// A name (a tensor's, a key) quoted and escaped for a one-line message, cut short.
inline std::string quoted_name(std::string_view name, size_t max_chars = 80) {
  return json_excerpt(nlohmann::json(std::string(name)), max_chars);
}

}  // namespace inkstone
