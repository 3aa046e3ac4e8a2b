// Hostile JSON: nesting beyond the limit is an error, never a stack overflow, and the excerpts that
// messages quote stay on one line and short.
#include "runtime/json_limits.h"

#include <gtest/gtest.h>

#include <string>

#include "runtime/hf_gpt2_config.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

std::string nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonLimits, AcceptsTheLimitAndRejectsBeyondIt) {
  EXPECT_NO_THROW(parse_json_bounded(nested(kMaxJsonDepth)));
  EXPECT_THROW(parse_json_bounded(nested(kMaxJsonDepth + 1)), JsonTooDeep);
  EXPECT_THROW(parse_json_bounded<nlohmann::ordered_json>(nested(200'000)), JsonTooDeep);
  EXPECT_THROW(parse_json_bounded("{\"a\": [1,"), nlohmann::json::exception);
}

TEST(JsonLimits, ExcerptsAreOneShortLine) {
  EXPECT_EQ(quoted_name("a\nb"), R"("a\nb")");
  // 40 three-byte characters: the cut must fall between characters, never inside one.
  std::string han;
  for (int i = 0; i < 40; ++i) han += "春";
  const std::string cut = json_excerpt(nlohmann::json(han), 20);
  EXPECT_EQ(cut, "\"" + std::string(han, 0, 18) + "...");
  EXPECT_EQ(json_excerpt(nlohmann::json::parse("[1,2,3]")), "[1,2,3]");
}

TEST(JsonLimits, FilesInkstoneReadsRefuseDeepNesting) {
  const std::string deep = "{\"n_layer\": " + nested(200'000) + "}";
  std::string error = testing::error_of([&] { parse_hf_gpt2_config(deep, "config.json"); });
  EXPECT_NE(error.find("nests deeper than 64 levels"), std::string::npos) << error;
  error = testing::error_of([&] { tokenizer_from_json(deep, "tokenizer.json"); });
  EXPECT_NE(error.find("nests deeper than 64 levels"), std::string::npos) << error;
}

}  // namespace
}  // namespace inkstone
