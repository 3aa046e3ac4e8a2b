#include "runtime/yaml_scalar.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace inkstone {
namespace {

TEST(YamlScalar, Doubles) {
  EXPECT_EQ(scalar_to_double("3e-4"), 3e-4);
  EXPECT_EQ(scalar_to_double("+1.5"), 1.5);
  EXPECT_EQ(scalar_to_double("-2"), -2.0);
  EXPECT_EQ(scalar_to_double(".5"), 0.5);
  EXPECT_EQ(scalar_to_double("6.0e-4"), 6e-4);
  for (const char* bad :
       {"", "fast", "inf", "nan", ".inf", "-.inf", ".nan", "1e999", "0x10", "1,5", "1 ", "3e-4x"}) {
    EXPECT_FALSE(scalar_to_double(bad).has_value()) << bad;
  }
}

TEST(YamlScalar, Integers) {
  EXPECT_EQ(scalar_to_int64("42"), 42);
  EXPECT_EQ(scalar_to_int64("+7"), 7);
  EXPECT_EQ(scalar_to_int64("-3"), -3);
  EXPECT_EQ(scalar_to_int64("1e8"), 100'000'000);  // exactly integral numbers count
  EXPECT_EQ(scalar_to_int64("2.0"), 2);
  EXPECT_EQ(scalar_to_int64("9223372036854775807"), std::numeric_limits<int64_t>::max());
  for (const char* bad : {"2.5", "1e-3", "9223372036854775808", "9.3e18", "ten", "true", ""}) {
    EXPECT_FALSE(scalar_to_int64(bad).has_value()) << bad;
  }
  EXPECT_EQ(scalar_to_uint64("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(scalar_to_uint64("1e3"), 1000u);
  for (const char* bad : {"-1", "18446744073709551616", "2e19", "0.5"}) {
    EXPECT_FALSE(scalar_to_uint64(bad).has_value()) << bad;
  }
}

TEST(YamlScalar, QuoteLeavesPlainWhatCannotBeMisread) {
  EXPECT_EQ(yaml_quote("data/prepared"), "data/prepared");
  EXPECT_EQ(yaml_quote("gpt2-124m"), "gpt2-124m");
  EXPECT_EQ(yaml_quote("tokenizer.json"), "tokenizer.json");
  // Numbers, bools, nulls, indicators, spaces and the empty string are quoted.
  EXPECT_EQ(yaml_quote("123"), "\"123\"");
  EXPECT_EQ(yaml_quote("1e5"), "\"1e5\"");
  EXPECT_EQ(yaml_quote("Yes"), "\"Yes\"");
  EXPECT_EQ(yaml_quote("null"), "\"null\"");
  EXPECT_EQ(yaml_quote(""), "\"\"");
  EXPECT_EQ(yaml_quote("poems/*.txt"), "\"poems/*.txt\"");
  EXPECT_EQ(yaml_quote("a b"), "\"a b\"");
  EXPECT_EQ(yaml_quote("-x"), "\"-x\"");
  EXPECT_EQ(yaml_quote("say \"hi\"\\\n\t\x01"), "\"say \\\"hi\\\"\\\\\\n\\t\\x01\"");
}

TEST(YamlScalar, QuotedTextReadsBackUnchanged) {
  for (const std::string& text : std::vector<std::string>{
           "a: b", "#x",    "[1, 2]", "{k: v}", "&anchor", "*alias",   "!tag",
           "%x",   "@x",    "`x",     "|",      ">",       "'",        "\"",
           "\\",   "--- x", "x #y",   " lead",  "trail ",  "唐诗 300", std::string("nul\0byte", 8),
           "\x7f", "~",     "TRUE",   "0o17",   "0x1F",    ".5"}) {
    const YamlNode root = parse_yaml("k: " + yaml_quote(text) + "\n");
    ASSERT_TRUE(root.is_mapping()) << text;
    EXPECT_EQ(root.entries[0].value.text, text);
  }
}

TEST(YamlScalar, Describe) {
  YamlNode node;
  EXPECT_EQ(describe(node), "nothing");
  node.kind = YamlNode::Kind::kSequence;
  EXPECT_EQ(describe(node), "a list");
  node.kind = YamlNode::Kind::kMapping;
  EXPECT_EQ(describe(node), "a mapping");
  node.kind = YamlNode::Kind::kScalar;
  node.text = "2.5";
  EXPECT_EQ(describe(node), "2.5");
  node.quoted = true;
  EXPECT_EQ(describe(node), "\"2.5\"");
  node.text = std::string(100, 'x');
  EXPECT_EQ(describe(node), "\"" + std::string(60, 'x') + "...\"");
}

}  // namespace
}  // namespace inkstone
