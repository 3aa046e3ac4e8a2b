#include "runtime/text_overlap.h"

#include <cstdint>

#include "runtime/error.h"
#include "runtime/unicode_tables.h"

namespace inkstone {
namespace {

// `text` without its whitespace, and where each of its characters starts (one entry past the end).
struct Compacted {
  std::string text;
  std::vector<size_t> starts;
};

// The text is valid UTF-8 (prepare has checked or repaired it), so the lead byte gives the length.
Compacted compact(std::string_view text) {
  Compacted out;
  out.text.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto b0 = static_cast<uint8_t>(text[i]);
    const size_t length = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    char32_t cp = length == 1 ? b0 : length == 2 ? b0 & 0x1F : length == 3 ? b0 & 0x0F : b0 & 0x07;
    for (size_t k = 1; k < length && i + k < text.size(); ++k) {
      cp = cp << 6 | (static_cast<uint8_t>(text[i + k]) & 0x3F);
    }
    if (char_class(cp) != CharClass::Space) {
      out.starts.push_back(out.text.size());
      out.text.append(text.substr(i, length));
    }
    i += length;
  }
  out.starts.push_back(out.text.size());
  return out;
}

// Calls visit(run) for each run of `chars` characters; stops early when visit returns true.
template <class Visit>
bool for_each_run(const Compacted& c, size_t chars, Visit&& visit) {
  const size_t count = c.starts.size() - 1;
  for (size_t i = 0; i + chars <= count; ++i) {
    const std::string_view run(c.text.data() + c.starts[i], c.starts[i + chars] - c.starts[i]);
    if (visit(run)) return true;
  }
  return false;
}

}  // namespace

TextOverlapIndex::TextOverlapIndex(const std::vector<std::string_view>& references, size_t chars)
    : chars_(chars) {
  if (chars == 0) fail("internal: TextOverlapIndex needs runs of at least one character");
  for (const std::string_view reference : references) {
    for_each_run(compact(reference), chars_, [&](std::string_view run) {
      runs_.emplace(run);
      return false;
    });
  }
}

bool TextOverlapIndex::overlaps(std::string_view text) const {
  return for_each_run(compact(text), chars_, [&](std::string_view run) { return runs_.contains(run); });
}

}  // namespace inkstone
