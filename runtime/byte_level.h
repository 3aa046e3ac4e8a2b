// GPT-2's byte-to-unicode table: every byte gets a printable unicode symbol, so that a BPE
// vocabulary over bytes can be stored as JSON strings. Printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100.. in byte order (`bytes_to_unicode` in openai/gpt-2 encoder.py).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace inkstone {

// The UTF-8 encoding of the symbol that stands for each byte.
const std::array<std::string, 256>& byte_level_symbols();

// The byte a symbol stands for; nullopt when `symbol` is not one of the 256.
std::optional<uint8_t> byte_from_symbol(std::string_view symbol);

}  // namespace inkstone
