// Finds documents that share a run of text with a set of reference documents. prepare uses it to keep
// validation text out of text added for training only (data.train_only): a collection of quotations
// that quotes a held-out poem would otherwise teach the model the very lines validation measures
// (the contamination GPT-3's 13-gram filter removes).
//
// A run is `chars` consecutive Unicode characters with whitespace skipped, so a line quoted with
// other line breaks or indentation still matches. Characters, not words: Chinese has no spaces, and a
// line of a Tang poem is five or seven characters (8 catches any quote that runs past one line end;
// for English text, about 50 characters is the 13 words of GPT-3's filter).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace inkstone {

class TextOverlapIndex {
 public:
  // Indexes every run of `chars` (>= 1) characters of the references. The texts must be valid UTF-8.
  TextOverlapIndex(const std::vector<std::string_view>& references, size_t chars);

  // True when `text` (valid UTF-8) holds one of the indexed runs.
  bool overlaps(std::string_view text) const;

  size_t runs() const { return runs_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  size_t chars_;
  std::unordered_set<std::string, Hash, std::equal_to<>> runs_;
};

}  // namespace inkstone
