#include "infer/utf8_stream.h"

#include <cstdint>

namespace inkstone {
namespace {

// Bytes of the sequence `lead` starts, and the range its second byte must fall in (Unicode Table 3-7,
// which rules out overlongs, surrogates and code points above U+10FFFF); length 0 when `lead`
// cannot start a multi-byte sequence.
struct LeadByte {
  size_t length = 0;
  uint8_t second_min = 0x80, second_max = 0xBF;
};

LeadByte classify_lead(uint8_t lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {2};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead >= 0xE1 && lead <= 0xEF) return {3};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  if (lead >= 0xF1 && lead <= 0xF3) return {4};
  return {};
}

bool is_continuation(uint8_t byte) {
  return (byte & 0xC0) == 0x80;
}

}  // namespace

size_t incomplete_utf8_suffix(std::string_view bytes) {
  // A multi-byte sequence is at most 4 bytes, so an incomplete one starts within the last 3.
  for (size_t back = 1; back <= 3 && back <= bytes.size(); ++back) {
    const auto lead = static_cast<uint8_t>(bytes[bytes.size() - back]);
    if (is_continuation(lead)) continue;
    const LeadByte info = classify_lead(lead);
    if (back >= info.length) return 0;  // ASCII, an invalid lead, or a sequence with all its bytes
    for (size_t i = 1; i < back; ++i) {
      const auto b = static_cast<uint8_t>(bytes[bytes.size() - back + i]);
      const uint8_t min = i == 1 ? info.second_min : 0x80;
      const uint8_t max = i == 1 ? info.second_max : 0xBF;
      if (b < min || b > max) return 0;  // already ill-formed: waiting would not repair it
    }
    return back;
  }
  return 0;  // only continuation bytes at the end: nothing they could still complete
}

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  const size_t hold = incomplete_utf8_suffix(pending_);
  std::string ready = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string Utf8Stream::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace inkstone
