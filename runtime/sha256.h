// SHA-256 (FIPS 180-4), written here so that hashes of tokenizers, shards and sources need no
// crypto library. Streaming (`Sha256`) for large inputs, one-shot helpers for the rest.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace inkstone {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // Pads, returns the digest and leaves the object spent: call reset() to hash something else.
  Sha256Digest finish();
  void reset();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;  // bytes waiting in buffer_
  uint64_t total_bytes_ = 0;
};

Sha256Digest sha256(std::string_view data);
std::string sha256_hex(std::string_view data);

std::string to_hex(const Sha256Digest& digest);  // 64 lowercase hex digits
// The inverse of to_hex; throws inkstone::Error naming `what` unless `hex` is 64 hex digits.
Sha256Digest sha256_from_hex(std::string_view hex, std::string_view what);

}  // namespace inkstone
