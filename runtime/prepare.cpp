#include "runtime/prepare.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "runtime/bpe_tokenizer.h"
#include "runtime/bpe_trainer.h"
#include "runtime/document_split.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/staging_dir.h"
#include "runtime/text_overlap.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

// Five digits so that names sort in shard order up to 100,000 shards (at the default shard size,
// far more tokens than any corpus this project prepares).
std::string shard_file_name(std::string_view prefix, size_t index) {
  return fmt::format("{}_{:05d}.bin", prefix, index);
}

// train_NNNNN.bin or val_NNNNN.bin, of any width: the names this or an earlier version wrote.
bool is_shard_file_name(const std::string& name) {
  for (const std::string_view prefix : {"train_", "val_"}) {
    if (!name.starts_with(prefix) || !name.ends_with(".bin")) continue;
    const std::string_view digits =
        std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - 4);
    if (!digits.empty() &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return true;
  }
  return false;
}

// Fills shards of at most `shard_tokens` tokens, writing each as it fills. A document may straddle
// two shards; its bytes are then divided by decoding the part in the first shard, which is exact
// for byte-level tokenizers (every token stands for whole bytes).
class ShardSink {
 public:
  ShardSink(fs::path dir, std::string prefix, const Tokenizer& tokenizer, uint64_t shard_tokens,
            const Sha256Digest& tokenizer_sha256)
      : dir_(std::move(dir)),
        prefix_(std::move(prefix)),
        tokenizer_(tokenizer),
        shard_tokens_(shard_tokens),
        tokenizer_sha256_(tokenizer_sha256) {}

  void add_document(std::string_view text) {
    const int32_t eot = tokenizer_.eot_id();
    append({&eot, 1}, 0);
    append(tokenizer_.encode(text), text.size());
    ++report_.documents;
    report_.text_bytes += text.size();
  }

  SplitReport finish() {
    flush();
    return report_;
  }

 private:
  void append(std::span<const int32_t> ids, uint64_t text_bytes) {
    while (!ids.empty()) {
      const size_t room = shard_tokens_ - buffer_.size();
      if (ids.size() <= room) {
        buffer_.insert(buffer_.end(), ids.begin(), ids.end());
        buffer_bytes_ += text_bytes;
        return;
      }
      const std::span<const int32_t> head = ids.first(room);
      const uint64_t head_bytes = std::min<uint64_t>(text_bytes, tokenizer_.decode(head).size());
      buffer_.insert(buffer_.end(), head.begin(), head.end());
      buffer_bytes_ += head_bytes;
      text_bytes -= head_bytes;
      ids = ids.subspan(room);
      flush();
    }
  }

  void flush() {
    if (buffer_.empty()) return;
    ShardInfo info{shard_file_name(prefix_, report_.shards.size()), buffer_.size(), buffer_bytes_};
    write_token_shard(dir_ / info.file, buffer_, static_cast<uint32_t>(tokenizer_.vocab_size()),
                      buffer_bytes_, tokenizer_sha256_);
    report_.tokens += info.tokens;
    report_.shards.push_back(std::move(info));
    buffer_.clear();
    buffer_bytes_ = 0;
  }

  fs::path dir_;
  std::string prefix_;
  const Tokenizer& tokenizer_;
  uint64_t shard_tokens_;
  Sha256Digest tokenizer_sha256_;
  std::vector<int32_t> buffer_;
  uint64_t buffer_bytes_ = 0;
  SplitReport report_;
};

// The prepared directory's real location: a symlinked data.dir is prepared where the link points.
fs::path destination_of(const std::string& dir) {
  fs::path path = fs::path(dir).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  if (path.empty() || path == "." || path == "..") fail("data.dir '{}' must name a directory to create", dir);
  if (!path.has_parent_path()) path = fs::path(".") / path;  // so that its siblings can be created
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    path = fs::canonical(path, ec);
    if (ec) fail("{}: data.dir is a broken link ({})", dir, ec.message());
  }
  return path;
}

// The shard files an earlier run's prepare.json lists; empty when it cannot be read, so that the
// name patterns alone decide.
std::set<std::string> shards_listed_in(const fs::path& report_path) {
  std::set<std::string> files;
  try {
    std::ifstream in(report_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const nlohmann::json report = parse_json_bounded(text);
    for (const char* split : {"train", "val"}) {
      for (const nlohmann::json& shard : report.at("split").at(split).at("shards"))
        files.insert(shard.at("file").get<std::string>());
    }
  } catch (const std::exception&) {  // not a report prepare wrote: no file counts as listed
    files.clear();
  }
  return files;
}

// Prepare replaces only an empty directory or one holding nothing but what prepare writes (marked by
// prepare.json): replacing removes everything in it, so one foreign file stops it.
void check_replaceable(const fs::path& dest) {
  std::error_code ec;
  const fs::file_status status = fs::status(dest, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status))
    fail("{}: exists and is not a directory; choose another data.dir", dest.string());
  if (fs::is_empty(dest, ec)) return;
  if (!fs::exists(dest / kPrepareReportFile)) {
    fail(
        "{}: exists and was not made by inkstone prepare (it has no {}); choose another data.dir or empty it",
        dest.string(), kPrepareReportFile);
  }
  const std::set<std::string> listed = shards_listed_in(dest / kPrepareReportFile);
  for (fs::directory_iterator it(dest, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool ours = name == kPrepareReportFile || name == kTokenizerFile || listed.contains(name) ||
                      is_shard_file_name(name);
    if (!ours || it->symlink_status(ec).type() != fs::file_type::regular) {
      fail("{}: holds {}, which inkstone prepare did not write; move it out or choose another data.dir",
           dest.string(), it->path().string());
    }
  }
  if (ec) fail("{}: cannot list the prepared directory ({})", dest.string(), ec.message());
}

// A corpus file inside the output folder would be an earlier run's output read back as text.
void check_corpus_outside(const std::vector<std::string>& files, const fs::path& dest) {
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(dest, ec);
  if (ec) fail("{}: cannot resolve the output folder ({})", dest.string(), ec.message());
  for (const std::string& file : files) {
    const fs::path path = fs::weakly_canonical(file, ec);
    if (ec) continue;  // reading it will report the problem
    if (std::mismatch(out.begin(), out.end(), path.begin(), path.end()).first == out.end()) {
      fail("{}: the output folder {} is inside the corpus; choose an --out / data.dir outside it", file,
           dest.string());
    }
  }
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    fail("{}: cannot move the prepared data into place ({})", to.string(), std::strerror(errno));
  }
}

// Moves the finished staging directory to `dest`. An existing `dest` is swapped with it atomically
// where the system can (renameat2 RENAME_EXCHANGE), so the old preparation lands at the staging path
// and is removed with it; elsewhere it is moved aside first. Either way no reader sees a half state.
void install(const StagingDir& staging, const fs::path& dest) {
  check_replaceable(dest);  // again: it may have changed while the corpus was being prepared
  if (!fs::exists(dest)) {
    rename_or_fail(staging.path(), dest);
  } else {
#ifdef RENAME_EXCHANGE
    const bool swapped =
        ::renameat2(AT_FDCWD, staging.path().c_str(), AT_FDCWD, dest.c_str(), RENAME_EXCHANGE) == 0;
#else
    const bool swapped = false;
#endif
    if (!swapped) {
      const StagingDir old(dest, "old");  // removed, with the old preparation in it, on leaving this block
      rename_or_fail(dest, old.path());
      try {
        rename_or_fail(staging.path(), dest);
      } catch (...) {
        // Put the old preparation back, or `old` would delete the only copy on the way out.
        std::rename(old.path().c_str(), dest.c_str());
        throw;
      }
    }
  }
  fsync_directory(dest.parent_path());
}

nlohmann::ordered_json split_json(const SplitReport& split) {
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const ShardInfo& s : split.shards) {
    shards.push_back({{"file", s.file}, {"tokens", s.tokens}, {"text_bytes", s.text_bytes}});
  }
  return {{"documents", split.documents},
          {"text_bytes", split.text_bytes},
          {"tokens", split.tokens},
          {"shards", std::move(shards)}};
}

nlohmann::ordered_json files_json_of(const std::vector<CorpusFile>& files) {
  nlohmann::ordered_json json = nlohmann::ordered_json::array();
  for (const CorpusFile& f : files)
    json.push_back({{"path", f.path}, {"bytes", f.bytes}, {"sha256", f.sha256}});
  return json;
}

void log_report(const PrepareReport& r, const fs::path& dest, std::ostream& log) {
  const CorpusStats& c = r.corpus;
  log << fmt::format(
      "prepare: {} files, {} bytes read; {} documents ({} blank dropped, {} separator lines)\n", c.files,
      c.raw_bytes, c.documents, c.blank_documents_dropped, c.separator_lines);
  log << fmt::format(
      "prepare: cleaning: {} invalid UTF-8 sequences replaced, {} escape sequences stripped, {} line ends "
      "normalised, {} byte order marks removed\n",
      c.invalid_utf8_replacements, c.clean.escapes_removed, c.clean.line_ends_changed, c.clean.boms_removed);
  if (!r.data.train_only.empty()) {
    const CorpusStats& t = r.train_only_corpus;
    log << fmt::format("prepare: train_only: {} files, {} documents; {}\n", t.files, t.documents,
                       r.data.decontaminate_chars > 0
                           ? fmt::format("{} dropped for sharing a run of {} characters with a validation "
                                         "document",
                                         r.train_only_dropped, r.data.decontaminate_chars)
                           : std::string("not checked against validation (data.decontaminate_chars: 0)"));
  }
  log << fmt::format("prepare: tokenizer {} (vocab {}, sha256 {})\n", r.tokenizer_name, r.vocab_size,
                     r.tokenizer_sha256);
  for (const auto& [name, split] : {std::pair{"train", &r.train}, std::pair{"val", &r.val}}) {
    log << fmt::format("prepare: {:5} {} documents, {} bytes, {} tokens in {} shard{}\n", name,
                       split->documents, split->text_bytes, split->tokens, split->shards.size(),
                       split->shards.size() == 1 ? "" : "s");
  }
  log << fmt::format("prepare: wrote {}\n", dest.string());
}

// data.tokenizer: train. A BPE vocabulary learnt from the training documents alone: validation text
// seen by the tokenizer would leak into what validation measures.
std::unique_ptr<Tokenizer> train_tokenizer(const DataConfig& config,
                                           const std::vector<std::string_view>& texts, std::ostream& log) {
  BpeTrainerConfig trainer;
  trainer.vocab_size = config.vocab_size;
  trainer.rule = parse_pre_tokenizer_rule(config.pre_tokenizer, "data.pre_tokenizer");
  BpeTrainingStats stats;
  auto tokenizer = std::make_unique<BpeTokenizer>(train_bpe(texts, trainer, &stats), "the trained tokenizer");
  log << fmt::format(
      "prepare: trained a {}-token BPE vocabulary ({} pre-tokenizer) on {} training documents, {} bytes, in "
      "{:.2f} s{}\n",
      tokenizer->vocab_size(), config.pre_tokenizer, texts.size(), stats.corpus_bytes,
      stats.count_seconds + stats.merge_seconds,
      tokenizer->vocab_size() < config.vocab_size
          ? fmt::format("; short of data.vocab_size {}: no pair left is seen twice", config.vocab_size)
          : "");
  return tokenizer;
}

std::vector<std::string_view> texts_of(const Corpus& corpus, const std::vector<size_t>& documents) {
  std::vector<std::string_view> texts;
  texts.reserve(documents.size());
  for (const size_t i : documents) texts.push_back(corpus.document(i));
  return texts;
}

// data.train_only: its files may not be the corpus's, whose validation documents they would carry
// into training.
std::vector<std::string> train_only_files(const DataConfig& config,
                                          const std::vector<std::string>& corpus_files,
                                          const fs::path& dest) {
  std::vector<std::string> files = expand_corpus(config.train_only);
  check_corpus_outside(files, dest);
  std::set<fs::path> in_corpus;
  std::error_code ec;
  for (const std::string& file : corpus_files) in_corpus.insert(fs::weakly_canonical(file, ec));
  for (const std::string& file : files) {
    if (in_corpus.contains(fs::weakly_canonical(file, ec))) {
      fail(
          "{}: listed in data.train_only and in data.corpus; its validation documents would be trained on. "
          "Name it in one of the two",
          file);
    }
  }
  return files;
}

// Appends to `train` the train_only documents that share no run of data.decontaminate_chars
// characters with a validation document; returns how many were dropped.
size_t add_train_only(const DataConfig& config, const Corpus& extra, const std::vector<std::string_view>& val,
                      std::vector<std::string_view>& train) {
  const bool check = config.decontaminate_chars > 0 && !val.empty();
  const std::optional<TextOverlapIndex> index =
      check ? std::optional<TextOverlapIndex>(std::in_place, val,
                                              static_cast<size_t>(config.decontaminate_chars))
            : std::nullopt;
  size_t dropped = 0;
  for (size_t i = 0; i < extra.num_documents(); ++i) {
    const std::string_view text = extra.document(i);
    if (index && index->overlaps(text)) {
      ++dropped;
    } else {
      train.push_back(text);
    }
  }
  return dropped;
}

}  // namespace

std::string PrepareReport::to_json() const {
  nlohmann::ordered_json files_json = files_json_of(files);
  nlohmann::ordered_json doc = {
      {"format", "inkstone-prepare"},
      {"version", 1},
      {"data",
       {{"corpus", data.corpus},
        {"tokenizer", data.tokenizer},
        {"val_fraction", data.val_fraction},
        {"invalid_utf8", data.invalid_utf8},
        {"document_separator", data.document_separator},
        {"dir", data.dir},
        {"shard_tokens", data.shard_tokens}}},
      {"tokenizer",
       {{"name", tokenizer_name},
        {"file", kTokenizerFile},
        {"vocab_size", vocab_size},
        {"eot_id", eot_id},
        {"sha256", tokenizer_sha256}}},
      {"files", std::move(files_json)},
      {"documents",
       {{"kept", corpus.documents},
        {"blank_dropped", corpus.blank_documents_dropped},
        {"separator_lines", corpus.separator_lines},
        {"text_bytes", corpus.document_bytes}}},
      {"cleaning",
       {{"invalid_utf8_replacements", corpus.invalid_utf8_replacements},
        {"escapes_removed", corpus.clean.escapes_removed},
        {"line_ends_changed", corpus.clean.line_ends_changed},
        {"boms_removed", corpus.clean.boms_removed}}},
      {"split", {{"seed", split_seed}, {"train", split_json(train)}, {"val", split_json(val)}}}};
  if (data.tokenizer == kTrainedTokenizer) {
    doc["data"]["vocab_size"] = data.vocab_size;
    doc["data"]["pre_tokenizer"] = data.pre_tokenizer;
  }
  if (data.corpus_repeat != 1) doc["data"]["corpus_repeat"] = data.corpus_repeat;
  if (!data.train_only.empty()) {
    doc["data"]["train_only"] = data.train_only;
    doc["data"]["decontaminate_chars"] = data.decontaminate_chars;
    doc["train_only"] = {{"files", files_json_of(train_only_files)},
                         {"documents",
                          {{"read", train_only_corpus.documents},
                           {"dropped_overlapping_validation", train_only_dropped},
                           {"kept", train_only_corpus.documents - train_only_dropped}}}};
  }
  return doc.dump(2) + "\n";
}

PrepareReport prepare_corpus(const DataConfig& config, std::ostream& log) {
  if (config.shard_tokens <= 0) fail("data.shard_tokens is {}; it must be positive", config.shard_tokens);
  if (config.corpus_repeat < 1) fail("data.corpus_repeat is {}; it must be at least 1", config.corpus_repeat);
  if (config.decontaminate_chars < 0) {
    fail("data.decontaminate_chars is {}; use 0 (no check) or a run length", config.decontaminate_chars);
  }
  const fs::path dest = destination_of(config.dir);
  check_replaceable(dest);

  // A tokenizer to load is loaded first, so that a bad path fails before the corpus is read.
  const bool trained = config.tokenizer == kTrainedTokenizer;
  if (trained && config.vocab_size < 257) {
    fail("data.tokenizer is train but data.vocab_size is {}; set the vocabulary to train, at least 257",
         config.vocab_size);
  }
  std::unique_ptr<Tokenizer> tokenizer = trained ? nullptr : tokenizer_from_spec(config.tokenizer);

  const std::vector<std::string> corpus_files = expand_corpus(config.corpus);
  check_corpus_outside(corpus_files, dest);
  Corpus corpus = read_corpus(config, corpus_files);
  DocumentSplit split;
  if (corpus.num_documents() == 1 && config.val_fraction > 0) {
    // One document (a novel in one file): its tail is the validation text.
    const size_t tail = corpus.hold_out_tail(config.val_fraction);
    split = {.train = {0}, .val = {1}};
    log << fmt::format(
        "prepare: the corpus is one document; its last {} bytes, from a line start, are the "
        "validation split\n",
        tail);
  } else {
    split = split_documents_train_val(corpus.num_documents(), config.val_fraction);
  }
  const std::vector<std::string_view> val_texts = texts_of(corpus, split.val);
  std::vector<std::string_view> train_texts;
  for (int copy = 0; copy < config.corpus_repeat; ++copy) {
    for (const size_t i : split.train) train_texts.push_back(corpus.document(i));
  }
  Corpus extra;  // data.train_only; train_texts points into it until the shards are written
  size_t extra_dropped = 0;
  if (!config.train_only.empty()) {
    extra = read_corpus(config, train_only_files(config, corpus_files, dest), "data.train_only");
    extra_dropped = add_train_only(config, extra, val_texts, train_texts);
  }
  if (trained) tokenizer = train_tokenizer(config, train_texts, log);

  const std::string tokenizer_json = tokenizer->to_json();
  PrepareReport report;
  report.data = config;
  report.tokenizer_name = tokenizer->name();
  report.vocab_size = tokenizer->vocab_size();
  report.eot_id = tokenizer->eot_id();
  report.tokenizer_sha256 = tokenizer_hash(tokenizer_json);
  report.split_seed = kSplitSeed;
  report.files = corpus.files();
  report.corpus = corpus.stats();
  report.train_only_files = extra.files();
  report.train_only_corpus = extra.stats();
  report.train_only_dropped = extra_dropped;

  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) fail("{}: cannot create the parent directory ({})", dest.string(), ec.message());
  const StagingDir staging(dest, "tmp");
  const Sha256Digest digest = sha256_from_hex(report.tokenizer_sha256, "tokenizer hash");
  const auto write_split = [&](const char* prefix, const std::vector<std::string_view>& documents) {
    ShardSink sink(staging.path(), prefix, *tokenizer, static_cast<uint64_t>(config.shard_tokens), digest);
    for (const std::string_view text : documents) sink.add_document(text);
    return sink.finish();
  };
  report.train = write_split("train", train_texts);
  report.val = write_split("val", val_texts);
  write_file_durably(staging.path() / kTokenizerFile, tokenizer_json);
  write_file_durably(staging.path() / kPrepareReportFile, report.to_json());
  install(staging, dest);

  log_report(report, dest, log);
  return report;
}

}  // namespace inkstone
