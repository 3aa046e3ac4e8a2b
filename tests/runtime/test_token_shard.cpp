#include "runtime/token_shard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

const Sha256Digest kHash = sha256("tokenizer");

std::vector<int32_t> sample_tokens(size_t n, int32_t vocab) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(vocab));
  t[0] = vocab - 1;  // the largest id must fit
  return t;
}

void put_u32(std::string& bytes, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<char>(v >> (8 * i));
}
void put_u64(std::string& bytes, size_t offset, uint64_t v) {
  for (int i = 0; i < 8; ++i) bytes[offset + i] = static_cast<char>(v >> (8 * i));
}

using testing::error_of;

TEST(TokenShard, RoundTripsTwoByteTokens) {
  testing::TempDir dir;
  const fs::path path = dir / "train_000.bin";
  const auto tokens = sample_tokens(1000, 257);
  write_token_shard(path, tokens, 257, 987, kHash);
  EXPECT_EQ(fs::file_size(path), 72u + 2 * 1000);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  const TokenShard shard = read_token_shard(path, ExpectedTokenizer{kHash, 257});
  EXPECT_EQ(shard.tokens, tokens);
  EXPECT_EQ(shard.header.version, 1u);
  EXPECT_EQ(shard.header.token_width, 2u);
  EXPECT_EQ(shard.header.vocab_size, 257u);
  EXPECT_EQ(shard.header.token_count, 1000u);
  EXPECT_EQ(shard.header.text_bytes, 987u);
  EXPECT_EQ(shard.header.tokenizer_sha256, kHash);
  EXPECT_EQ(read_token_shard_header(path).token_count, 1000u);
}

TEST(TokenShard, RoundTripsFourByteTokensAndTheWidthBoundary) {
  testing::TempDir dir;
  const auto big = sample_tokens(3000, 70000);
  write_token_shard(dir / "big.bin", big, 70000, 1, kHash);
  EXPECT_EQ(fs::file_size(dir / "big.bin"), 72u + 4 * 3000);
  EXPECT_EQ(read_token_shard(dir / "big.bin").tokens, big);

  EXPECT_EQ(token_width_for_vocab(65536), 2u);
  EXPECT_EQ(token_width_for_vocab(65537), 4u);
  const auto edge = sample_tokens(10, 65536);  // id 65535 still fits in 16 bits
  write_token_shard(dir / "edge.bin", edge, 65536, 0, kHash);
  EXPECT_EQ(read_token_shard(dir / "edge.bin").tokens, edge);
}

TEST(TokenShard, EmptyShardRoundTrips) {
  testing::TempDir dir;
  write_token_shard(dir / "empty.bin", {}, 257, 0, kHash);
  EXPECT_EQ(fs::file_size(dir / "empty.bin"), 72u);
  EXPECT_TRUE(read_token_shard(dir / "empty.bin").tokens.empty());
}

TEST(TokenShard, LayoutIsTheDocumentedLittleEndianHeader) {
  testing::TempDir dir;
  const std::vector<int32_t> tokens = {0x0102, 256, 7};
  write_token_shard(dir / "x.bin", tokens, 300, 0x0A0B0C0D, kHash);
  const std::string b = testing::read_file(dir / "x.bin");
  ASSERT_EQ(b.size(), 72u + 6);
  EXPECT_EQ(b.substr(0, 8), "INKSTOK1");
  EXPECT_EQ(b.substr(8, 4), std::string("\x01\0\0\0", 4));           // version
  EXPECT_EQ(b.substr(12, 4), std::string("\x02\0\0\0", 4));          // width
  EXPECT_EQ(b.substr(16, 4), std::string("\x2C\x01\0\0", 4));        // vocab 300
  EXPECT_EQ(b.substr(20, 4), std::string(4, '\0'));                  // reserved
  EXPECT_EQ(b.substr(24, 8), std::string("\x03\0\0\0\0\0\0\0", 8));  // count
  EXPECT_EQ(b.substr(32, 8), std::string("\x0D\x0C\x0B\x0A\0\0\0\0", 8));
  EXPECT_EQ(b.substr(40, 32), std::string(kHash.begin(), kHash.end()));
  EXPECT_EQ(b.substr(72), std::string("\x02\x01\x00\x01\x07\x00", 6));
}

TEST(TokenShard, WriterRejectsTokensOutsideTheVocabulary) {
  testing::TempDir dir;
  const std::vector<int32_t> too_big = {1, 257};
  const std::string message = error_of([&] { write_token_shard(dir / "w.bin", too_big, 257, 0, kHash); });
  EXPECT_NE(message.find("w.bin"), std::string::npos) << message;
  EXPECT_NE(message.find("257"), std::string::npos) << message;
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(write_token_shard(dir / "w.bin", negative, 257, 0, kHash), Error);
  EXPECT_FALSE(fs::exists(dir / "w.bin"));
}

// Every corruption is caught at load with one message that names the file and the problem.
TEST(TokenShard, EveryCorruptionFailsNamingTheFile) {
  testing::TempDir dir;
  const fs::path good = dir / "good.bin";
  write_token_shard(good, sample_tokens(100, 257), 257, 100, kHash);
  const std::string original = testing::read_file(good);

  struct Case {
    std::string name;
    std::function<void(std::string&)> corrupt;
    std::string expected;
  };
  const Case cases[] = {
      {"magic", [](std::string& b) { b[0] = 'X'; }, "magic"},
      {"version", [](std::string& b) { put_u32(b, 8, 2); }, "version 2"},
      {"width3", [](std::string& b) { put_u32(b, 12, 3); }, "token width 3"},
      {"width4", [](std::string& b) { put_u32(b, 12, 4); }, "does not match the vocab size 257"},
      {"vocab_too_big_for_width", [](std::string& b) { put_u32(b, 16, 70000); }, "vocab size 70000"},
      {"vocab0", [](std::string& b) { put_u32(b, 16, 0); }, "vocab size 0"},
      {"reserved", [](std::string& b) { put_u32(b, 20, 1); }, "reserved"},
      {"truncated", [](std::string& b) { b.pop_back(); },
       "file is 271 bytes but the header promises 272 (truncated?)"},
      {"extra", [](std::string& b) { b += "xy"; }, "file is 274 bytes but the header promises 272 (trailing"},
      {"count", [](std::string& b) { put_u64(b, 24, 101); }, "promises 274"},
      {"huge_count", [](std::string& b) { put_u64(b, 24, uint64_t{1} << 63); }, "tokens"},
      {"header_cut", [](std::string& b) { b.resize(40); }, "shorter than the 72-byte shard header"},
      {"token", [](std::string& b) { b[72 + 2 * 5] = 0x2C, b[72 + 2 * 5 + 1] = 0x01; },
       "token 300 at index 5 is >= the vocab size 257"},
  };
  for (const Case& c : cases) {
    std::string bytes = original;
    c.corrupt(bytes);
    const fs::path path = dir / (c.name + ".bin");
    testing::write_file(path, bytes);
    const std::string message = error_of([&] { read_token_shard(path); });
    EXPECT_NE(message.find(path.string() + ": "), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find("inkstone prepare"), std::string::npos) << c.name << ": " << message;
  }

  const std::string mismatch = error_of([&] {
    read_token_shard(good, ExpectedTokenizer{sha256("another tokenizer"), 257});
  });
  EXPECT_NE(mismatch.find(good.string()), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find(to_hex(kHash)), std::string::npos) << mismatch;

  const std::string missing = error_of([&] { read_token_shard(dir / "missing.bin"); });
  EXPECT_NE(missing.find((dir / "missing.bin").string()), std::string::npos) << missing;
}

// The header's vocab size is checked apart from the hash: a shard whose vocab field was raised (and a
// token with it) is self-consistent, so only the tokenizer in use can tell that it is wrong.
TEST(TokenShard, VocabSizeMustMatchTheExpectedTokenizer) {
  testing::TempDir dir;
  const fs::path path = dir / "raised.bin";
  std::string bytes = [&] {
    write_token_shard(path, sample_tokens(100, 257), 257, 100, kHash);
    return testing::read_file(path);
  }();
  put_u32(bytes, 16, 65535);
  bytes[72 + 2 * 3] = static_cast<char>(60000 & 0xFF), bytes[72 + 2 * 3 + 1] = static_cast<char>(60000 >> 8);
  testing::write_file(path, bytes);

  EXPECT_EQ(read_token_shard(path).tokens[3], 60000);  // consistent with its own header
  const std::string message = error_of([&] { read_token_shard(path, ExpectedTokenizer{kHash, 257}); });
  EXPECT_NE(message.find(path.string() + ": "), std::string::npos) << message;
  EXPECT_NE(message.find("vocab size 65535"), std::string::npos) << message;
  EXPECT_NE(message.find("has 257"), std::string::npos) << message;
}

}  // namespace
}  // namespace inkstone
