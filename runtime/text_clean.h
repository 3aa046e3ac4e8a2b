// Cleaning of corpus text before tokenization: a UTF-8 byte order mark at the start is dropped,
// line ends become LF, and terminal escape sequences (colour codes of fortune files, terminal
// logs) are removed. Removed spans start and end on ASCII bytes, so valid UTF-8 stays valid UTF-8.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace inkstone {

struct CleanStats {
  size_t escapes_removed = 0;    // escape sequences (each counts once, whatever its length)
  size_t line_ends_changed = 0;  // CRLF or lone CR turned into LF
  size_t boms_removed = 0;       // 0 or 1 per text

  CleanStats& operator+=(const CleanStats& other);
};

// Escape sequences recognised (ECMA-48):
//   CSI     ESC [ parameters(0x30-0x3F)* intermediates(0x20-0x2F)* final(0x40-0x7E), e.g. "\x1b[32m",
//   "\x1b[m" strings ESC ] (OSC), ESC P (DCS), ESC X, ESC ^, ESC _ ... ended by BEL or ESC \ (ST) others  ESC
//   intermediates(0x20-0x2F)* final(0x30-0x7E), e.g. "\x1b=", "\x1b(B"
// A sequence cut short by any other byte is removed up to that byte, which stays. An unterminated
// string sequence (no BEL or ST before the end of the line) loses only its introducer, because what
// follows is more likely prose than a window title. A lone ESC is removed. No ESC byte survives.
std::string clean_text(std::string_view text, CleanStats& stats);

}  // namespace inkstone
