#include "runtime/byte_level.h"

#include <unordered_map>

namespace inkstone {
namespace {

bool maps_to_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

std::string encode_utf8(char32_t code_point) {  // code points here are below U+0800
  std::string out;
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
  return out;
}

std::array<std::string, 256> build_symbols() {
  std::array<std::string, 256> symbols;
  char32_t next_extra = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    symbols[byte] = encode_utf8(maps_to_itself(byte) ? static_cast<char32_t>(byte) : next_extra++);
  }
  return symbols;
}

}  // namespace

const std::array<std::string, 256>& byte_level_symbols() {
  static const std::array<std::string, 256> symbols = build_symbols();
  return symbols;
}

std::optional<uint8_t> byte_from_symbol(std::string_view symbol) {
  static const auto table = [] {
    std::unordered_map<std::string_view, uint8_t> t;
    const auto& symbols = byte_level_symbols();
    for (int byte = 0; byte < 256; ++byte) t.emplace(symbols[byte], static_cast<uint8_t>(byte));
    return t;
  }();
  const auto it = table.find(symbol);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

}  // namespace inkstone
