// Reading, checking and writing configs by walking the schema table (runtime/config_schema.h).
// Every error is one line: where (file:line: or override '...': ), the dotted key, what is wrong.
#include "runtime/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <variant>

#include "runtime/config_schema.h"
#include "runtime/error.h"
#include "runtime/model_config.h"
#include "runtime/read_file.h"
#include "runtime/yaml_scalar.h"
#include "runtime/yaml_tree.h"

namespace inkstone {
namespace {

std::string join_key(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  if (key.empty()) return std::string(parent);
  return fmt::format("{}{}{}", parent, key.front() == '[' ? "" : ".", key);
}

// Where the YAML being applied came from: the config file (messages carry its lines) or one override.
struct Source {
  std::string file;
  std::string override_text;  // empty for the file itself

  std::string at(int line) const {
    if (!override_text.empty()) return fmt::format("override '{}': ", override_text);
    if (line > 0) return fmt::format("{}:{}: ", file, line);
    return file + ": ";
  }
};

[[noreturn]] void fail_at(const std::string& where, std::string_view key, std::string_view message) {
  if (key.empty()) throw Error(fmt::format("{}{}", where, message));
  throw Error(fmt::format("{}{}: {}", where, key, message));
}

class ConfigReader {
 public:
  ConfigReader(RunConfig& config, std::string file) : config_(config), file_(std::move(file)) {}

  void read_file(const std::string& text) {
    const Source source{file_, ""};
    YamlNode root;
    try {
      root = parse_yaml(text);
    } catch (const YamlError& e) {
      fail_at(source.at(e.line), e.key, e.what());
    }
    if (root.is_null()) {
      fail_at(source.at(1), "",
              "the config is empty; write a mapping such as 'train: {lr: 3e-4}' "
              "(configs/example.yaml documents every key)");
    }
    if (!root.is_mapping()) {
      fail_at(source.at(root.line), "",
              fmt::format("the top level must be a mapping of keys ({}), got {}", config_section_keys(""),
                          describe(root)));
    }
    apply(source, "", 0, root);
  }

  void read_override(const std::string& text) {
    const Source source{file_, text};
    const size_t eq = text.find('=');
    if (eq == std::string::npos) fail_at(source.at(0), "", "expected key=value, e.g. train.lr=3e-4");
    const std::string key = text.substr(0, eq);
    if (key.empty()) fail_at(source.at(0), "", "the key before '=' is empty");
    const std::string value = text.substr(eq + 1);
    YamlNode node;
    if (value.empty()) {
      node.kind = YamlNode::Kind::kScalar;  // "key=" sets an empty string
      node.quoted = true;
    } else {
      try {
        node = parse_yaml(value);
      } catch (const YamlError& e) {
        fail_at(source.at(0), join_key(key, e.key), e.what());
      }
    }
    // "train=---" or "train.lr=~" reads as null, which a section would take as "nothing to set".
    if (node.is_null()) {
      fail_at(source.at(0), key,
              "the value is null (empty YAML); give a value, or write key= for an empty string");
    }
    apply(source, key, 0, node);
  }

  // Checks that need more than one key, once every key is read.
  void validate() {
    GPT2Shape shape;
    try {
      shape = resolve_architecture(config_.model);
    } catch (const Error& e) {
      const char* key = was_set("model.n_head")   ? "model.n_head"
                        : was_set("model.n_embd") ? "model.n_embd"
                                                  : "model.preset";
      fail_at(where(key), key, e.what());
    }
    if (config_.train.seq_len > shape.context) {
      const std::string advice = "lower train.seq_len or raise model.context";
      if (was_set("train.seq_len") || !was_set("model.context")) {
        fail_at(where("train.seq_len"), "train.seq_len",
                fmt::format("{} is longer than the model's context of {} positions; {}",
                            config_.train.seq_len, shape.context, advice));
      }
      fail_at(where("model.context"), "model.context",
              fmt::format("{} positions are fewer than train.seq_len {}; {}", shape.context,
                          config_.train.seq_len, advice));
    }
    // A trained vocabulary needs a size (256 bytes + <|endoftext|> at least); with any other tokenizer
    // a size would be silently ignored.
    const DataConfig& data = config_.data;
    if (data.tokenizer == "train" && data.vocab_size < 257) {
      const char* key = was_set("data.vocab_size") ? "data.vocab_size" : "data.tokenizer";
      fail_at(where(key), key,
              fmt::format("data.tokenizer: train needs data.vocab_size of at least 257 (256 bytes + "
                          "<|endoftext|>), got {}",
                          data.vocab_size));
    }
    if (data.tokenizer != "train" && data.vocab_size != 0) {
      fail_at(where("data.vocab_size"), "data.vocab_size",
              "applies only to data.tokenizer: train (the vocabulary of a given tokenizer is its own); "
              "remove it or set it to 0");
    }
    if (data.tokenizer != "train" && data.pre_tokenizer != DataConfig{}.pre_tokenizer) {
      fail_at(where("data.pre_tokenizer"), "data.pre_tokenizer",
              "applies only to data.tokenizer: train (a given tokenizer brings its own pre-tokenizer); "
              "remove it");
    }
  }

 private:
  bool was_set(const std::string& key) const { return set_at_.count(key) != 0; }
  std::string where(const std::string& key) const {
    auto it = set_at_.find(key);
    return it != set_at_.end() ? it->second : file_ + ": ";
  }

  void apply(const Source& source, const std::string& path, int key_line, const YamlNode& node) {
    if (const ConfigField* field = find_config_field(path)) {
      std::visit([&](auto ref) { read(source, *field, node, ref(config_)); }, field->ref);
      set_at_[path] = source.at(node.line);
      return;
    }
    if (!is_config_section(path)) fail_at(source.at(key_line), path, unknown_key_message(path));
    if (node.is_null()) return;  // "train:" with every key below it commented out
    if (!node.is_mapping()) {
      fail_at(
          source.at(node.line), path,
          fmt::format("expected a mapping of keys ({}), got {}", config_section_keys(path), describe(node)));
    }
    for (const YamlEntry& entry : node.entries) {
      check_key(source, path, entry);
      apply(source, join_key(path, entry.key), entry.key_line, entry.value);
    }
  }

  // A key inside YAML names one level. Joined into a dotted path, "train.lr" at the top level (or an
  // empty key) would reach the same field as a nested key and slip past the duplicate-key check, so
  // only the override's own key, before '=', may be a dotted path.
  static void check_key(const Source& source, const std::string& parent, const YamlEntry& entry) {
    if (entry.key.empty()) {
      fail_at(source.at(entry.key_line), join_key(parent, "\"\""), "empty key; remove it or name the key");
    }
    const size_t dot = entry.key.rfind('.');
    if (dot == std::string::npos) return;
    fail_at(source.at(entry.key_line), join_key(parent, entry.key),
            fmt::format("dotted keys are for command-line overrides; nest it under {}:",
                        join_key(parent, std::string_view(entry.key).substr(0, dot))));
  }

  // A plain scalar that should be a number; the error says what was found instead.
  static const std::string& number_text(const Source& source, const ConfigField& field, const YamlNode& node,
                                        std::string_view expected) {
    if (node.is_scalar() && !node.quoted) return node.text;
    const bool quoted_number = node.is_scalar() && scalar_to_double(node.text).has_value();
    fail_at(source.at(node.line), field.name,
            fmt::format("expected {}, got {}{}", expected, describe(node),
                        quoted_number ? " (a quoted string; write numbers without quotes)" : ""));
  }

  static void check_bounds(const Source& source, const ConfigField& field, const YamlNode& node,
                           double value) {
    if (field.bounds.contains(value)) return;
    const std::string note = field.note.empty() ? "" : fmt::format(" ({})", field.note);
    fail_at(source.at(node.line), field.name,
            fmt::format("must be {}{}, got {}", field.bounds.describe(), note, node.text));
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node, int64_t& out) {
    const std::string& text = number_text(source, field, node, "an integer");
    auto value = scalar_to_int64(text);
    if (!value) {
      fail_at(source.at(node.line), field.name, fmt::format("expected an integer, got {}", describe(node)));
    }
    check_bounds(source, field, node, static_cast<double>(*value));
    out = *value;
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node, int& out) {
    int64_t wide = 0;
    read(source, field, node, wide);
    constexpr int64_t kMin = std::numeric_limits<int>::min(), kMax = std::numeric_limits<int>::max();
    if (wide < kMin || wide > kMax) {
      fail_at(source.at(node.line), field.name,
              fmt::format("must be {} {}, got {}", wide > kMax ? "<=" : ">=", wide > kMax ? kMax : kMin,
                          node.text));
    }
    out = static_cast<int>(wide);
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node, uint64_t& out) {
    const std::string& text = number_text(source, field, node, "an integer");
    auto value = scalar_to_uint64(text);
    if (!value && scalar_to_int64(text)) {
      fail_at(source.at(node.line), field.name, fmt::format("must be >= 0, got {}", text));
    }
    if (!value) {
      fail_at(source.at(node.line), field.name,
              fmt::format("expected an integer from 0 to {}, got {}", std::numeric_limits<uint64_t>::max(),
                          describe(node)));
    }
    check_bounds(source, field, node, static_cast<double>(*value));
    out = *value;
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node, double& out) {
    const std::string& text = number_text(source, field, node, "a number");
    auto value = scalar_to_double(text);
    if (!value) {
      fail_at(source.at(node.line), field.name, fmt::format("expected a number, got {}", describe(node)));
    }
    check_bounds(source, field, node, *value);
    out = *value;
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node, std::string& out) {
    if (!node.is_scalar()) {
      fail_at(source.at(node.line), field.name, fmt::format("expected a string, got {}", describe(node)));
    }
    if (node.text.empty() && !field.allow_empty) {
      fail_at(source.at(node.line), field.name, "must not be empty");
    }
    const auto& choices = field.choices;
    if (!choices.empty() && std::find(choices.begin(), choices.end(), node.text) == choices.end()) {
      std::string suggestion = closest_name(node.text, choices);
      fail_at(source.at(node.line), field.name,
              fmt::format("expected one of {}, got {}{}", fmt::join(choices, ", "), describe(node),
                          suggestion.empty() ? "" : fmt::format("; did you mean {}?", suggestion)));
    }
    out = node.text;
  }

  static void read(const Source& source, const ConfigField& field, const YamlNode& node,
                   std::vector<std::string>& out) {
    std::vector<std::string> paths;
    auto add = [&](const YamlNode& item, const std::string& key) {
      if (!item.is_scalar()) {
        fail_at(source.at(item.line), key, fmt::format("expected a path, got {}", describe(item)));
      }
      if (item.text.empty()) fail_at(source.at(item.line), key, "a path must not be empty");
      paths.push_back(item.text);
    };
    if (node.is_sequence()) {
      for (size_t i = 0; i < node.items.size(); ++i) add(node.items[i], fmt::format("{}[{}]", field.name, i));
    } else if (node.is_scalar()) {
      add(node, std::string(field.name));
    } else {
      fail_at(source.at(node.line), field.name,
              fmt::format("expected a path or a list of paths, got {}", describe(node)));
    }
    out = std::move(paths);
  }

  RunConfig& config_;
  std::string file_;
  std::map<std::string, std::string> set_at_;  // key -> where it was last set, as a message prefix
};

// Numbers as fmt writes them: the shortest form that reads back exactly, which for doubles is what
// makes parse_config(to_yaml(c)) == c hold bit for bit.
template <class Number>
std::string format_value(Number value) {
  return fmt::format("{}", value);
}
std::string format_value(const std::string& value) {
  return yaml_quote(value);
}
std::string format_value(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  for (const std::string& v : values) quoted.push_back(yaml_quote(v));
  return fmt::format("[{}]", fmt::join(quoted, ", "));
}

std::vector<std::string_view> split_dots(std::string_view name) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

}  // namespace

RunConfig parse_config(const std::string& yaml_text, const std::string& name,
                       const std::vector<std::string>& overrides) {
  RunConfig config;
  ConfigReader reader(config, name);
  reader.read_file(yaml_text);
  for (const std::string& text : overrides) reader.read_override(text);
  reader.validate();
  config.source = name;
  return config;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(read_whole_file(path, "the config", ""), path, overrides);
}

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;  // the field accessors take a mutable config
  std::string out;
  std::vector<std::string_view> open_sections;
  for (const ConfigField& field : config_fields()) {
    std::vector<std::string_view> sections = split_dots(field.name);
    const std::string_view key = sections.back();
    sections.pop_back();
    size_t common = 0;
    while (common < sections.size() && common < open_sections.size() &&
           sections[common] == open_sections[common]) {
      ++common;
    }
    if (common == 0 && !out.empty() && (!sections.empty() || !open_sections.empty())) out += "\n";
    for (size_t depth = common; depth < sections.size(); ++depth) {
      out += fmt::format("{:{}}{}:\n", "", 2 * depth, sections[depth]);
    }
    open_sections = std::move(sections);
    const std::string value = std::visit([&](auto ref) { return format_value(ref(copy)); }, field.ref);
    out += fmt::format("{:{}}{}: {}\n", "", 2 * open_sections.size(), key, value);
  }
  return out;
}

}  // namespace inkstone
