#include "runtime/utf8.h"

#include <cstdint>

namespace inkstone {
namespace {

struct Sequence {
  size_t length;  // bytes the sequence (or the maximal subpart of an ill-formed one) spans, >= 1
  bool valid;
};

// Reads the sequence that starts at text[pos] following Table 3-7 of the Unicode standard: the lead
// byte fixes the length and the allowed range of the second byte (which is what rules out
// overlongs, surrogates and code points above U+10FFFF); later bytes are plain continuations.
Sequence read_sequence(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  if (lead < 0x80) return {1, true};

  size_t length = 0;
  uint8_t second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // below: overlong
    if (lead == 0xED) second_max = 0x9F;  // above: surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // below: overlong
    if (lead == 0xF4) second_max = 0x8F;  // above: beyond U+10FFFF
  } else {
    return {1, false};  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }

  for (size_t i = 1; i < length; ++i) {
    if (pos + i >= text.size()) return {i, false};
    const uint8_t b = byte(pos + i);
    const uint8_t min = i == 1 ? second_min : 0x80;
    const uint8_t max = i == 1 ? second_max : 0xBF;
    if (b < min || b > max) return {i, false};
  }
  return {length, true};
}

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Sequence s = read_sequence(text, pos);
    if (!s.valid) return pos;
    pos += s.length;
  }
  return std::nullopt;
}

Utf8Repair repair_utf8(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  Utf8Repair result;
  result.text.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Sequence s = read_sequence(text, pos);
    if (s.valid) {
      result.text.append(text.substr(pos, s.length));
    } else {
      result.text.append(kReplacement);
      ++result.replacements;
    }
    pos += s.length;
  }
  return result;
}

}  // namespace inkstone
