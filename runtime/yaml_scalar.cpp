#include "runtime/yaml_scalar.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

namespace inkstone {
namespace {

// YAML writes "+5" and "5" alike; std::from_chars does not take the '+'.
std::string_view drop_plus(std::string_view text) {
  return text.size() > 1 && text[0] == '+' && text[1] != '-' ? text.substr(1) : text;
}

template <class T>
std::optional<T> parse_exact(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

bool is_reserved_word(std::string_view text) {
  // Spellings YAML 1.1 or 1.2 readers take as null or a bool.
  static constexpr std::array<std::string_view, 11> kWords = {"null", "true", "false", "yes", "no", "on",
                                                              "off",  "y",    "n",     "~",   ""};
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(kWords.begin(), kWords.end(), lower) != kWords.end();
}

bool is_plain_safe(std::string_view text) {
  if (text.empty() || is_reserved_word(text) || scalar_to_double(text)) return false;
  const unsigned char first = static_cast<unsigned char>(text[0]);
  if (!(std::isalpha(first) || first == '_' || first == '/' || first == '.')) return false;
  return std::all_of(text.begin(), text.end(), [](char ch) {
    const unsigned char c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-' || c == '+';
  });
}

std::string escape_double_quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02X}", c);
        } else {
          out += ch;  // UTF-8 bytes stay as they are
        }
    }
  }
  return out;
}

}  // namespace

std::optional<double> scalar_to_double(std::string_view text) {
  text = drop_plus(text);
  // from_chars also reads "inf", "nan" and "infinity", which are not YAML numbers.
  if (text.empty() || text.find_first_not_of("0123456789.eE+-") != std::string_view::npos)
    return std::nullopt;
  auto value = parse_exact<double>(text);
  if (!value || !std::isfinite(*value)) return std::nullopt;
  return value;
}

std::optional<int64_t> scalar_to_int64(std::string_view text) {
  if (auto exact = parse_exact<int64_t>(drop_plus(text))) return exact;
  auto number = scalar_to_double(text);
  // 2^63 is exact in a double; anything at or past it does not fit.
  if (!number || std::trunc(*number) != *number || *number >= 0x1p63 || *number < -0x1p63)
    return std::nullopt;
  return static_cast<int64_t>(*number);
}

std::optional<uint64_t> scalar_to_uint64(std::string_view text) {
  if (auto exact = parse_exact<uint64_t>(drop_plus(text))) return exact;
  auto number = scalar_to_double(text);
  if (!number || std::trunc(*number) != *number || *number >= 0x1p64 || *number < 0) return std::nullopt;
  return static_cast<uint64_t>(*number);
}

std::string yaml_quote(std::string_view text) {
  if (is_plain_safe(text)) return std::string(text);
  return fmt::format("\"{}\"", escape_double_quoted(text));
}

std::string describe(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return "nothing";
    case YamlNode::Kind::kSequence:
      return "a list";
    case YamlNode::Kind::kMapping:
      return "a mapping";
    case YamlNode::Kind::kScalar:
      break;
  }
  if (!node.quoted && scalar_to_double(node.text)) return node.text;
  constexpr size_t kMaxShown = 60;
  std::string shown = escape_double_quoted(node.text.substr(0, kMaxShown));
  return fmt::format("\"{}{}\"", shown, node.text.size() > kMaxShown ? "..." : "");
}

}  // namespace inkstone
