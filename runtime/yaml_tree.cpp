#include "runtime/yaml_tree.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <optional>
#include <sstream>
#include <string_view>

namespace inkstone {
namespace {

int line_of(const YAML::Mark& mark) {
  return mark.is_null() ? 0 : mark.line + 1;
}

std::string join_key(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// A config has a few hundred nodes. The cap stops a "billion laughs" file, whose aliases nest
// copies of copies, from expanding into more memory than the machine has.
constexpr size_t kMaxNodes = 100'000;

// yaml-cpp's tags for an untagged plain value ("?"), a quoted one or one tagged just "!" ("!"),
// and !!str. Any other tag (!!float, !!int, !custom) would ask for a conversion the schema
// does not do, so it is refused rather than silently ignored.
constexpr const char* kPlainTag = "?";
constexpr const char* kNonSpecificTag = "!";
constexpr const char* kStrTag = "tag:yaml.org,2002:str";

std::string shown_tag(const std::string& tag) {
  constexpr std::string_view kCorePrefix = "tag:yaml.org,2002:";
  if (tag.rfind(kCorePrefix, 0) == 0) return "!!" + tag.substr(kCorePrefix.size());
  return tag;
}

// Builds the tree from parser events with an explicit stack of open containers, so deep nesting
// cannot overflow the C++ stack. Every completed node is handed to add(), which places it in the
// innermost open container (or makes it the root).
//
// An error found here (a duplicate key, say) is kept and the remaining events are ignored, so the
// parser still reads to the end: a syntax error, which yaml-cpp reports only when it gets there,
// explains a broken file better than whatever half-parsed events it produced before.
class TreeBuilder final : public YAML::EventHandler {
 public:
  std::optional<YamlNode>& root() { return root_; }
  const std::optional<YamlError>& error() const { return error_; }
  int document_line() const { return document_line_; }

  void OnDocumentStart(const YAML::Mark& mark) override { document_line_ = line_of(mark); }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    guarded([&] {
      YamlNode node;
      node.line = line_of(mark);
      count_nodes(1, node.line);
      add(std::move(node), anchor, 1);
    });
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    guarded([&] {
      auto it = anchors_.find(anchor);
      if (it == anchors_.end()) throw YamlError(line_of(mark), "", "an alias names an unknown anchor");
      // Counted before copying, so an alias that would blow the cap never allocates its copy.
      count_nodes(it->second.nodes, line_of(mark));
      YamlNode copy = it->second.node;
      copy.line = line_of(mark);
      add(std::move(copy), 0, it->second.nodes);
    });
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    guarded([&] {
      YamlNode node;
      node.kind = YamlNode::Kind::kScalar;
      node.line = line_of(mark);
      check_tag(tag, node.line, /*str_allowed=*/true);
      node.text = value;
      node.quoted = tag == kNonSpecificTag || tag == kStrTag;
      count_nodes(1, node.line);
      add(std::move(node), anchor, 1);
    });
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    guarded([&] { open(YamlNode::Kind::kSequence, mark, tag, anchor); });
  }
  void OnSequenceEnd() override {
    guarded([&] { close(); });
  }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    guarded([&] { open(YamlNode::Kind::kMapping, mark, tag, anchor); });
  }
  void OnMapEnd() override {
    guarded([&] { close(); });
  }

 private:
  template <class Handle>
  void guarded(Handle&& handle) {
    if (error_) return;
    try {
      handle();
    } catch (YamlError& e) {
      error_ = std::move(e);
    }
  }

  struct OpenContainer {
    YamlNode node;
    size_t nodes = 1;  // in this subtree, keys and alias copies included
    YAML::anchor_t anchor = 0;
    std::string path;                  // dotted key of this container, for messages
    std::optional<YamlEntry> pending;  // mappings: a key read, its value not yet
  };

  // The dotted path a new child of the innermost container would have.
  std::string child_path(int line) const {
    if (stack_.empty()) return "";
    const OpenContainer& top = stack_.back();
    if (top.node.is_sequence()) return fmt::format("{}[{}]", top.path, top.node.items.size());
    if (!top.pending)
      throw YamlError(line, top.path, "a mapping key must be a plain value, not a list or mapping");
    return join_key(top.path, top.pending->key);
  }

  // The dotted path of the value being read, for messages; a mapping key gives its mapping's path.
  std::string current_path(int line) const {
    if (!stack_.empty() && stack_.back().node.is_mapping() && !stack_.back().pending)
      return stack_.back().path;
    return child_path(line);
  }

  void check_tag(const std::string& tag, int line, bool str_allowed) const {
    if (tag.empty() || tag == kPlainTag || tag == kNonSpecificTag || (str_allowed && tag == kStrTag)) return;
    throw YamlError(line, current_path(line),
                    fmt::format("YAML tag {} is not supported; remove it (quote a value to make it a string)",
                                shown_tag(tag)));
  }

  void count_nodes(size_t added, int line) {
    nodes_built_ += added;
    if (nodes_built_ > kMaxNodes) {
      throw YamlError(line, current_path(line),
                      fmt::format("too many YAML nodes (aliases expand to more than {}); a config needs a "
                                  "few hundred, so write the values out instead of nesting aliases",
                                  kMaxNodes));
    }
  }

  void open(YamlNode::Kind kind, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor) {
    OpenContainer container;
    container.node.kind = kind;
    container.node.line = line_of(mark);
    check_tag(tag, container.node.line, /*str_allowed=*/false);
    count_nodes(1, container.node.line);
    container.anchor = anchor;
    container.path = child_path(container.node.line);
    stack_.push_back(std::move(container));
  }

  void close() {
    OpenContainer container = std::move(stack_.back());
    stack_.pop_back();
    add(std::move(container.node), container.anchor, container.nodes);
  }

  // Places a node already counted by count_nodes; `nodes` is the size of its subtree.
  void add(YamlNode node, YAML::anchor_t anchor, size_t nodes) {
    if (anchor != 0) anchors_[anchor] = Anchored{node, nodes};
    if (stack_.empty()) {
      root_ = std::move(node);
      return;
    }
    OpenContainer& top = stack_.back();
    top.nodes += nodes;
    if (top.node.is_sequence()) {
      top.node.items.push_back(std::move(node));
    } else if (top.pending) {
      if (node.is_null())
        node.line = top.pending->key_line;  // yaml-cpp marks an empty value on the next line
      top.pending->value = std::move(node);
      top.node.entries.push_back(std::move(*top.pending));
      top.pending.reset();
    } else {
      add_key(top, node);
    }
  }

  static void add_key(OpenContainer& map, const YamlNode& key) {
    if (!key.is_scalar()) {
      throw YamlError(key.line, map.path,
                      "a mapping key must be a plain value, not a list, mapping or nothing");
    }
    for (const YamlEntry& entry : map.node.entries) {
      if (entry.key == key.text) {
        throw YamlError(
            key.line, join_key(map.path, key.text),
            fmt::format("duplicate key (first set on line {}); keep one of them", entry.key_line));
      }
    }
    map.pending = YamlEntry{key.text, key.line, {}};
  }

  std::vector<OpenContainer> stack_;
  std::optional<YamlNode> root_;
  struct Anchored {
    YamlNode node;
    size_t nodes = 0;
  };
  std::map<YAML::anchor_t, Anchored> anchors_;
  size_t nodes_built_ = 0;
  std::optional<YamlError> error_;
  int document_line_ = 0;
};

}  // namespace

YamlNode parse_yaml(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  TreeBuilder first;
  try {
    const bool has_document = parser.HandleNextDocument(first);
    if (first.error()) throw *first.error();
    if (!has_document || !first.root()) return YamlNode{};
    TreeBuilder second;
    if (parser.HandleNextDocument(second)) {
      throw YamlError(second.document_line(), "",
                      "a second YAML document starts here ('---'); a config holds exactly one");
    }
  } catch (const YAML::ParserException& e) {
    throw YamlError(line_of(e.mark), "", "YAML syntax error: " + e.msg);
  }
  return std::move(*first.root());
}

}  // namespace inkstone
