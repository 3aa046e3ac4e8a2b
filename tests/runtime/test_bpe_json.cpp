// BPE vocabularies as Hugging Face tokenizer.json: what inkstone writes, and what it reads or refuses.
// (That the `tokenizers` package encodes our files identically is tests/runtime/test_bpe_reference.cpp.)
#include "runtime/bpe_json.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "fixtures/bpe_test_models.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"

namespace inkstone {
namespace {

using nlohmann::json;
using testing::error_of;
using testing::tiny_bpe_model;

const std::string kSpaceSymbol = "\xC4\xA0";  // Ġ, GPT-2's symbol for the byte ' '

std::string tiny_json(PreTokenizerRule rule = PreTokenizerRule::Gpt2) {
  return BpeTokenizer(tiny_bpe_model(rule), "tiny").to_json();
}

TEST(BpeJson, WritesAByteLevelBpeTokenizerJson) {
  const json doc = json::parse(tiny_json());
  EXPECT_EQ(doc["version"], "1.0");
  EXPECT_TRUE(doc["normalizer"].is_null());
  EXPECT_TRUE(doc["post_processor"].is_null());
  EXPECT_TRUE(doc["truncation"].is_null() && doc["padding"].is_null());
  EXPECT_EQ(
      doc["pre_tokenizer"],
      (json{
          {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}));
  EXPECT_EQ(doc["decoder"]["type"], "ByteLevel");

  const json& model = doc["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_EQ(model["ignore_merges"], false);
  EXPECT_TRUE(model["dropout"].is_null());
  ASSERT_EQ(model["vocab"].size(), 262u);
  EXPECT_EQ(model["vocab"]["t"], 't');
  EXPECT_EQ(model["vocab"][kSpaceSymbol], ' ');
  EXPECT_EQ(model["vocab"]["\xC4\x80"], 0);  // Ā: byte 0
  EXPECT_EQ(model["vocab"][kSpaceSymbol + "the"], 259);
  EXPECT_EQ(model["vocab"]["aaaa"], 261);
  EXPECT_EQ(model["vocab"]["<|endoftext|>"], 256);  // in the vocab too, so `tokenizers` keeps its id
  EXPECT_EQ(model["merges"], (json{"t h", "th e", kSpaceSymbol + " the", "a a", "aa aa"}));
  EXPECT_EQ(doc["added_tokens"], (json::array({{{"id", 256},
                                                {"content", "<|endoftext|>"},
                                                {"single_word", false},
                                                {"lstrip", false},
                                                {"rstrip", false},
                                                {"normalized", false},
                                                {"special", true}}})));
}

TEST(BpeJson, OutputIsCanonical) {
  const std::string text = tiny_json();
  EXPECT_EQ(tiny_json(), text);
  EXPECT_EQ(text.back(), '\n');
  // The vocab is written in id order, and the top-level keys in a fixed order.
  const nlohmann::ordered_json doc = nlohmann::ordered_json::parse(text);
  int expected_id = 0;
  for (const auto& [symbols, id] : doc["model"]["vocab"].items()) EXPECT_EQ(id, expected_id++) << symbols;
  std::vector<std::string> keys;
  for (const auto& [key, value] : doc.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"version", "truncation", "padding", "added_tokens", "normalizer",
                                            "pre_tokenizer", "post_processor", "decoder", "model"}));
}

TEST(BpeJson, CjkRuleIsASplitBeforeByteLevel) {
  const json doc = json::parse(tiny_json(PreTokenizerRule::Gpt2Cjk));
  const json& pre = doc["pre_tokenizer"];
  EXPECT_EQ(pre["type"], "Sequence");
  ASSERT_EQ(pre["pretokenizers"].size(), 2u);
  const json& split = pre["pretokenizers"][0];
  EXPECT_EQ(split["type"], "Split");
  EXPECT_EQ(split["behavior"], "Isolated");
  EXPECT_EQ(split["invert"], false);
  const std::string regex = split["pattern"]["Regex"];
  EXPECT_TRUE(regex.starts_with("[\\x{3400}-\\x{4DBF}\\x{4E00}-\\x{9FFF}")) << regex;
  EXPECT_TRUE(regex.ends_with("]")) << regex;
  EXPECT_NE(regex.find("\\x{20000}-\\x{2A6DF}"), std::string::npos) << regex;
  EXPECT_EQ(pre["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(pre["pretokenizers"][1]["use_regex"], true);
}

TEST(BpeJson, ReadsBackWhatItWrites) {
  for (const PreTokenizerRule rule : {PreTokenizerRule::Gpt2, PreTokenizerRule::Gpt2Cjk}) {
    const BpeModel original = tiny_bpe_model(rule);
    const BpeModel read = bpe_model_from_tokenizer_json(tiny_json(rule), "tiny.json");
    EXPECT_EQ(read.tokens, original.tokens);
    EXPECT_EQ(read.specials, original.specials);
    EXPECT_EQ(read.rule, rule);
    ASSERT_EQ(read.merges.size(), original.merges.size());
    for (size_t i = 0; i < read.merges.size(); ++i) {
      EXPECT_EQ(read.merges[i].merged, original.merges[i].merged);
      EXPECT_EQ(read.merges[i].left, original.merges[i].left);
      EXPECT_EQ(read.merges[i].right, original.merges[i].right);
    }
    const auto tok = tokenizer_from_json(tiny_json(rule), "tiny.json");
    EXPECT_EQ(tok->name(), BpeTokenizer(original, "x").name());
    EXPECT_EQ(tok->encode(" the"), (std::vector<int32_t>{testing::kSpaceThe}));
  }
}

// Hugging Face files vary in what does not change ids; those variants load.
TEST(BpeJson, ReadsTheVariantsHuggingFaceWrites) {
  json doc = json::parse(tiny_json());
  doc["model"]["merges"] =
      json::array({json::array({"t", "h"}), json::array({"th", "e"})});  // tokenizers >= 0.20 writes pairs
  doc["model"]["continuing_subword_prefix"] = "";
  doc["model"]["end_of_word_suffix"] = "";
  doc["model"].erase("ignore_merges");
  doc["pre_tokenizer"].erase("use_regex");  // true by default
  doc["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", false}};
  doc["decoder"]["add_prefix_space"] = true;
  doc["added_tokens"][0]["normalized"] = true;
  BpeModel model = bpe_model_from_json(doc, "hf.json");
  EXPECT_EQ(model.merges.size(), 2u);
  EXPECT_EQ(BpeTokenizer(std::move(model), "hf.json").encode("the"), (std::vector<int32_t>{testing::kThe}));

  // A special that is only in added_tokens is numbered after the vocab, as `tokenizers` numbers it.
  doc = json::parse(tiny_json());
  doc["model"]["vocab"].erase("<|endoftext|>");
  doc["model"]["vocab"]["aaaa"] = 256;
  doc["model"]["merges"] = json::array({"t h"});
  doc["added_tokens"][0]["id"] = 261;
  const BpeTokenizer tok(bpe_model_from_json(doc, "hf.json"), "hf.json");
  EXPECT_EQ(tok.eot_id(), 261);
  EXPECT_EQ(tok.encode_with_specials("<|endoftext|>"), (std::vector<int32_t>{261}));

  // Without merges, how text is cut changes no id: use_regex false (the byte tokenizer's) is fine.
  doc = json::parse(tiny_json());
  doc["model"]["merges"] = json::array();
  doc["pre_tokenizer"]["use_regex"] = false;
  EXPECT_EQ(BpeTokenizer(bpe_model_from_json(doc, "hf.json"), "hf.json").encode("the"),
            (std::vector<int32_t>{'t', 'h', 'e'}));
}

TEST(BpeJson, RefusesWhatItCannotReproduceNamingIt) {
  const json base = json::parse(tiny_json());
  struct Case {
    std::function<void(json&)> change;
    std::string reason;
  };
  const Case cases[] = {
      {[](json& d) { d["model"]["type"] = "WordPiece"; }, "its model is WordPiece, not BPE"},
      {[](json& d) { d["model"]["type"] = "Unigram"; }, "not BPE"},
      {[](json& d) { d.erase("model"); }, "not BPE"},
      {[](json& d) { d["model"]["dropout"] = 0.1; }, "dropout"},
      {[](json& d) { d["model"]["ignore_merges"] = true; }, "ignore_merges"},
      {[](json& d) { d["model"]["continuing_subword_prefix"] = "##"; }, "continuing_subword_prefix"},
      {[](json& d) {
         d["normalizer"] = {{"type", "NFC"}};
       },
       "normalizer"},
      {[](json& d) {
         d["truncation"] = {{"max_length", 512}};
       },
       "truncation"},
      {[](json& d) {
         d["pre_tokenizer"] = {{"type", "Metaspace"}};
       },
       "pre_tokenizer"},
      {[](json& d) { d["pre_tokenizer"]["add_prefix_space"] = true; }, "prefix space"},
      {[](json& d) { d["pre_tokenizer"].erase("add_prefix_space"); }, "prefix space"},
      {[](json& d) { d["pre_tokenizer"]["use_regex"] = false; }, "use_regex"},
      {[](json& d) {
         d["pre_tokenizer"] = json::parse(tiny_json(PreTokenizerRule::Gpt2Cjk))["pre_tokenizer"];
         d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "[\\x{4E00}-\\x{9FFF}]";
       },
       "gpt2-cjk"},
      {[](json& d) {
         d["post_processor"] = {{"type", "TemplateProcessing"}};
       },
       "post_processor"},
      {[](json& d) { d["decoder"] = nullptr; }, "decoder"},
      {[](json& d) { d["added_tokens"][0]["special"] = false; }, "is not special"},
      {[](json& d) { d["added_tokens"][0]["lstrip"] = true; }, "lstrip"},
      {[](json& d) { d["added_tokens"] = json::array(); }, "no special <|endoftext|>"},
      {[](json& d) { d["added_tokens"][0]["id"] = 7; }, "added_tokens gives \"<|endoftext|>\" the id 7"},
      {[](json& d) { d["model"]["vocab"]["a"] = 98; }, "model.vocab gives the id 98 to both"},
      {[](json& d) { d["model"]["vocab"].erase("aa"); }, "no token with id 260"},
      {[](json& d) { d["model"]["vocab"]["a b"] = 262; }, "\"a b\" is not written in byte-level symbols"},
      {[](json& d) { d["model"]["merges"][0] = "t h e"; }, "model.merges[0] is \"t h e\", not two tokens"},
      {[](json& d) { d["model"]["merges"][1] = "t q"; }, "model.merges[1] makes \"tq\", which is not in"},
      {[](json& d) { d["model"]["merges"][1] = "zz e"; }, "model.merges[1] names \"zz\""},
      {[](json& d) { d["model"].erase("merges"); }, "no merges"},
  };
  for (const Case& c : cases) {
    json doc = base;
    c.change(doc);
    const std::string message = error_of([&] { tokenizer_from_json(doc.dump(), "dir/tokenizer.json"); });
    EXPECT_TRUE(message.starts_with("dir/tokenizer.json: ")) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << "wanted " << c.reason << " in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] {
              bpe_model_from_tokenizer_json("{\"model\": [", "x.json");
            }).find("x.json: not valid JSON"),
            std::string::npos);
}

TEST(BpeJson, SymbolsAndBytes) {
  EXPECT_EQ(symbols_from_bytes(" the\n"), kSpaceSymbol + "the\xC4\x8A");
  EXPECT_EQ(bytes_from_symbols(kSpaceSymbol + "the\xC4\x8A"), " the\n");
  EXPECT_EQ(bytes_from_symbols(""), "");
  EXPECT_EQ(bytes_from_symbols("a b"), std::nullopt);  // a raw space is no symbol
  EXPECT_EQ(bytes_from_symbols("\xE4\xB8\xAD"), std::nullopt);
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    EXPECT_EQ(bytes_from_symbols(symbols_from_bytes(byte)), byte);
  }
}

}  // namespace
}  // namespace inkstone
