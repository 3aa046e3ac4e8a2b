#include "runtime/corpus.h"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/error.h"
#include "runtime/read_file.h"
#include "runtime/sha256.h"
#include "runtime/utf8.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

bool is_hidden(const fs::path& path) {
  return path.filename().string().starts_with('.');
}

bool has_glob_chars(const std::string& spec) {
  return spec.find_first_of("*?[") != std::string::npos;
}

std::vector<std::string> files_below(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (is_hidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  if (ec) fail("{}: cannot list the corpus folder ({})", dir.string(), ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> glob_matches(const std::string& pattern) {
  // A folder of the pattern that does not exist is simply no match; any other read error is reported.
  const auto on_error = [](const char*, int error) { return error == ENOENT || error == ENOTDIR ? 0 : 1; };
  glob_t result{};
  const int rc = ::glob(pattern.c_str(), 0, on_error, &result);
  std::vector<std::string> matches;
  if (rc == 0) matches.assign(result.gl_pathv, result.gl_pathv + result.gl_pathc);  // sorted by glob(3)
  ::globfree(&result);
  if (rc != 0 && rc != GLOB_NOMATCH)
    fail("corpus '{}': cannot expand the pattern (glob error {})", pattern, rc);
  return matches;
}

// The regular files one path stands for: itself, or those below it when it is a folder.
std::vector<std::string> files_of_path(const std::string& path, const std::string& spec) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (fs::is_regular_file(status)) return {path};
  if (fs::is_directory(status)) return files_below(path);
  if (fs::exists(status)) fail("corpus '{}': {} is neither a regular file nor a folder", spec, path);
  return {};
}

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\n\v\f") == std::string_view::npos;
}

}  // namespace

InvalidUtf8Policy parse_invalid_utf8_policy(const std::string& value) {
  if (value == "error") return InvalidUtf8Policy::kError;
  if (value == "replace") return InvalidUtf8Policy::kReplace;
  fail("data.invalid_utf8 is '{}'; use error or replace", value);
}

std::vector<std::string> expand_corpus(const std::vector<std::string>& specs) {
  if (specs.empty()) fail("data.corpus is empty; name at least one file, folder or glob");
  std::vector<std::string> files;
  std::set<fs::path> seen;  // canonical paths, so that links and overlapping specs add a file once
  for (const std::string& spec : specs) {
    std::vector<std::string> matched;
    for (const std::string& path :
         has_glob_chars(spec) ? glob_matches(spec) : std::vector<std::string>{spec}) {
      for (std::string& file : files_of_path(path, spec)) matched.push_back(std::move(file));
    }
    if (matched.empty()) fail("corpus '{}' matches no files", spec);
    for (std::string& file : matched) {
      std::error_code ec;
      fs::path canonical = fs::weakly_canonical(file, ec);
      if (seen.insert(ec ? fs::path(file) : canonical).second) files.push_back(std::move(file));
    }
  }
  return files;
}

std::string clean_corpus_text(std::string_view raw, const std::string& name, InvalidUtf8Policy policy,
                              CorpusStats& stats) {
  if (policy == InvalidUtf8Policy::kError) {
    if (const auto bad = find_invalid_utf8(raw)) {
      fail(
          "{}: invalid UTF-8 at byte {} (0x{:02x}); fix the file or set data.invalid_utf8: replace "
          "(--invalid-utf8 replace)",
          name, *bad, static_cast<unsigned char>(raw[*bad]));
    }
    return clean_text(raw, stats.clean);
  }
  Utf8Repair repaired = repair_utf8(raw);
  stats.invalid_utf8_replacements += repaired.replacements;
  return clean_text(repaired.text, stats.clean);
}

std::vector<DocumentSpan> split_documents(std::string_view text, std::string_view separator,
                                          CorpusStats& stats) {
  std::vector<DocumentSpan> documents;
  const auto add = [&](size_t begin, size_t end) {
    if (is_blank(text.substr(begin, end - begin))) {
      ++stats.blank_documents_dropped;
    } else {
      documents.push_back({begin, end - begin});
    }
  };
  size_t doc_begin = 0;
  if (!separator.empty()) {
    for (size_t line_begin = 0; line_begin < text.size();) {
      const size_t newline = text.find('\n', line_begin);
      const size_t line_end = newline == std::string_view::npos ? text.size() : newline;
      const size_t next = newline == std::string_view::npos ? text.size() : newline + 1;
      if (text.substr(line_begin, line_end - line_begin) == separator) {
        add(doc_begin, line_begin);
        ++stats.separator_lines;
        doc_begin = next;
      }
      line_begin = next;
    }
  }
  add(doc_begin, text.size());
  return documents;
}

std::string_view Corpus::document(size_t i) const {
  const Document& d = documents_[i];
  return std::string_view(texts_[d.file]).substr(d.span.begin, d.span.size);
}

size_t Corpus::hold_out_tail(double fraction) {
  if (documents_.size() != 1 || !(fraction > 0 && fraction < 1)) {
    fail("internal: hold_out_tail needs one document and a fraction in (0, 1)");
  }
  const Document whole = documents_[0];
  const std::string_view text = document(0);
  const auto target = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - fraction));
  // The start of the line that holds the target byte, else the next line's, else the character there.
  size_t cut = text.rfind('\n', target == 0 ? 0 : target - 1);
  cut = cut == std::string_view::npos ? 0 : cut + 1;
  if (cut == 0) {
    const size_t next = text.find('\n', target);
    cut = next == std::string_view::npos ? 0 : next + 1;
  }
  if (cut == 0 || cut >= text.size()) {
    cut = target;
    while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  }
  if (cut == 0 || cut >= text.size()) {
    fail(
        "the corpus is one document of {} bytes, too short to hold out a validation slice; set "
        "data.val_fraction: 0 or give more text",
        text.size());
  }
  documents_ = {{whole.file, {whole.span.begin, cut}},
                {whole.file, {whole.span.begin + cut, text.size() - cut}}};
  return text.size() - cut;
}

Corpus read_corpus(const DataConfig& config, const std::vector<std::string>& files, std::string_view key) {
  const InvalidUtf8Policy policy = parse_invalid_utf8_policy(config.invalid_utf8);
  Corpus corpus;
  CorpusStats& stats = corpus.stats_;
  for (const std::string& path : files) {
    const std::string raw = read_whole_file(path, "the corpus file");
    corpus.files_.push_back({path, raw.size(), sha256_hex(raw)});
    stats.raw_bytes += raw.size();
    const size_t file_index = corpus.texts_.size();
    corpus.texts_.push_back(clean_corpus_text(raw, path, policy, stats));
    for (const DocumentSpan& span : split_documents(corpus.texts_.back(), config.document_separator, stats)) {
      corpus.documents_.push_back({file_index, span});
      stats.document_bytes += span.size;
    }
  }
  stats.files = corpus.files_.size();
  stats.documents = corpus.documents_.size();
  if (stats.documents == 0) {
    fail("{} is empty: {} files, 0 bytes of text after cleaning; check {}",
         key == "data.corpus" ? "corpus" : key, stats.files, key);
  }
  return corpus;
}

Corpus read_corpus(const DataConfig& config) {
  parse_invalid_utf8_policy(config.invalid_utf8);  // a bad setting is reported before the files
  return read_corpus(config, expand_corpus(config.corpus));
}

}  // namespace inkstone
