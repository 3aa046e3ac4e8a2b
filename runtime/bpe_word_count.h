// Counting the distinct pieces (words) of a training corpus for the BPE trainer, on many threads.
//
// Each text is cut into chunks only where the pieces of the chunks are exactly the pieces of the
// whole text: right before a '\n' that is followed by a character that is not white space, or that
// follows one (no alternative reaches from a non-space across the '\n' after it). In the first case,
// under GPT-2's rule that '\n' is a piece of its own, and the white space before it (if any) one piece that
// ends there: \s+(?!\S) stops short of the last space of a run followed by a non-space, and only the
// plain ' ' may prefix a word. That whitespace piece also ends a chunk that ends there, since the end
// of the text is no non-space either. (A cut right AFTER the '\n' would not do: at a chunk's end
// "  \n\n" is one piece, in the whole text "  \n" and "\n".) The rule looks at no text before a
// piece's start, so the pieces after the cut are the same too. Under gpt2-cjk GPT-2's rule runs on
// the text between ideographs, so a '\n' followed by an ideograph is cut after instead: there the
// text ends either way.
// The per-thread counts are summed and the words sorted by their bytes, so the result is the same for
// any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/pretokenizer.h"

namespace inkstone {

struct WordCount {
  std::string_view word;  // a view into one of the counted texts
  int64_t count = 0;
};

struct WordCounts {
  std::vector<WordCount> words;  // distinct pieces, sorted by bytes
  int64_t pieces = 0;            // all pieces, repeats included
};

// Offsets inside `text` where counting may start a new chunk, each at least `min_chunk_bytes` after
// the previous one (or the start), ascending, never 0 or text.size().
std::vector<size_t> piece_safe_cuts(std::string_view text, PreTokenizerRule rule, size_t min_chunk_bytes);

// `threads` <= 0 takes every core. The views in the result point into `texts`.
WordCounts count_words(std::span<const std::string_view> texts, PreTokenizerRule rule, int threads);

}  // namespace inkstone
