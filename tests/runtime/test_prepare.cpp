#include "runtime/prepare.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/bpe_tokenizer.h"
#include "runtime/bpe_trainer.h"
#include "runtime/document_split.h"
#include "runtime/error.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::error_of;

// Every file below `dir` with its content, to show that a failed prepare changed nothing.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = testing::read_file(e.path());
  }
  return files;
}

struct SplitContents {
  std::vector<std::string> documents;  // decoded, in shard order
  uint64_t tokens = 0;
  uint64_t header_text_bytes = 0;
};

// Reads the shards of one split as listed in prepare.json and cuts the token stream at <|endoftext|>.
SplitContents read_split(const fs::path& dir, const json& split, const ExpectedTokenizer& tokenizer,
                         int64_t max_tokens) {
  const ByteTokenizer tok;
  SplitContents out;
  std::vector<int32_t> stream;
  for (const json& s : split["shards"]) {
    const TokenShard shard = read_token_shard(dir / s["file"].get<std::string>(), tokenizer);
    EXPECT_LE(shard.tokens.size(), static_cast<size_t>(max_tokens));
    EXPECT_EQ(shard.header.token_count, s["tokens"].get<uint64_t>());
    EXPECT_EQ(shard.header.text_bytes, s["text_bytes"].get<uint64_t>());
    // With the byte tokenizer every token but <|endoftext|> is one byte of text.
    const auto text_tokens =
        std::count_if(shard.tokens.begin(), shard.tokens.end(), [](int32_t t) { return t != 256; });
    EXPECT_EQ(shard.header.text_bytes, static_cast<uint64_t>(text_tokens));
    out.header_text_bytes += shard.header.text_bytes;
    out.tokens += shard.tokens.size();
    stream.insert(stream.end(), shard.tokens.begin(), shard.tokens.end());
  }
  if (stream.empty()) return out;
  EXPECT_EQ(stream.front(), 256) << "every document starts with <|endoftext|>";
  size_t begin = 1;
  for (size_t i = 1; i <= stream.size(); ++i) {
    if (i == stream.size() || stream[i] == 256) {
      out.documents.push_back(tok.decode(std::span(stream).subspan(begin, i - begin)));
      begin = i + 1;
    }
  }
  return out;
}

class Prepare : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir / "corpus");
    testing::write_file(dir / "corpus" / "a.txt", "\x1b[32mfirst\x1b[m\r\npoem\n%\nsecond\n%\n");
    testing::write_file(dir / "corpus" / "b.txt",
                        "third \xE6\x98\xA5\n%\nfourth, longer than a shard\n%\nfifth\n");
    config.corpus = {(dir / "corpus").string()};
    config.document_separator = "%";
    config.val_fraction = 0.4;
    config.shard_tokens = 7;
    config.dir = (dir / "out" / "prepared").string();
  }
  json report_json() const {
    return json::parse(testing::read_file(dir / "out" / "prepared" / "prepare.json"));
  }

  testing::TempDir dir;
  DataConfig config;
  const std::vector<std::string> documents = {"first\npoem\n", "second\n", "third \xE6\x98\xA5\n",
                                              "fourth, longer than a shard\n", "fifth\n"};
};

TEST_F(Prepare, ShardsHoldEveryDocumentOnceBehindEndOfText) {
  std::ostringstream log;
  const PrepareReport report = prepare_corpus(config, log);
  const fs::path out = dir / "out" / "prepared";
  const json r = report_json();

  const std::string tokenizer_json = testing::read_file(out / "tokenizer.json");
  EXPECT_EQ(tokenizer_from_json(tokenizer_json, "tokenizer.json")->name(), "byte");
  const std::string hash = tokenizer_hash(tokenizer_json);
  EXPECT_EQ(r["tokenizer"]["sha256"], hash);
  EXPECT_EQ(r["tokenizer"]["vocab_size"], 257);

  const ExpectedTokenizer digest{sha256_from_hex(hash, "test"), 257};
  const SplitContents train = read_split(out, r["split"]["train"], digest, 7);
  const SplitContents val = read_split(out, r["split"]["val"], digest, 7);
  EXPECT_EQ(val.documents.size(), 2u);  // round(5 * 0.4)
  EXPECT_EQ(train.documents.size(), 3u);

  std::vector<std::string> all = train.documents;
  all.insert(all.end(), val.documents.begin(), val.documents.end());
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected = documents;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);

  uint64_t bytes = 0;
  for (const std::string& d : documents) bytes += d.size();
  EXPECT_EQ(train.tokens + val.tokens, bytes + documents.size());
  EXPECT_EQ(train.header_text_bytes + val.header_text_bytes, bytes);
  EXPECT_EQ(r["split"]["train"]["tokens"], train.tokens);
  EXPECT_EQ(r["split"]["val"]["text_bytes"], val.header_text_bytes);
  EXPECT_EQ(report.train.tokens, train.tokens);
  EXPECT_GT(r["split"]["train"]["shards"].size(), 1u);
  EXPECT_TRUE(fs::exists(out / "train_00000.bin"));
  EXPECT_TRUE(fs::exists(out / "val_00000.bin"));

  EXPECT_EQ(r["documents"]["kept"], 5);
  EXPECT_EQ(r["documents"]["blank_dropped"], 1);  // after the last "%" of a.txt
  EXPECT_EQ(r["cleaning"]["escapes_removed"], 2);
  EXPECT_EQ(r["cleaning"]["line_ends_changed"], 1);
  ASSERT_EQ(r["files"].size(), 2u);
  EXPECT_EQ(r["files"][0]["path"], (dir / "corpus" / "a.txt").string());
  EXPECT_NE(log.str().find("5 documents"), std::string::npos) << log.str();
}

TEST_F(Prepare, IsDeterministic) {
  std::ostringstream log;
  prepare_corpus(config, log);
  const auto first = snapshot(dir / "out" / "prepared");
  config.dir = (dir / "again").string();
  prepare_corpus(config, log);
  const auto second = snapshot(dir / "again");
  for (const auto& [name, bytes] : second) {
    if (name != "prepare.json") {
      EXPECT_EQ(bytes, first.at(name)) << name;
    }
  }
  EXPECT_EQ(first.size(), second.size());
}

TEST_F(Prepare, ZeroValidationFractionWritesNoValidationShards) {
  config.val_fraction = 0;
  config.shard_tokens = 1000;
  std::ostringstream log;
  const PrepareReport report = prepare_corpus(config, log);
  EXPECT_EQ(report.val.documents, 0u);
  EXPECT_TRUE(report.val.shards.empty());
  EXPECT_EQ(report.train.shards.size(), 1u);
  EXPECT_FALSE(fs::exists(dir / "out" / "prepared" / "val_00000.bin"));
}

TEST_F(Prepare, ReplacesOnlyADirectoryItMadeOrAnEmptyOne) {
  std::ostringstream log;
  const fs::path out = dir / "out" / "prepared";
  fs::create_directories(out);  // empty: fine
  prepare_corpus(config, log);
  testing::write_file(out / "train_00099.bin", "old");  // from an earlier, larger corpus
  prepare_corpus(config, log);                          // only prepare's files: replaced as a whole
  EXPECT_FALSE(fs::exists(out / "train_00099.bin"));
  EXPECT_TRUE(fs::exists(out / "train_00000.bin"));

  fs::create_directories(dir / "mine");
  testing::write_file(dir / "mine" / "thesis.tex", "precious");
  config.dir = (dir / "mine").string();
  const std::string message = error_of([&] { prepare_corpus(config, log); });
  EXPECT_NE(message.find("was not made by inkstone prepare"), std::string::npos) << message;
  EXPECT_EQ(snapshot(dir / "mine"), (std::map<std::string, std::string>{{"thesis.tex", "precious"}}));

  testing::write_file(dir / "a-file", "x");
  config.dir = (dir / "a-file").string();
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("not a directory"), std::string::npos);
}

// Replacing removes the whole directory, so one file prepare did not write stops it, untouched.
TEST_F(Prepare, KeepsAPreparedDirectoryHoldingAForeignFile) {
  std::ostringstream log;
  const fs::path out = dir / "out" / "prepared";
  prepare_corpus(config, log);
  for (const char* foreign : {"notes.txt", "train_final.bin"}) {
    testing::write_file(out / foreign, "mine");
    const auto before = snapshot(dir / "out");
    const std::string message = error_of([&] { prepare_corpus(config, log); });
    EXPECT_NE(message.find((out / foreign).string() + ", which inkstone prepare did not write"),
              std::string::npos)
        << message;
    EXPECT_EQ(snapshot(dir / "out"), before);
    fs::remove(out / foreign);
  }
  fs::create_directories(out / "runs");
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("runs, which inkstone prepare did not write"),
            std::string::npos);
  EXPECT_TRUE(fs::is_directory(out / "runs"));
}

// Without the check, the second run would read the first run's shards back as corpus text.
TEST_F(Prepare, RejectsAnOutputFolderInsideTheCorpus) {
  std::ostringstream log;
  config.dir = (dir / "corpus" / "prepared").string();
  prepare_corpus(config, log);  // the folder does not exist yet, so nothing of it is read
  const auto before = snapshot(dir / "corpus");
  const std::string message = error_of([&] { prepare_corpus(config, log); });
  EXPECT_NE(message.find("the output folder " + config.dir + " is inside the corpus; choose an --out"),
            std::string::npos)
      << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 0) << message;
  EXPECT_EQ(snapshot(dir / "corpus"), before);
}

TEST_F(Prepare, FailureLeavesThePreparedDirectoryAndNoLeftovers) {
  std::ostringstream log;
  prepare_corpus(config, log);
  const auto before = snapshot(dir / "out");

  testing::write_file(dir / "corpus" / "c.txt", "bad \xFF byte\n");
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("c.txt: invalid UTF-8 at byte 4 (0xff)"),
            std::string::npos);
  fs::remove(dir / "corpus" / "c.txt");
  config.corpus = {(dir / "corpus" / "*.md").string()};
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("matches no files"), std::string::npos);
  config.corpus = {(dir / "corpus").string()};
  config.tokenizer = (dir / "missing.json").string();
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("missing.json"), std::string::npos);

  EXPECT_EQ(snapshot(dir / "out"), before);
  for (const auto& e : fs::directory_iterator(dir / "out")) EXPECT_EQ(e.path().filename(), "prepared");
}

TEST_F(Prepare, RejectsBadSettings) {
  std::ostringstream log;
  config.shard_tokens = 0;
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("data.shard_tokens"), std::string::npos);
  config.shard_tokens = 100;
  config.document_separator = "";  // two files, two documents: fine
  EXPECT_EQ(prepare_corpus(config, log).val.documents, 1u);
}

// One document (a novel in one file): the validation split is its tail, cut at a line start.
TEST_F(Prepare, ASingleDocumentHoldsOutItsTail) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += fmt::format("line {:03} of the only document\n", i);  // 30 bytes each
  testing::write_file(dir / "novel.txt", text);
  config.corpus = {(dir / "novel.txt").string()};
  config.document_separator = "";
  config.val_fraction = 0.1;
  std::ostringstream log;
  const PrepareReport report = prepare_corpus(config, log);
  EXPECT_EQ(report.train.documents, 1u);
  EXPECT_EQ(report.val.documents, 1u);
  // 10% of 3,000 bytes starts inside line 90 (at byte 2,700 exactly: its start); the tail is lines 90-99.
  EXPECT_EQ(report.val.text_bytes, 300u);
  EXPECT_EQ(report.train.text_bytes, 2700u);
  EXPECT_NE(log.str().find("its last 300 bytes, from a line start, are the validation split"),
            std::string::npos)
      << log.str();
  // A text too short to leave something on both sides is refused.
  testing::write_file(dir / "tiny.txt", "x");
  config.corpus = {(dir / "tiny.txt").string()};
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("too short to hold out a validation slice"),
            std::string::npos);
}

// ---------------------------------------------------------------- data.tokenizer: train

// Twenty documents; the ones split_documents_train_val gives validation repeat a word of letters
// (Q, X, Z, J) that no training document has, far more often than any training word.
class PrepareTrainedTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    const DocumentSplit split = split_documents_train_val(kDocuments, kValFraction);
    is_val.assign(kDocuments, false);
    for (const size_t i : split.val) is_val[i] = true;
    const std::vector<std::string> words = {"rain", "spain", "plain", "mainly", "falls", "the", "in"};
    std::string corpus;
    for (size_t i = 0; i < kDocuments; ++i) {
      std::string doc;
      for (size_t line = 0; line < 6; ++line) {
        for (size_t w = 0; w < 8; ++w) doc += (w ? " " : "") + words[(i * 3 + line * 5 + w) % words.size()];
        doc += "\n";
      }
      if (is_val[i]) {
        for (int r = 0; r < 60; ++r) doc += "QZXJ QZXJ JXZQ\n";
      }
      documents.push_back(doc);
      corpus += doc + "%\n";
    }
    testing::write_file(dir / "corpus.txt", corpus);
    config.corpus = {(dir / "corpus.txt").string()};
    config.document_separator = "%";
    config.val_fraction = kValFraction;
    config.tokenizer = "train";
    config.vocab_size = 270;
    config.dir = (dir / "prepared").string();
  }

  static constexpr size_t kDocuments = 20;
  static constexpr double kValFraction = 0.2;
  testing::TempDir dir;
  DataConfig config;
  std::vector<std::string> documents;
  std::vector<bool> is_val;
};

bool has_validation_letter(std::string_view token) {
  return token.find_first_of("QZXJ") != std::string_view::npos;
}

TEST_F(PrepareTrainedTokenizer, ShardsDecodeToTheDocumentsWithTheStoredTokenizer) {
  std::ostringstream log;
  const PrepareReport report = prepare_corpus(config, log);
  const fs::path out = dir / "prepared";
  const std::string tokenizer_json = testing::read_file(out / "tokenizer.json");
  const auto tokenizer = tokenizer_from_json(tokenizer_json, "tokenizer.json");
  EXPECT_EQ(tokenizer->vocab_size(), 270);
  EXPECT_EQ(report.vocab_size, 270);
  const json r = json::parse(testing::read_file(out / "prepare.json"));
  EXPECT_EQ(r["tokenizer"]["sha256"], tokenizer_hash(tokenizer_json));
  EXPECT_EQ(r["data"]["tokenizer"], "train");
  EXPECT_EQ(r["data"]["vocab_size"], 270);
  EXPECT_EQ(r["data"]["pre_tokenizer"], "gpt2");
  EXPECT_NE(log.str().find("trained a 270-token BPE vocabulary"), std::string::npos) << log.str();

  const ExpectedTokenizer digest{sha256_from_hex(tokenizer_hash(tokenizer_json), "test"), 270};
  std::vector<std::string> decoded;
  uint64_t text_bytes = 0, train_tokens = 0, train_bytes = 0;
  for (const std::string split : {"train", "val"}) {
    std::vector<int32_t> stream;
    for (const json& s : r["split"][split]["shards"]) {
      const TokenShard shard = read_token_shard(out / s["file"].get<std::string>(), digest);
      stream.insert(stream.end(), shard.tokens.begin(), shard.tokens.end());
      text_bytes += shard.header.text_bytes;
      if (split == "train") train_bytes += shard.header.text_bytes;
    }
    if (split == "train") train_tokens = stream.size();
    ASSERT_FALSE(stream.empty());
    ASSERT_EQ(stream.front(), tokenizer->eot_id());
    for (size_t begin = 1, i = 1; i <= stream.size(); ++i) {
      if (i < stream.size() && stream[i] != tokenizer->eot_id()) continue;
      decoded.push_back(tokenizer->decode(std::span(stream).subspan(begin, i - begin)));
      begin = i + 1;
    }
  }
  std::vector<std::string> expected = documents;
  std::sort(expected.begin(), expected.end());
  std::sort(decoded.begin(), decoded.end());
  EXPECT_EQ(decoded, expected);
  uint64_t bytes = 0;
  for (const std::string& d : documents) bytes += d.size();
  EXPECT_EQ(text_bytes, bytes);
  EXPECT_LT(train_tokens * 2, train_bytes) << "a vocabulary trained on it compresses this repetitive text";
}

TEST_F(PrepareTrainedTokenizer, NeverTrainsOnValidationDocuments) {
  std::ostringstream log;
  prepare_corpus(config, log);
  const auto tokenizer = load_tokenizer((dir / "prepared" / "tokenizer.json").string());
  for (int32_t id = 0; id < tokenizer->vocab_size(); ++id) {
    if (id == tokenizer->eot_id()) continue;
    const std::string token = tokenizer->decode(std::span(&id, 1));
    EXPECT_FALSE(token.size() > 1 && has_validation_letter(token)) << "token " << id << " '" << token << "'";
  }
  // The check could fail: trained on every document, the validation word does make tokens.
  const std::vector<std::string_view> all(documents.begin(), documents.end());
  BpeTrainerConfig every;
  every.vocab_size = 270;
  const BpeModel model = train_bpe(all, every);
  EXPECT_TRUE(std::any_of(model.tokens.begin() + 257, model.tokens.end(), has_validation_letter));
}

TEST_F(PrepareTrainedTokenizer, NeedsAVocabSize) {
  std::ostringstream log;
  config.vocab_size = 0;
  const std::string message = error_of([&] { prepare_corpus(config, log); });
  EXPECT_NE(message.find("data.vocab_size is 0"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "prepared"));
}

}  // namespace
}  // namespace inkstone
