// A YAML document as a small tree that remembers the line of every node and never holds a key
// twice in one mapping. yaml-cpp's own Node silently keeps one of two equal keys and forgets
// whether a scalar was quoted, and a strict config needs both, so we build the tree ourselves
// from the parser's events.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace inkstone {

struct YamlEntry;

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMapping };

  Kind kind = Kind::kNull;
  int line = 0;                    // 1-based; 0 when unknown
  std::string text;                // scalars
  bool quoted = false;             // a quoted (or !!str) scalar is a string, never a number
  std::vector<YamlNode> items;     // sequences
  std::vector<YamlEntry> entries;  // mappings, in document order, keys unique

  bool is_null() const { return kind == Kind::kNull; }
  bool is_scalar() const { return kind == Kind::kScalar; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_mapping() const { return kind == Kind::kMapping; }
};

struct YamlEntry {
  std::string key;
  int key_line = 0;
  YamlNode value;
};

// A syntax error, a duplicate key, a non-scalar key, a second document, a tag other than !!str or
// aliases that expand past the node cap (a "billion laughs" file). `key` is the dotted path
// of the offending key ("train.lr", "data.corpus[2]") or empty when the error is not about one.
class YamlError : public std::runtime_error {
 public:
  YamlError(int line_, std::string key_, const std::string& message)
      : std::runtime_error(message), line(line_), key(std::move(key_)) {}
  int line;
  std::string key;
};

// Parses one YAML document. Empty input (or only comments) gives a null node with line 0.
// A null value inside a mapping carries its key's line. Aliases are expanded, up to 100,000 nodes in
// all. Throws YamlError.
YamlNode parse_yaml(const std::string& text);

}  // namespace inkstone
