// Plain YAML scalars as numbers, and strings written back as YAML that reads as the same string.
// Numbers follow YAML's plain notation ("8", "-3", "3e-4", "1e8"); a quoted scalar is never one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/yaml_tree.h"

namespace inkstone {

// A finite number in decimal or scientific notation; nullopt for anything else, .inf and .nan included.
std::optional<double> scalar_to_double(std::string_view text);
// An integer, also written as an exactly integral number ("1e8", "2.0"); nullopt when not one
// or when it does not fit the type.
std::optional<int64_t> scalar_to_int64(std::string_view text);
std::optional<uint64_t> scalar_to_uint64(std::string_view text);

// `text` as a YAML scalar for block or flow context: plain when it cannot be misread (as a number,
// a bool, null, an indicator), double-quoted with escapes otherwise.
std::string yaml_quote(std::string_view text);

// What a node is, for "expected ..., got X" messages: `"fast"`, `2.5`, `a list`, `a mapping`, `nothing`.
std::string describe(const YamlNode& node);

}  // namespace inkstone
