#include "runtime/tokenizer.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "runtime/byte_level.h"
#include "runtime/error.h"
#include "runtime/sha256.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using nlohmann::json;

using testing::error_of;

TEST(ByteLevel, MatchesGpt2BytesToUnicode) {
  const auto& symbols = byte_level_symbols();
  EXPECT_EQ(symbols['!'], "!");
  EXPECT_EQ(symbols['~'], "~");
  EXPECT_EQ(symbols[0], "\xC4\x80");     // U+0100 Ā
  EXPECT_EQ(symbols['\n'], "\xC4\x8A");  // U+010A Ċ
  EXPECT_EQ(symbols[' '], "\xC4\xA0");   // U+0120 Ġ, GPT-2's space
  EXPECT_EQ(symbols[127], "\xC4\xA1");   // U+0121 ġ
  EXPECT_EQ(symbols[0xA1], "\xC2\xA1");  // ¡ maps to itself
  EXPECT_EQ(symbols[0xAD], "\xC5\x83");  // U+0143 Ń, the last of the 68 remapped bytes
  EXPECT_EQ(symbols[0xFF], "\xC3\xBF");  // ÿ maps to itself
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_from_symbol(symbols[b]), b);
  EXPECT_EQ(byte_from_symbol("ab"), std::nullopt);
  EXPECT_EQ(byte_from_symbol(" "), std::nullopt);  // a raw space is not a symbol; Ġ is
}

TEST(ByteTokenizer, EncodesBytesAndDecodesBack) {
  const ByteTokenizer tok;
  const std::string text = "\xE6\x98\xA5\xE7\x9C\xA0 abc\n";  // 春眠 abc\n
  const std::vector<int32_t> expected = {0xE6, 0x98, 0xA5, 0xE7, 0x9C, 0xA0, ' ', 'a', 'b', 'c', '\n'};
  EXPECT_EQ(tok.encode(text), expected);
  EXPECT_EQ(tok.decode(expected), text);
  EXPECT_EQ(tok.vocab_size(), 257);
  EXPECT_EQ(tok.eot_id(), 256);
  EXPECT_EQ(tok.name(), "byte");
  const std::vector<int32_t> with_eot = {256, 'h', 'i'};
  EXPECT_EQ(tok.decode(with_eot), "<|endoftext|>hi");
}

TEST(ByteTokenizer, SpecialTokenTextInTheCorpusStaysOrdinaryText) {
  const ByteTokenizer tok;
  const std::vector<int32_t> ids = tok.encode("<|endoftext|>");
  EXPECT_EQ(ids.size(), 13u);
  for (int32_t id : ids) EXPECT_LT(id, 256);
}

TEST(ByteTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const ByteTokenizer tok;
  const std::vector<int32_t> bad = {'a', 257};
  EXPECT_NE(error_of([&] { tok.decode(bad); }).find("257"), std::string::npos);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(tok.decode(negative), Error);
}

TEST(ByteTokenizer, JsonIsAHuggingFaceByteLevelBpe) {
  const json doc = json::parse(ByteTokenizer().to_json());
  EXPECT_EQ(doc["version"], "1.0");
  EXPECT_TRUE(doc["normalizer"].is_null());
  EXPECT_TRUE(doc["post_processor"].is_null());
  EXPECT_EQ(doc["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(doc["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(doc["pre_tokenizer"]["use_regex"], false);
  EXPECT_EQ(doc["decoder"]["type"], "ByteLevel");
  const json& model = doc["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_TRUE(model["merges"].is_array() && model["merges"].empty());
  ASSERT_EQ(model["vocab"].size(), 256u);
  EXPECT_EQ(model["vocab"]["\xC4\xA0"], 32);  // Ġ
  EXPECT_EQ(model["vocab"]["\xC4\x80"], 0);   // Ā
  EXPECT_EQ(model["vocab"]["a"], 'a');
  EXPECT_EQ(model["vocab"]["\xC3\xA6"], 0xE6);  // æ
  ASSERT_EQ(doc["added_tokens"].size(), 1u);
  EXPECT_EQ(doc["added_tokens"][0]["id"], 256);
  EXPECT_EQ(doc["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(doc["added_tokens"][0]["special"], true);
}

TEST(Tokenizer, LoadsItsOwnJsonBack) {
  testing::TempDir dir;
  testing::write_file(dir / "tokenizer.json", ByteTokenizer().to_json());
  const auto tok = load_tokenizer((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->name(), "byte");
  EXPECT_EQ(tok->vocab_size(), 257);
  EXPECT_EQ(tok->encode("xy"), (std::vector<int32_t>{'x', 'y'}));
  EXPECT_EQ(tokenizer_from_spec("byte")->name(), "byte");
  EXPECT_EQ(tokenizer_from_spec((dir / "tokenizer.json").string())->eot_id(), 256);
}

TEST(Tokenizer, AcceptsGpt2StyleVocabListingTheSpecialToken) {
  json doc = json::parse(ByteTokenizer().to_json());
  doc["model"]["vocab"]["<|endoftext|>"] = 256;
  EXPECT_EQ(tokenizer_from_json(doc.dump(), "gpt2-style.json")->vocab_size(), 257);
}

TEST(Tokenizer, RejectsOtherShapesNamingTheFileAndTheReason) {
  const json base = json::parse(ByteTokenizer().to_json());
  struct Case {
    std::function<void(json&)> change;
    std::string reason;
  };
  const Case cases[] = {
      {[](json& d) { d["model"]["merges"] = json::array({"\xC4\xA0 t"}); }, "merges"},
      {[](json& d) { d["model"]["vocab"]["a"] = 98; }, "vocab"},
      {[](json& d) { d["model"]["vocab"].erase("a"); }, "vocab"},
      {[](json& d) { d["model"]["type"] = "WordPiece"; }, "BPE"},
      {[](json& d) {
         d["normalizer"] = {{"type", "NFC"}};
       },
       "normalizer"},
      {[](json& d) { d["pre_tokenizer"]["add_prefix_space"] = true; }, "prefix space"},
      {[](json& d) {
         d["post_processor"] = {{"type", "TemplateProcessing"}};
       },
       "post_processor"},
      {[](json& d) { d["added_tokens"] = json::array(); }, "added_tokens"},
      {[](json& d) { d["added_tokens"][0]["id"] = 300; }, "added_tokens"},
  };
  for (const Case& c : cases) {
    json doc = base;
    c.change(doc);
    const std::string message = error_of([&] { tokenizer_from_json(doc.dump(), "dir/tokenizer.json"); });
    EXPECT_NE(message.find("dir/tokenizer.json"), std::string::npos) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] { tokenizer_from_json("{not json", "bad.json"); }).find("bad.json"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { load_tokenizer("/nonexistent/tokenizer.json"); }).find("/nonexistent/tokenizer.json"),
      std::string::npos);
}

TEST(TokenizerHash, IsTheSha256OfCompactJsonWithSortedKeys) {
  EXPECT_EQ(tokenizer_hash("{ \"b\": 1,\n  \"a\": [1, 2], \"c\": {\"z\": null, \"y\": \"\xC4\xA0\"} }"),
            sha256_hex("{\"a\":[1,2],\"b\":1,\"c\":{\"y\":\"\xC4\xA0\",\"z\":null}}"));
}

TEST(TokenizerHash, IgnoresWhitespaceAndKeyOrderButNotContent) {
  const std::string text = ByteTokenizer().to_json();
  const std::string hash = tokenizer_hash(text);
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_EQ(tokenizer_hash(json::parse(text).dump()), hash);  // compact, keys sorted
  EXPECT_EQ(tokenizer_hash(json::parse(text).dump(7)), hash);
  // Key order reversed at the top level.
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(text);
  nlohmann::ordered_json reversed = nlohmann::ordered_json::object();
  std::vector<std::string> keys;
  for (const auto& item : ordered.items()) keys.push_back(item.key());
  for (auto k = keys.rbegin(); k != keys.rend(); ++k) reversed[*k] = ordered[*k];
  ASSERT_NE(reversed.dump(), ordered.dump());
  EXPECT_EQ(tokenizer_hash(reversed.dump()), hash);

  json changed = json::parse(text);
  changed["added_tokens"][0]["special"] = false;
  EXPECT_NE(tokenizer_hash(changed.dump()), hash);
  EXPECT_THROW(tokenizer_hash("not json"), Error);
}

}  // namespace
}  // namespace inkstone
