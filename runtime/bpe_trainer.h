// Training a byte-level BPE vocabulary on a corpus.
//
// Words: the corpus is pre-tokenized (runtime/pretokenizer.h) and each distinct piece counted, in
// parallel over chunks of the text; the counts are merged in a fixed order, so the result does not
// depend on the thread count. Merges: pair counts over the distinct words are kept up to date
// incrementally as each merge rewrites only the words that hold its pair, and the next pair comes
// from a priority queue (stale entries skipped when popped), so the corpus is never rescanned.
// Ties between equally frequent pairs go to the pair whose (left bytes, right bytes) sorts first, so
// the same corpus and settings give the same vocabulary everywhere.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/bpe_tokenizer.h"

namespace inkstone {

struct BpeTrainerConfig {
  int vocab_size = 8192;  // bytes + merges + specials; >= 256 + specials
  PreTokenizerRule rule = PreTokenizerRule::Gpt2;
  int64_t min_frequency = 2;  // a pair seen fewer times is never merged (training may stop short)
  std::vector<std::string> specials = {std::string(kEndOfText)};
  int threads = 0;  // 0: all the machine has
};

struct BpeTrainingStats {
  int64_t corpus_bytes = 0, pieces = 0, distinct_words = 0;
  double count_seconds = 0, merge_seconds = 0;
};

// Throws inkstone::Error when the config is invalid (vocab_size below 256 + specials) or the texts
// hold no text at all. The specials come first after the 256 bytes (<|endoftext|> = 256 by default).
BpeModel train_bpe(std::span<const std::string_view> texts, const BpeTrainerConfig& config,
                   BpeTrainingStats* stats = nullptr);

}  // namespace inkstone
