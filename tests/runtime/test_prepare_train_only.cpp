// data.train_only: documents added to training alone, and the check that drops those quoting
// validation text (data.decontaminate_chars).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/document_split.h"
#include "runtime/prepare.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::error_of;

constexpr size_t kDocuments = 10;
constexpr double kValFraction = 0.2;

class PrepareTrainOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    // Two lines of random five-letter words each: no two documents share a run of 12 characters.
    uint64_t state = 12345;
    const auto word = [&] {
      std::string w;
      for (int k = 0; k < 5; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        w += static_cast<char>('a' + (state >> 33) % 26);
      }
      return w;
    };
    std::string corpus;
    for (size_t i = 0; i < kDocuments; ++i) {
      documents.push_back(
          fmt::format("{} {} {}\n{} {} {}\n", word(), word(), word(), word(), word(), word()));
      corpus += documents.back() + "%\n";
    }
    testing::write_file(dir / "corpus.txt", corpus);
    const DocumentSplit split = split_documents_train_val(kDocuments, kValFraction);
    for (const size_t i : split.val) val.push_back(documents[i]);
    for (const size_t i : split.train) train.push_back(documents[i]);
    config.corpus = {(dir / "corpus.txt").string()};
    config.document_separator = "%";
    config.val_fraction = kValFraction;
    config.dir = (dir / "prepared").string();
  }

  // Writes the train_only file from `extra` documents and names it in the config.
  void set_train_only(const std::vector<std::string>& extra) {
    std::string text;
    for (const std::string& d : extra) text += d + "%\n";
    testing::write_file(dir / "extra.txt", text);
    config.train_only = {(dir / "extra.txt").string()};
  }

  // The documents of one split, decoded (the byte tokenizer: 256 is <|endoftext|>), sorted.
  std::vector<std::string> documents_in(const std::string& split) const {
    const json report = json::parse(testing::read_file(dir / "prepared" / "prepare.json"));
    std::vector<int32_t> stream;
    for (const json& s : report["split"][split]["shards"]) {
      const TokenShard shard =
          read_token_shard(dir / "prepared" / s["file"].get<std::string>(), std::nullopt);
      stream.insert(stream.end(), shard.tokens.begin(), shard.tokens.end());
    }
    std::vector<std::string> out;
    const ByteTokenizer bytes;
    for (size_t begin = 1, i = 1; i <= stream.size(); ++i) {
      if (i < stream.size() && stream[i] != 256) continue;
      out.push_back(bytes.decode(std::span(stream).subspan(begin, i - begin)));
      begin = i + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  }

  testing::TempDir dir;
  DataConfig config;
  std::vector<std::string> documents, train, val;
  std::ostringstream log;
};

TEST_F(PrepareTrainOnly, ItsDocumentsAreTrainedOnAndValidationIsUnchanged) {
  prepare_corpus(config, log);
  const std::string val_alone = testing::read_file(dir / "prepared" / "val_00000.bin");
  ASSERT_EQ(documents_in("val"), sorted(val));

  const std::vector<std::string> extra = {"an essay\n", "a letter\nwith two lines\n", "a note\n"};
  set_train_only(extra);
  prepare_corpus(config, log);
  EXPECT_EQ(testing::read_file(dir / "prepared" / "val_00000.bin"), val_alone);
  std::vector<std::string> expected_train = train;
  expected_train.insert(expected_train.end(), extra.begin(), extra.end());
  EXPECT_EQ(documents_in("train"), sorted(expected_train));

  const json report = json::parse(testing::read_file(dir / "prepared" / "prepare.json"));
  EXPECT_EQ(report["train_only"]["documents"]["read"], 3);
  EXPECT_EQ(report["train_only"]["documents"]["dropped_overlapping_validation"], 0);
  EXPECT_EQ(report["train_only"]["files"][0]["path"], (dir / "extra.txt").string());
  EXPECT_EQ(report["split"]["train"]["documents"], train.size() + 3);
  EXPECT_NE(log.str().find("not checked against validation"), std::string::npos) << log.str();
}

TEST_F(PrepareTrainOnly, DocumentsQuotingValidationTextAreDropped) {
  // The first validation poem's second line, quoted with its words on two lines; and a training
  // poem, which may be quoted.
  std::string line = val[0].substr(val[0].find('\n') + 1);
  line[line.find(' ')] = '\n';
  const std::string quotes_val = "as the poet said:\n" + line;
  const std::string quotes_train = "they wrote: " + train[0];
  const std::string unrelated = "a grocery list\n";
  set_train_only({quotes_val, quotes_train, unrelated});
  config.decontaminate_chars = 12;
  prepare_corpus(config, log);
  std::vector<std::string> expected_train = train;
  expected_train.push_back(quotes_train);
  expected_train.push_back(unrelated);
  EXPECT_EQ(documents_in("train"), sorted(expected_train));
  const json report = json::parse(testing::read_file(dir / "prepared" / "prepare.json"));
  EXPECT_EQ(report["train_only"]["documents"]["dropped_overlapping_validation"], 1);
  EXPECT_EQ(report["train_only"]["documents"]["kept"], 2);
  EXPECT_EQ(report["data"]["decontaminate_chars"], 12);
  EXPECT_NE(log.str().find("1 dropped for sharing a run of 12 characters"), std::string::npos) << log.str();

  // Unchecked, the quote is trained on: the check above is what removed it.
  config.decontaminate_chars = 0;
  prepare_corpus(config, log);
  expected_train.push_back(quotes_val);
  EXPECT_EQ(documents_in("train"), sorted(expected_train));
}

TEST_F(PrepareTrainOnly, CorpusRepeatCopiesTheTrainingDocumentsOnly) {
  const std::vector<std::string> extra = {"an essay\n"};
  set_train_only(extra);
  config.corpus_repeat = 3;
  prepare_corpus(config, log);
  EXPECT_EQ(documents_in("val"), sorted(val));
  std::vector<std::string> expected_train = extra;
  for (int copy = 0; copy < 3; ++copy)
    expected_train.insert(expected_train.end(), train.begin(), train.end());
  EXPECT_EQ(documents_in("train"), sorted(expected_train));
  const json report = json::parse(testing::read_file(dir / "prepared" / "prepare.json"));
  EXPECT_EQ(report["data"]["corpus_repeat"], 3);
  config.corpus_repeat = 0;
  EXPECT_NE(error_of([&] { prepare_corpus(config, log); }).find("data.corpus_repeat is 0"),
            std::string::npos);
}

TEST_F(PrepareTrainOnly, AFileInBothListsIsAnErrorAndNothingIsWritten) {
  config.train_only = {(dir / "." / "corpus.txt").string()};
  const std::string message = error_of([&] { prepare_corpus(config, log); });
  EXPECT_NE(message.find("data.train_only and in data.corpus"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "prepared"));
}

TEST_F(PrepareTrainOnly, AnEmptyTrainOnlyFileNamesTheKey) {
  set_train_only({" \n"});
  const std::string message = error_of([&] { prepare_corpus(config, log); });
  EXPECT_NE(message.find("data.train_only is empty"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "prepared"));
}

TEST_F(PrepareTrainOnly, ATrainedVocabularyLearnsFromIt) {
  std::string extra;
  for (int i = 0; i < 40; ++i) extra += "zyxwv zyxwv\n";
  set_train_only({extra});
  config.tokenizer = "train";
  config.vocab_size = 264;
  prepare_corpus(config, log);
  const auto tokenizer = load_tokenizer((dir / "prepared" / "tokenizer.json").string());
  const std::vector<int32_t> ids = tokenizer->encode(" zyxwv");
  EXPECT_EQ(ids.size(), 1u) << "a word seen only in data.train_only should be one token";
}

}  // namespace
}  // namespace inkstone
