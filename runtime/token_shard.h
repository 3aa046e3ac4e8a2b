// Token shards: the tokens of a prepared corpus, read by training and evaluation.
//
// Layout (all integers little-endian), 72-byte header then the tokens:
//   0  char[8]  magic "INKSTOK1"
//   8  u32      format version (1)
//  12  u32      token width in bytes: 2 when vocab_size <= 65536, else 4
//  16  u32      vocab size (every token is < this)
//  20  u32      reserved, 0
//  24  u64      token count
//  32  u64      bytes of cleaned source text the tokens encode
//  40  u8[32]   sha256 of the canonical tokenizer.json (see tokenizer_hash)
//  72  tokens   token_count x token width
// The reader checks every field and the exact file size, so a stale, truncated or foreign file is
// an error naming the file at load time rather than a wrong token (or a crash) on the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/sha256.h"

namespace inkstone {

inline constexpr std::string_view kTokenShardMagic = "INKSTOK1";
inline constexpr uint32_t kTokenShardVersion = 1;
inline constexpr size_t kTokenShardHeaderBytes = 72;

struct TokenShardHeader {
  uint32_t version = kTokenShardVersion;
  uint32_t token_width = 0;
  uint32_t vocab_size = 0;
  uint64_t token_count = 0;
  uint64_t text_bytes = 0;
  Sha256Digest tokenizer_sha256{};
};

struct TokenShard {
  TokenShardHeader header;
  std::vector<int32_t> tokens;
};

uint32_t token_width_for_vocab(uint32_t vocab_size);  // 2 or 4

// Writes PATH.tmp, fsyncs it and renames it to `path`. Throws inkstone::Error (naming the file) when
// a token is outside [0, vocab_size) or the file cannot be written.
void write_token_shard(const std::filesystem::path& path, std::span<const int32_t> tokens,
                       uint32_t vocab_size, uint64_t text_bytes, const Sha256Digest& tokenizer_sha256);

// The header, checked against itself and the file size (not the tokens). Throws inkstone::Error.
TokenShardHeader read_token_shard_header(const std::filesystem::path& path);

// The tokenizer a shard must have been made with. Both fields are checked: the vocab size is in the
// header apart from the hash, so a shard whose vocab field was altered would otherwise admit tokens
// the model's embedding table does not have.
struct ExpectedTokenizer {
  Sha256Digest sha256{};
  uint32_t vocab_size = 0;
};

// Header and tokens, every token checked against the header's vocab size, and the header against
// `expected_tokenizer` when given. Throws inkstone::Error naming the file and the problem.
TokenShard read_token_shard(const std::filesystem::path& path,
                            const std::optional<ExpectedTokenizer>& expected_tokenizer = std::nullopt);

}  // namespace inkstone
