#include "runtime/text_clean.h"

namespace inkstone {
namespace {

constexpr char kEsc = '\x1b';
constexpr char kBel = '\x07';
constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

bool in_range(char c, unsigned lo, unsigned hi) {
  const auto u = static_cast<unsigned char>(c);
  return u >= lo && u <= hi;
}

bool starts_string_sequence(char c) {
  return c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_';
}

// Length of the escape sequence that starts with the ESC at text[pos] (see the header for the rules).
size_t escape_length(std::string_view text, size_t pos) {
  size_t i = pos + 1;
  if (i == text.size()) return 1;
  const char kind = text[i];
  if (kind == '[') {
    ++i;
    while (i < text.size() && in_range(text[i], 0x30, 0x3F)) ++i;
    while (i < text.size() && in_range(text[i], 0x20, 0x2F)) ++i;
    if (i < text.size() && in_range(text[i], 0x40, 0x7E)) ++i;
    return i - pos;
  }
  if (starts_string_sequence(kind)) {
    for (size_t j = i + 1; j < text.size(); ++j) {
      if (text[j] == kBel) return j + 1 - pos;
      if (text[j] == kEsc && j + 1 < text.size() && text[j + 1] == '\\') return j + 2 - pos;
      if (text[j] == '\n' || text[j] == '\r') break;
    }
    return 2;
  }
  while (i < text.size() && in_range(text[i], 0x20, 0x2F)) ++i;
  if (i < text.size() && in_range(text[i], 0x30, 0x7E)) ++i;
  return i - pos;
}

}  // namespace

CleanStats& CleanStats::operator+=(const CleanStats& other) {
  escapes_removed += other.escapes_removed;
  line_ends_changed += other.line_ends_changed;
  boms_removed += other.boms_removed;
  return *this;
}

std::string clean_text(std::string_view text, CleanStats& stats) {
  if (text.starts_with(kByteOrderMark)) {
    text.remove_prefix(kByteOrderMark.size());
    ++stats.boms_removed;
  }
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const char c = text[pos];
    if (c == kEsc) {
      pos += escape_length(text, pos);
      ++stats.escapes_removed;
    } else if (c == '\r') {
      out.push_back('\n');
      ++stats.line_ends_changed;
      pos += (pos + 1 < text.size() && text[pos + 1] == '\n') ? 2 : 1;
    } else {
      // Copy the run of ordinary bytes in one go; most text has no ESC or CR at all.
      size_t end = pos + 1;
      while (end < text.size() && text[end] != kEsc && text[end] != '\r') ++end;
      out.append(text.substr(pos, end - pos));
      pos = end;
    }
  }
  return out;
}

}  // namespace inkstone
