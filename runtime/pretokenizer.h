// The pre-tokenizer of byte-level BPE: it cuts text into pieces, and merges never cross a piece.
//
//   gpt2      GPT-2's rule, the regex of openai/gpt-2 (and tiktoken's "gpt2" encoding)
//               's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//             written by hand on Unicode general categories (runtime/unicode_tables.h): \p{L} letters,
//             \p{N} numbers, \s the White_Space property. The alternatives are tried in that order at
//             each position, as a backtracking regex engine does.
//   gpt2-cjk  every CJK ideograph (kCjkRanges) a piece of its own, and GPT-2's rule on the text between
//             them. As a Hugging Face pre_tokenizer: Sequence[Split(CJK class, "Isolated"),
//             ByteLevel(use_regex=true)]. Tokens then never span two characters of Chinese, so a
//             vocabulary spends its merges on whole characters rather than on frequent phrases.
//
// Text that is not valid UTF-8 is cut as if each invalid byte were a character of its own that is
// neither letter, number nor space (so every byte string has pieces, and decode(encode(x)) == x).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/unicode_tables.h"

namespace inkstone {

enum class PreTokenizerRule : uint8_t { Gpt2, Gpt2Cjk };

// "gpt2" / "gpt2-cjk"; parse throws inkstone::Error naming `what` (e.g. "--pre-tokenizer") otherwise.
std::string_view rule_name(PreTokenizerRule rule);
PreTokenizerRule parse_pre_tokenizer_rule(std::string_view name, std::string_view what);

// Code point ranges [first, last] of the CJK ideographs gpt2-cjk isolates: the CJK Unified Ideographs
// and their extensions A-I and the compatibility ideographs.
extern const std::vector<CodePointRange> kCjkRanges;

// Appends the pieces of `text` to `pieces`, in order; they are views into `text` and tile it exactly.
void pre_tokenize(std::string_view text, PreTokenizerRule rule, std::vector<std::string_view>& pieces);

}  // namespace inkstone
