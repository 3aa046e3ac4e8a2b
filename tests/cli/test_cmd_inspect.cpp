// `inkstone inspect` end to end: a good prepared folder passes; every kind of damaged shard is one
// error line naming the file, and exit 1.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/sha256.h"
#include "runtime/token_shard.h"
#include "support/test_support.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class InspectCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string corpus;
    for (int i = 0; i < 40; ++i) corpus += "poem " + std::to_string(i) + "\n春眠不觉晓，处处闻啼鸟。\n%\n";
    testing::write_file(dir / "poems.txt", corpus);
    const testing::CommandResult r = testing::run_cli(
        {"prepare", "--input", "poems.txt", "--out", "prepared", "--separator", "%", "--val-fraction", "0.1"},
        dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    shard = dir / "prepared" / "train_00000.bin";
    ASSERT_TRUE(fs::is_regular_file(shard));
  }

  // Exit 1, nothing on stdout, one stderr line that names `file` and contains `problem`.
  void expect_rejected(const fs::path& file, const std::string& problem) {
    const testing::CommandResult r = testing::run_cli({"inspect", "prepared"}, dir.path());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(file.filename().string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(problem), std::string::npos) << r.err;
  }

  void patch(const fs::path& file, size_t offset, const std::string& bytes) {
    std::string content = testing::read_file(file);
    content.replace(offset, bytes.size(), bytes);
    testing::write_file(file, content);
  }

  testing::TempDir dir;
  fs::path shard;
};

TEST_F(InspectCommand, AGoodFolderListsEveryShard) {
  const testing::CommandResult r = testing::run_cli({"inspect", "prepared"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("train_00000.bin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val_00000.bin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vocab 257"), std::string::npos) << r.out;
}

TEST_F(InspectCommand, ASingleShardPrintsItsHeader) {
  const testing::CommandResult r = testing::run_cli({"inspect", shard.string()}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tokens of 2 bytes, vocab 257"), std::string::npos) << r.out;
}

TEST_F(InspectCommand, BadMagicIsRejected) {
  patch(shard, 0, "XXXXXXXX");
  expect_rejected(shard, "magic");
}

TEST_F(InspectCommand, TruncatedShardIsRejected) {
  std::string content = testing::read_file(shard);
  testing::write_file(shard, content.substr(0, content.size() - 3));
  expect_rejected(shard, "truncated");
}

TEST_F(InspectCommand, FlippedHeaderCountIsRejected) {
  patch(shard, 24, std::string("\x07", 1));  // low byte of the token count
  expect_rejected(shard, "bytes");
}

TEST_F(InspectCommand, TokenAtOrAboveTheVocabIsRejected) {
  patch(shard, kTokenShardHeaderBytes + 10, std::string("\x01\x01", 2));  // token 257 == vocab size
  expect_rejected(shard, ">= the vocab size 257");
}

// Vocab field and token changed together: consistent with its own header, so only the tokenizer's
// vocab size can catch it.
TEST_F(InspectCommand, ShardWithARaisedVocabSizeIsRejected) {
  patch(shard, 16, std::string("\xFF\xFF", 2));                           // vocab 257 -> 65535
  patch(shard, kTokenShardHeaderBytes + 10, std::string("\x60\xEA", 2));  // token 60000
  expect_rejected(shard, "vocab size 65535, but the tokenizer in use has 257");
}

TEST_F(InspectCommand, ShardOfAnotherTokenizerIsRejected) {
  const std::vector<int32_t> tokens = {1, 2, 3};
  write_token_shard(dir / "prepared" / "train_00001.bin", tokens, 257, 3, sha256("another tokenizer"));
  expect_rejected(dir / "prepared" / "train_00001.bin", "tokenizer");
}

TEST_F(InspectCommand, MissingPathIsOneLine) {
  const testing::CommandResult r = testing::run_cli({"inspect", "nowhere"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "inkstone: error: nowhere: no such file or folder\n");
}

}  // namespace
}  // namespace inkstone
