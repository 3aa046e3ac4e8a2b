// `inkstone prepare`: corpus -> cleaned documents -> train/val split -> token shards, written with
// tokenizer.json and prepare.json (this report) into DataConfig::dir.
//
// data.train_only adds documents to the training split only; with data.decontaminate_chars, those that
// quote a validation document are dropped first (runtime/text_overlap.h). data.corpus_repeat writes
// the corpus's training documents that many times.
// With data.tokenizer: train, a byte-level BPE vocabulary is first trained on the training documents
// (never on validation ones, whose text would then leak into what validation measures).
// Each document is preceded by <|endoftext|> (GPT-2's convention), so a document boundary is always
// visible to the model and the first token of a window never depends on the previous document's end.
// The directory is built beside its destination and renamed into place: a failed run leaves an
// existing prepared directory exactly as it was, and only an empty directory or one holding nothing
// but what prepare writes (prepare.json, tokenizer.json, train_*.bin, val_*.bin) is ever replaced.
// The output folder must not be inside the corpus, where a second run would read the first's output.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/config.h"
#include "runtime/corpus.h"

namespace inkstone {

inline constexpr const char* kPrepareReportFile = "prepare.json";
inline constexpr const char* kTokenizerFile = "tokenizer.json";
// DataConfig::tokenizer asking prepare to train a byte-level BPE vocabulary on the training documents.
inline constexpr std::string_view kTrainedTokenizer = "train";

struct ShardInfo {
  std::string file;  // name inside the prepared directory, e.g. train_00000.bin
  uint64_t tokens = 0;
  uint64_t text_bytes = 0;
};

struct SplitReport {
  size_t documents = 0;
  uint64_t text_bytes = 0;
  uint64_t tokens = 0;  // text tokens plus one <|endoftext|> per document
  std::vector<ShardInfo> shards;
};

struct PrepareReport {
  DataConfig data;
  std::string tokenizer_name;
  int32_t vocab_size = 0;
  int32_t eot_id = 0;
  std::string tokenizer_sha256;  // hex, tokenizer_hash of the written tokenizer.json
  uint64_t split_seed = 0;
  std::vector<CorpusFile> files;
  CorpusStats corpus;
  // data.train_only: what was read, and how many of its documents were dropped for sharing a run of
  // data.decontaminate_chars characters with a validation document (the rest are in train).
  std::vector<CorpusFile> train_only_files;
  CorpusStats train_only_corpus;
  size_t train_only_dropped = 0;
  SplitReport train;
  SplitReport val;

  std::string to_json() const;  // the prepare.json text
};

// Throws inkstone::Error (one line naming the input and the fix) on any problem, leaving data.dir as
// it was. `log` gets a few lines of counts.
PrepareReport prepare_corpus(const DataConfig& config, std::ostream& log);

}  // namespace inkstone
