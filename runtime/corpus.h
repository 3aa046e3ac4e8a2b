// A corpus: the files named by DataConfig::corpus, read, checked, cleaned and split into documents.
// Nothing is dropped silently: separator lines and blank documents are counted in CorpusStats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/config.h"
#include "runtime/text_clean.h"

namespace inkstone {

enum class InvalidUtf8Policy { kError, kReplace };
InvalidUtf8Policy parse_invalid_utf8_policy(const std::string& value);  // "error" | "replace"

// Each spec is a file, a folder (every regular file below it, recursively, hidden entries skipped)
// or a glob(3) pattern; folders within a glob's matches are expanded the same way. Files come in spec
// order, each folder or glob sorted; a file reached twice is kept once. Throws inkstone::Error when
// there is no spec or a spec matches no file.
std::vector<std::string> expand_corpus(const std::vector<std::string>& specs);

struct CorpusFile {
  std::string path;
  uint64_t bytes = 0;  // as read, before cleaning
  std::string sha256;  // of the bytes as read
};

struct CorpusStats {
  size_t files = 0;
  uint64_t raw_bytes = 0;       // as read
  uint64_t document_bytes = 0;  // cleaned text in the kept documents
  size_t documents = 0;
  size_t blank_documents_dropped = 0;  // empty or whitespace only
  size_t separator_lines = 0;
  size_t invalid_utf8_replacements = 0;
  CleanStats clean;
};

// UTF-8 check (or repair) of one file's bytes, then clean_text. `name` is the file in messages;
// the byte offset in an invalid-UTF-8 error is into `raw`, so it can be found with a hex editor.
std::string clean_corpus_text(std::string_view raw, const std::string& name, InvalidUtf8Policy policy,
                              CorpusStats& stats);

struct DocumentSpan {
  size_t begin = 0;
  size_t size = 0;
};

// Splits cleaned text on lines equal to `separator` (the lines themselves are dropped); with an
// empty separator the whole text is one document. Blank documents are dropped and counted.
std::vector<DocumentSpan> split_documents(std::string_view text, std::string_view separator,
                                          CorpusStats& stats);

class Corpus {
 public:
  size_t num_documents() const { return documents_.size(); }
  std::string_view document(size_t i) const;
  size_t document_file(size_t i) const { return documents_[i].file; }  // index into files()
  const std::vector<CorpusFile>& files() const { return files_; }
  const CorpusStats& stats() const { return stats_; }

  // A corpus of one document (a novel in one file) has nothing whole to hold out: this cuts it in two
  // at the start of the line where its last `fraction` of bytes begins (or, in a text without line
  // breaks, at the character there), so that document 1 is the tail, as nanoGPT holds out the end of
  // Shakespeare. Returns the tail's size in bytes. Requires exactly one document and 0 < fraction < 1;
  // throws inkstone::Error when the document is too short to leave text on both sides.
  size_t hold_out_tail(double fraction);

 private:
  friend Corpus read_corpus(const DataConfig& config, const std::vector<std::string>& files,
                            std::string_view key);
  struct Document {
    size_t file;
    DocumentSpan span;
  };
  std::vector<CorpusFile> files_;
  std::vector<std::string> texts_;  // cleaned text, one per file; documents point into these
  std::vector<Document> documents_;
  CorpusStats stats_;
};

// Reads `files` (expand_corpus's list) with config's UTF-8 policy and document separator. Throws
// inkstone::Error naming the file on unreadable files or invalid UTF-8 (policy "error"), and when no
// document with text remains (naming `key`, the config key that listed the files).
Corpus read_corpus(const DataConfig& config, const std::vector<std::string>& files,
                   std::string_view key = "data.corpus");

// read_corpus of every file of config.corpus.
Corpus read_corpus(const DataConfig& config);

}  // namespace inkstone
