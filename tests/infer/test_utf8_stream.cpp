// Utf8Stream: pieces never end inside a character that may still complete, whatever the chunking,
// and the pieces always add up to the bytes received.
#include "infer/utf8_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/tokenizer.h"
#include "runtime/utf8.h"

namespace inkstone {
namespace {

// Feeds `text` in chunks of `chunk` bytes; returns every non-empty piece, the final flush included.
std::vector<std::string> stream_pieces(std::string_view text, size_t chunk) {
  Utf8Stream stream;
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size(); i += chunk) {
    std::string piece = stream.push(text.substr(i, chunk));
    if (!piece.empty()) pieces.push_back(std::move(piece));
  }
  std::string rest = stream.flush();
  if (!rest.empty()) pieces.push_back(std::move(rest));
  return pieces;
}

std::string concatenate(const std::vector<std::string>& pieces) {
  std::string all;
  for (const std::string& p : pieces) all += p;
  return all;
}

TEST(Utf8Stream, ByteTokensOfMultiByteCharactersComeOutAsWholeCharacters) {
  // 2-, 3- and 4-byte characters (ü, 中, 🙂) and the edge leads E0, ED, F0, F4 with their valid ranges.
  const std::string text =
      "a ü 中文，春眠 🙂 \xE0\xA0\x80 \xED\x9F\xBF \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF z";
  ASSERT_FALSE(find_invalid_utf8(text).has_value());
  ByteTokenizer tokenizer;
  Utf8Stream stream;
  std::string all;
  for (const int32_t id : tokenizer.encode(text)) {
    const std::string piece = stream.push(tokenizer.decode(std::span<const int32_t>(&id, 1)));
    EXPECT_FALSE(find_invalid_utf8(piece).has_value()) << "a piece split a character";
    all += piece;
  }
  EXPECT_EQ(stream.flush(), "");
  EXPECT_EQ(all, text);
}

TEST(Utf8Stream, AnyChunkingGivesValidPiecesThatAddUp) {
  const std::string text = "床前明月光，疑是地上霜。🙂 ok";
  for (size_t chunk = 1; chunk <= 7; ++chunk) {
    const std::vector<std::string> pieces = stream_pieces(text, chunk);
    for (const std::string& p : pieces) EXPECT_FALSE(find_invalid_utf8(p).has_value()) << "chunk " << chunk;
    EXPECT_EQ(concatenate(pieces), text) << "chunk " << chunk;
  }
}

TEST(Utf8Stream, HoldsAnIncompleteSequenceUntilItCompletes) {
  Utf8Stream stream;
  EXPECT_EQ(stream.push("ab\xE4"), "ab");
  EXPECT_EQ(stream.push("\xB8"), "");
  EXPECT_EQ(stream.push("\xAD!"), "\xE4\xB8\xAD!");
  EXPECT_EQ(stream.push("\xF0\x9F\x99"), "");
  EXPECT_EQ(stream.push("\x82"), "\xF0\x9F\x99\x82");
}

TEST(Utf8Stream, PassesBytesThatCanNeverFormACharacterAtOnce) {
  Utf8Stream stream;
  EXPECT_EQ(stream.push("\xFF"), "\xFF");          // never valid in UTF-8
  EXPECT_EQ(stream.push("\xB8"), "\xB8");          // a continuation with no lead
  EXPECT_EQ(stream.push("\xC0"), "\xC0");          // always overlong
  EXPECT_EQ(stream.push("\xE4"), "");              // may still complete ...
  EXPECT_EQ(stream.push("A"), "\xE4\x41");         // ... until ASCII breaks it
  EXPECT_EQ(stream.push("\xE0\x80"), "\xE0\x80");  // E0 needs A0..BF next (overlong otherwise)
  EXPECT_EQ(stream.push("\xED\xA0"), "\xED\xA0");  // a surrogate
  EXPECT_EQ(stream.push("\xF4\x90"), "\xF4\x90");  // above U+10FFFF
  EXPECT_EQ(stream.push("\xE4\xB8\xAD\xAD"), "\xE4\xB8\xAD\xAD");  // a stray continuation after a character
}

TEST(Utf8Stream, FlushReturnsWhatIsStillHeld) {
  Utf8Stream stream;
  EXPECT_EQ(stream.push("x\xE4\xB8"), "x");
  EXPECT_EQ(stream.flush(), "\xE4\xB8");
  EXPECT_EQ(stream.flush(), "");
  EXPECT_EQ(stream.push("y"), "y");
}

TEST(Utf8Stream, IncompleteSuffixLengths) {
  EXPECT_EQ(incomplete_utf8_suffix(""), 0u);
  EXPECT_EQ(incomplete_utf8_suffix("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix("\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_suffix("\xC3\xBC"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix("a\xE4\xB8"), 2u);
  EXPECT_EQ(incomplete_utf8_suffix("\xF0\x9F\x99"), 3u);
  EXPECT_EQ(incomplete_utf8_suffix("\xF0\x8F\x99"), 0u);  // overlong second byte
}

}  // namespace
}  // namespace inkstone
