#include "runtime/config_schema.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace inkstone {
namespace {

TEST(ConfigSchema, NamesAreUniqueAndGroupedBySection) {
  // to_yaml opens a section once, so a field placed apart from its section would write it twice.
  std::set<std::string> names, seen_sections;
  std::string previous = "(none)";
  for (const ConfigField& field : config_fields()) {
    EXPECT_TRUE(names.insert(std::string(field.name)).second) << field.name << " twice";
    const size_t dot = field.name.find('.');
    const std::string section(dot == std::string_view::npos ? "" : field.name.substr(0, dot));
    if (section != previous) {
      EXPECT_TRUE(seen_sections.insert(section).second) << field.name << " is apart from its section";
      previous = section;
    }
  }
}

TEST(ConfigSchema, Sections) {
  EXPECT_TRUE(is_config_section(""));
  EXPECT_TRUE(is_config_section("train"));
  EXPECT_FALSE(is_config_section("train.lr"));  // a field, not a section
  EXPECT_FALSE(is_config_section("tra"));
  EXPECT_EQ(config_section_keys(""),
            "model, data, train, distributed, init_from, device, precision, output_dir");
  EXPECT_EQ(config_section_keys("model"), "preset, n_layer, n_head, n_embd, context, vocab");
}

TEST(ConfigSchema, BoundsDescribeThemselves) {
  EXPECT_EQ((Bounds{1}).describe(), ">= 1");
  EXPECT_EQ((Bounds{0, 1, true, true}).describe(), "> 0 and < 1");
  EXPECT_EQ((Bounds{0, 0.5}).describe(), ">= 0 and <= 0.5");
  EXPECT_TRUE((Bounds{0, 1, false, true}).contains(0));
  EXPECT_FALSE((Bounds{0, 1, false, true}).contains(1));
  EXPECT_FALSE((Bounds{0, 1, true, true}).contains(0));
}

TEST(ConfigSchema, ClosestName) {
  const std::vector<std::string> known = {"train.lr", "train.warmup_steps", "model.vocab", "train"};
  EXPECT_EQ(closest_name("train.lrr", known), "train.lr");
  EXPECT_EQ(closest_name("lr", known), "train.lr");
  EXPECT_EQ(closest_name("train.warmup", known), "train.warmup_steps");
  EXPECT_EQ(closest_name("data.vocab", known), "model.vocab");
  EXPECT_EQ(closest_name("trian", known), "train");  // a swap of neighbours is one edit
  EXPECT_EQ(closest_name("TRAIN.LR", known), "train.lr");
  EXPECT_EQ(closest_name("train.momentum", known), "");
  EXPECT_EQ(unknown_key_message("model.heads"),
            "unknown key; model takes preset, n_layer, n_head, n_embd, "
            "context, vocab (configs/example.yaml documents each)");
}

}  // namespace
}  // namespace inkstone
