#include "runtime/yaml_tree.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace inkstone {
namespace {

YamlError error_of(const std::string& text) {
  try {
    parse_yaml(text);
  } catch (const YamlError& e) {
    return e;
  }
  ADD_FAILURE() << "no YamlError for:\n" << text;
  return YamlError(0, "", "");
}

TEST(YamlTree, KeepsLinesKindsAndOrder) {
  const YamlNode root = parse_yaml("# header\nb: 1\na:\n  - x\n  - 'y'\nc: {d: ~}\ne:\n");
  ASSERT_TRUE(root.is_mapping());
  ASSERT_EQ(root.entries.size(), 4u);
  EXPECT_EQ(root.entries[0].key, "b");  // document order, not sorted
  EXPECT_EQ(root.entries[0].key_line, 2);
  EXPECT_EQ(root.entries[0].value.text, "1");
  EXPECT_FALSE(root.entries[0].value.quoted);
  const YamlNode& list = root.entries[1].value;
  ASSERT_TRUE(list.is_sequence());
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_EQ(list.items[1].text, "y");
  EXPECT_TRUE(list.items[1].quoted);
  EXPECT_EQ(list.items[1].line, 5);
  EXPECT_TRUE(root.entries[2].value.entries[0].value.is_null());
  // An empty value carries its key's line (yaml-cpp marks it on the next line).
  EXPECT_TRUE(root.entries[3].value.is_null());
  EXPECT_EQ(root.entries[3].value.line, 7);
}

TEST(YamlTree, EmptyInputIsANullNode) {
  EXPECT_TRUE(parse_yaml("").is_null());
  EXPECT_TRUE(parse_yaml("# only a comment\n").is_null());
  EXPECT_EQ(parse_yaml("").line, 0);
}

TEST(YamlTree, ExplicitStrTagIsQuoted) {
  EXPECT_TRUE(parse_yaml("a: !!str 5\n").entries[0].value.quoted);
}

TEST(YamlTree, AliasesAreCopies) {
  const YamlNode root = parse_yaml("a: &base {x: 1}\nb: *base\n");
  ASSERT_TRUE(root.entries[1].value.is_mapping());
  EXPECT_EQ(root.entries[1].value.entries[0].value.text, "1");
  EXPECT_EQ(root.entries[1].value.line, 2);
}

TEST(YamlTree, DuplicateKeysAreErrorsWithBothLines) {
  const YamlError e = error_of("top:\n  inner:\n    k: 1\n    j: 2\n    k: 3\n");
  EXPECT_EQ(e.line, 5);
  EXPECT_EQ(e.key, "top.inner.k");
  EXPECT_EQ(std::string(e.what()), "duplicate key (first set on line 3); keep one of them");
  EXPECT_EQ(error_of("list:\n  - {a: 1, a: 2}\n").key, "list[0].a");
}

TEST(YamlTree, SyntaxErrorsCarryYamlCppsLine) {
  const YamlError e = error_of("a: 1\nb: [2\n");
  EXPECT_GT(e.line, 1);
  EXPECT_EQ(std::string(e.what()).rfind("YAML syntax error: ", 0), 0u) << e.what();
  // A syntax error wins over an earlier duplicate key: the file is broken from there on anyway.
  EXPECT_EQ(std::string(error_of("a: 1\na: 2\nb: [3\n").what()).rfind("YAML syntax error", 0), 0u);
}

TEST(YamlTree, ComplexKeysAndSecondDocumentsAreErrors) {
  EXPECT_EQ(error_of("? [a, b]\n: 1\n").line, 1);
  const YamlError second = error_of("a: 1\n---\nb: 2\n");
  EXPECT_EQ(second.line, 2);
}

TEST(YamlTree, AliasExpansionIsCapped) {
  // A small "billion laughs": each level lists ten aliases of the one before, so six levels expand
  // to a million nodes. The cap stops it at the alias that would cross 100,000 nodes.
  std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 6; ++level) {
    const std::string alias = fmt::format("*l{}", level - 1);
    text += fmt::format("l{0}: &l{0} [{1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}]\n", level, alias);
  }
  const YamlError e = error_of(text);
  // Level k holds 11...1 (k + 2 ones) nodes, so the aliases of level 4 cross the cap.
  EXPECT_EQ(e.line, 5);
  EXPECT_EQ(e.key.rfind("l4[", 0), 0u) << e.key;
  EXPECT_EQ(std::string(e.what()).rfind("too many YAML nodes (aliases expand to more than 100000)", 0), 0u)
      << e.what();
  // Up to level 3 (about 12,000 nodes in all) is fine.
  EXPECT_NO_THROW(parse_yaml(text.substr(0, text.find("l4:"))));
}

TEST(YamlTree, TagsOtherThanStrAreErrors) {
  const YamlError number = error_of("train:\n  seed: !!float 5\n");
  EXPECT_EQ(number.line, 2);
  EXPECT_EQ(number.key, "train.seed");
  EXPECT_EQ(std::string(number.what()).rfind("YAML tag !!float is not supported", 0), 0u) << number.what();
  const YamlError custom = error_of("lr: !foo 0.001\n");
  EXPECT_EQ(custom.key, "lr");
  EXPECT_EQ(std::string(custom.what()).rfind("YAML tag !foo is not supported", 0), 0u) << custom.what();
  EXPECT_EQ(error_of("a: !!map {b: 1}\n").key, "a");
  EXPECT_EQ(error_of("a: [1, !!int 2]\n").key, "a[1]");
  EXPECT_EQ(error_of("!!str {b: 1}\n").line, 1);               // !!str is for scalars only
  EXPECT_NO_THROW(parse_yaml("a: !!str 5\nb: ! {c: ! x}\n"));  // !!str and the non-specific "!"
}

}  // namespace
}  // namespace inkstone
