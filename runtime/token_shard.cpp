#include "runtime/token_shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "runtime/durable_file.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrepareAgain = "run inkstone prepare again";

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{p[i]} << (8 * i);
  return value;
}

std::string encode_header(const TokenShardHeader& h) {
  std::string out(kTokenShardMagic);
  put_le(out, h.version, 4);
  put_le(out, h.token_width, 4);
  put_le(out, h.vocab_size, 4);
  put_le(out, 0, 4);  // reserved
  put_le(out, h.token_count, 8);
  put_le(out, h.text_bytes, 8);
  out.append(reinterpret_cast<const char*>(h.tokenizer_sha256.data()), h.tokenizer_sha256.size());
  return out;
}

// A printable form of the magic bytes for the error message.
std::string describe_magic(const uint8_t* p) {
  std::string text;
  for (int i = 0; i < 8; ++i) {
    text += (p[i] >= 0x20 && p[i] < 0x7F) ? std::string(1, static_cast<char>(p[i]))
                                          : fmt::format("\\x{:02x}", p[i]);
  }
  return text;
}

class ShardFile {
 public:
  explicit ShardFile(const fs::path& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
      fail("{}: cannot open the token shard ({}); run inkstone prepare first", path_.string(),
           std::strerror(errno));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~ShardFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;

  uint64_t size() const { return size_; }

  void read_at(uint64_t offset, void* out, size_t bytes) const {
    auto* dst = static_cast<char*>(out);
    while (bytes > 0) {
      const ssize_t n = ::pread(fd_, dst, bytes, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fail("{}: cannot read the token shard ({})", path_.string(),
             n < 0 ? std::strerror(errno) : "file shrank");
      }
      dst += n;
      offset += static_cast<uint64_t>(n);
      bytes -= static_cast<size_t>(n);
    }
  }

 private:
  fs::path path_;
  int fd_;
  uint64_t size_ = 0;
};

TokenShardHeader read_and_check_header(const ShardFile& file, const fs::path& path) {
  const std::string name = path.string();
  if (file.size() < kTokenShardHeaderBytes) {
    fail("{}: file is {} bytes, shorter than the {}-byte shard header (truncated?); {}", name, file.size(),
         kTokenShardHeaderBytes, kPrepareAgain);
  }
  uint8_t raw[kTokenShardHeaderBytes];
  file.read_at(0, raw, sizeof raw);
  if (std::memcmp(raw, kTokenShardMagic.data(), kTokenShardMagic.size()) != 0) {
    fail("{}: not an inkstone token shard (magic '{}', expected '{}'); {}", name, describe_magic(raw),
         kTokenShardMagic, kPrepareAgain);
  }
  TokenShardHeader h;
  h.version = static_cast<uint32_t>(get_le(raw + 8, 4));
  h.token_width = static_cast<uint32_t>(get_le(raw + 12, 4));
  h.vocab_size = static_cast<uint32_t>(get_le(raw + 16, 4));
  const auto reserved = static_cast<uint32_t>(get_le(raw + 20, 4));
  h.token_count = get_le(raw + 24, 8);
  h.text_bytes = get_le(raw + 32, 8);
  std::memcpy(h.tokenizer_sha256.data(), raw + 40, h.tokenizer_sha256.size());

  if (h.version != kTokenShardVersion) {
    fail("{}: shard format version {} is not supported (this build reads version {}); {}", name, h.version,
         kTokenShardVersion, kPrepareAgain);
  }
  if (h.token_width != 2 && h.token_width != 4) {
    fail("{}: token width {} bytes is invalid (must be 2 or 4); {}", name, h.token_width, kPrepareAgain);
  }
  if (h.vocab_size == 0 || h.vocab_size > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    fail("{}: vocab size {} is invalid; {}", name, h.vocab_size, kPrepareAgain);
  }
  if (h.token_width != token_width_for_vocab(h.vocab_size)) {
    fail("{}: token width {} bytes does not match the vocab size {} (which takes {} bytes); {}", name,
         h.token_width, h.vocab_size, token_width_for_vocab(h.vocab_size), kPrepareAgain);
  }
  if (reserved != 0) fail("{}: reserved header field is {}, not 0; {}", name, reserved, kPrepareAgain);

  const uint64_t max_tokens = (std::numeric_limits<uint64_t>::max() - kTokenShardHeaderBytes) / h.token_width;
  if (h.token_count > max_tokens) {
    fail("{}: header promises {} tokens, more than any file can hold; {}", name, h.token_count,
         kPrepareAgain);
  }
  const uint64_t expected_size = kTokenShardHeaderBytes + h.token_count * h.token_width;
  if (file.size() != expected_size) {
    fail("{}: file is {} bytes but the header promises {} ({}); {}", name, file.size(), expected_size,
         file.size() < expected_size ? "truncated?" : "trailing bytes", kPrepareAgain);
  }
  return h;
}

}  // namespace

uint32_t token_width_for_vocab(uint32_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

void write_token_shard(const fs::path& path, std::span<const int32_t> tokens, uint32_t vocab_size,
                       uint64_t text_bytes, const Sha256Digest& tokenizer_sha256) {
  if (vocab_size == 0 || vocab_size > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    fail("{}: cannot write a shard for vocab size {}", path.string(), vocab_size);
  }
  TokenShardHeader header;
  header.token_width = token_width_for_vocab(vocab_size);
  header.vocab_size = vocab_size;
  header.token_count = tokens.size();
  header.text_bytes = text_bytes;
  header.tokenizer_sha256 = tokenizer_sha256;

  std::string bytes = encode_header(header);
  bytes.reserve(kTokenShardHeaderBytes + tokens.size() * header.token_width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= vocab_size) {
      fail("{}: token {} at index {} is outside the vocab size {}; the tokenizer and the shard disagree",
           path.string(), tokens[i], i, vocab_size);
    }
    put_le(bytes, static_cast<uint32_t>(tokens[i]), static_cast<int>(header.token_width));
  }
  write_file_durably(path, bytes);
}

TokenShardHeader read_token_shard_header(const fs::path& path) {
  const ShardFile file(path);
  return read_and_check_header(file, path);
}

TokenShard read_token_shard(const fs::path& path,
                            const std::optional<ExpectedTokenizer>& expected_tokenizer) {
  const ShardFile file(path);
  TokenShard shard;
  shard.header = read_and_check_header(file, path);
  const TokenShardHeader& h = shard.header;
  if (expected_tokenizer && expected_tokenizer->sha256 != h.tokenizer_sha256) {
    fail("{}: made with tokenizer sha256 {}, but the tokenizer in use is {}; {}", path.string(),
         to_hex(h.tokenizer_sha256), to_hex(expected_tokenizer->sha256), kPrepareAgain);
  }
  if (expected_tokenizer && expected_tokenizer->vocab_size != h.vocab_size) {
    fail("{}: header says vocab size {}, but the tokenizer in use has {}; {}", path.string(), h.vocab_size,
         expected_tokenizer->vocab_size, kPrepareAgain);
  }

  // Read in chunks so that the raw bytes never need a second whole-shard buffer.
  constexpr size_t kChunkTokens = size_t{1} << 20;
  shard.tokens.resize(h.token_count);
  std::vector<uint8_t> chunk(std::min<uint64_t>(h.token_count, kChunkTokens) * h.token_width);
  for (uint64_t first = 0; first < h.token_count; first += kChunkTokens) {
    const size_t count = std::min<uint64_t>(kChunkTokens, h.token_count - first);
    file.read_at(kTokenShardHeaderBytes + first * h.token_width, chunk.data(), count * h.token_width);
    for (size_t i = 0; i < count; ++i) {
      const uint64_t token = get_le(chunk.data() + i * h.token_width, static_cast<int>(h.token_width));
      if (token >= h.vocab_size) {
        fail("{}: token {} at index {} is >= the vocab size {}; the shard does not match its tokenizer, {}",
             path.string(), token, first + i, h.vocab_size, kPrepareAgain);
      }
      shard.tokens[first + i] = static_cast<int32_t>(token);
    }
  }
  return shard;
}

}  // namespace inkstone
