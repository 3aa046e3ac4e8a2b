// UTF-8 validation and repair. Well-formed means Unicode's Table 3-7: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace inkstone {

// The byte offset where the first ill-formed sequence starts, or nullopt when `text` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view text);

struct Utf8Repair {
  std::string text;
  size_t replacements = 0;  // U+FFFD characters inserted
};

// Replaces each maximal subpart of an ill-formed sequence with U+FFFD (Unicode 15, section 3.9
// "U+FFFD Substitution of Maximal Subparts", the practice WHATWG's decoder follows): a truncated
// but otherwise valid prefix such as E6 97 becomes one U+FFFD, a byte that cannot start or continue
// one becomes one U+FFFD each.
Utf8Repair repair_utf8(std::string_view text);

}  // namespace inkstone
