// The config schema as one table: every key's dotted name, where it lives in RunConfig, and its
// bounds or choices. Reading a file, applying overrides, validating and writing YAML back
// (runtime/config.cpp) all walk this table, so a new key is one line in config_schema.cpp.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runtime/config.h"

namespace inkstone {

// Numeric bounds; an open end excludes its value.
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  bool contains(double value) const {
    return (lo_open ? value > lo : value >= lo) && (hi_open ? value < hi : value <= hi);
  }
  std::string describe() const;  // ">= 1", "> 0 and < 1"
};

// One member of RunConfig, as a plain function pointer so the table is built once and never changes.
using ConfigFieldRef = std::variant<int& (*)(RunConfig&), int64_t& (*)(RunConfig&), uint64_t& (*)(RunConfig&),
                                    double& (*)(RunConfig&), std::string& (*)(RunConfig&),
                                    std::vector<std::string>& (*)(RunConfig&)>;

enum class EmptyText { kAllowed };

struct ConfigField {
  ConfigField(std::string_view name_, ConfigFieldRef ref_, Bounds bounds_ = {}, std::string_view note_ = {})
      : name(name_), ref(ref_), bounds(bounds_), note(note_) {}
  ConfigField(std::string_view name_, ConfigFieldRef ref_, std::vector<std::string> choices_)
      : name(name_), ref(ref_), choices(std::move(choices_)) {}
  ConfigField(std::string_view name_, ConfigFieldRef ref_, EmptyText)
      : name(name_), ref(ref_), allow_empty(true) {}

  std::string_view name;  // the dotted YAML key
  ConfigFieldRef ref;
  Bounds bounds;                     // numbers
  std::string_view note;             // why the bounds are what they are, quoted in range errors
  std::vector<std::string> choices;  // strings: when not empty, the value must be one of these
  bool allow_empty = false;          // strings and paths are never empty unless this says so
};

// Grouped by section, in the order to_yaml writes them.
const std::vector<ConfigField>& config_fields();
const ConfigField* find_config_field(std::string_view name);

// "" (the top level) and every dotted prefix of a field ("train") are sections.
bool is_config_section(std::string_view path);
// The keys directly under a section, for messages: "micro_batch, seq_len, ...".
std::string config_section_keys(std::string_view section);

// "unknown key; did you mean train.lr?", or the keys the section takes when nothing is close.
std::string unknown_key_message(std::string_view path);
// The entry of `known` closest to `name` (by last dotted part, ignoring case), or "" when none is close.
std::string closest_name(std::string_view name, const std::vector<std::string>& known);

}  // namespace inkstone
