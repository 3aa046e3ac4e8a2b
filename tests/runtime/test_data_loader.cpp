#include "runtime/data_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

const Sha256Digest kHash = sha256("tokenizer");
constexpr uint32_t kVocab = 50000;

// 0, 1, 2, ...: a window is right exactly when its tokens are consecutive integers, and its first
// token divided by T is its window index, so the checks below need nothing from the loader.
std::vector<int32_t> counting(size_t n, int32_t first = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch&) const = default;
};

Batch take(BatchLoader& loader, int B, int T) {
  Batch batch{std::vector<int32_t>(static_cast<size_t>(B * T)),
              std::vector<int32_t>(static_cast<size_t>(B * T))};
  loader.next(B, batch.inputs, batch.targets);
  return batch;
}

// The window index of each row of a batch whose windows are shifted by `shift` tokens, checking on
// the way that every row is a window of consecutive tokens (wrapping from the last token to the first)
// with targets shifted by one.
std::vector<int> window_indices(const Batch& batch, int B, int T, size_t n_tokens, int shift = 0) {
  const auto n = static_cast<int32_t>(n_tokens);
  std::vector<int> windows;
  for (int b = 0; b < B; ++b) {
    const int32_t first = batch.inputs[static_cast<size_t>(b * T)];
    EXPECT_EQ((first - shift) % T, 0) << "row " << b << " does not start at a multiple of T plus " << shift;
    for (int t = 0; t < T; ++t) {
      EXPECT_EQ(batch.inputs[static_cast<size_t>(b * T + t)], (first + t) % n) << "row " << b << " col " << t;
      EXPECT_EQ(batch.targets[static_cast<size_t>(b * T + t)], (first + t + 1) % n)
          << "row " << b << " col " << t;
    }
    windows.push_back((first - shift) / T);
  }
  return windows;
}

// The windows of `epochs` whole epochs, one batch row at a time, and each epoch's shift.
struct Epochs {
  std::vector<std::vector<int>> windows;
  std::vector<int> shifts;
};

Epochs shifted_epochs_of(BatchLoader& loader, int epochs, int T, size_t n_tokens) {
  Epochs result;
  for (int e = 0; e < epochs; ++e) {
    std::vector<int>& epoch = result.windows.emplace_back();
    for (uint64_t i = 0; i < loader.windows_per_epoch(); ++i) {
      const Batch row = take(loader, 1, T);
      epoch.push_back(window_indices(row, 1, T, n_tokens, static_cast<int>(loader.epoch_shift()))[0]);
    }
    result.shifts.push_back(static_cast<int>(loader.epoch_shift()));
  }
  return result;
}

std::vector<std::vector<int>> epochs_of(BatchLoader& loader, int epochs, int T, size_t n_tokens) {
  return shifted_epochs_of(loader, epochs, T, n_tokens).windows;
}

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> zero_to(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(ReadTokenSplit, ConcatenatesTheSplitsShardsInNameOrder) {
  testing::TempDir dir;
  // Written out of order; val and unrelated files must be ignored.
  write_token_shard(dir / "train_00001.bin", counting(5, 100), kVocab, 20, kHash);
  write_token_shard(dir / "train_00000.bin", counting(3, 0), kVocab, 7, kHash);
  write_token_shard(dir / "train_00002.bin", counting(2, 200), kVocab, 1, kHash);
  write_token_shard(dir / "val_00000.bin", counting(4, 900), kVocab, 50, kHash);
  testing::write_file(dir / "train_notes.bin", "not a shard");
  testing::write_file(dir / "meta.json", "{}");

  const TokenSplit train = read_token_split(dir.path(), "train", ExpectedTokenizer{kHash, kVocab});
  EXPECT_EQ(train.tokens, (std::vector<int32_t>{0, 1, 2, 100, 101, 102, 103, 104, 200, 201}));
  EXPECT_EQ(train.text_bytes, 28u);
  EXPECT_EQ(train.files, (std::vector<fs::path>{dir / "train_00000.bin", dir / "train_00001.bin",
                                                dir / "train_00002.bin"}));

  const TokenSplit val = read_token_split(dir.path(), "val", std::nullopt);
  EXPECT_EQ(val.tokens, (std::vector<int32_t>{900, 901, 902, 903}));
  EXPECT_EQ(val.text_bytes, 50u);
}

TEST(ReadTokenSplit, NoShardsOfTheSplitIsEmpty) {
  testing::TempDir dir;
  write_token_shard(dir / "train_00000.bin", counting(3), kVocab, 3, kHash);
  const TokenSplit val = read_token_split(dir.path(), "val", std::nullopt);
  EXPECT_TRUE(val.tokens.empty());
  EXPECT_TRUE(val.files.empty());
  EXPECT_EQ(val.text_bytes, 0u);
}

TEST(ReadTokenSplit, AShardOfAnotherTokenizerIsAnErrorNamingIt) {
  testing::TempDir dir;
  write_token_shard(dir / "train_00000.bin", counting(3), kVocab, 3, kHash);
  write_token_shard(dir / "train_00001.bin", counting(3), kVocab, 3, sha256("another tokenizer"));
  const std::string message = error_of([&] {
    read_token_split(dir.path(), "train", ExpectedTokenizer{kHash, kVocab});
  });
  EXPECT_NE(message.find("train_00001.bin"), std::string::npos) << message;
}

TEST(ReadTokenSplit, AMissingDirectorySaysToRunPrepare) {
  testing::TempDir dir;
  const std::string message = error_of([&] { read_token_split(dir / "absent", "train", std::nullopt); });
  EXPECT_NE(message.find("absent"), std::string::npos) << message;
  EXPECT_NE(message.find("inkstone prepare"), std::string::npos) << message;
}

TEST(BatchLoader, SequentialVisitsWindowsInOrderThenStartsOver) {
  const int T = 4;
  const auto tokens = counting(23);  // (23 - 1) / 4 = 5 windows; tokens 20..22 only as targets
  BatchLoader loader(tokens, T, BatchLoader::Order::Sequential, 1, "test data");
  EXPECT_EQ(loader.windows_per_epoch(), 5u);
  EXPECT_EQ(window_indices(take(loader, 3, T), 3, T, tokens.size()), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(loader.cursor(), (DataCursor{0, 3}));
  EXPECT_EQ(window_indices(take(loader, 3, T), 3, T, tokens.size()), (std::vector<int>{3, 4, 0}));
  EXPECT_EQ(loader.cursor(), (DataCursor{1, 1}));
}

TEST(BatchLoader, TheLastWindowEndsOnTheLastToken) {
  const int T = 4;
  const auto tokens = counting(21);  // exactly 5 windows: the last is tokens 16..20
  BatchLoader loader(tokens, T, BatchLoader::Order::Sequential, 1, "test data");
  ASSERT_EQ(loader.windows_per_epoch(), 5u);
  const Batch batch = take(loader, 5, T);
  EXPECT_EQ(batch.targets.back(), 20);
}

TEST(BatchLoader, ShuffledVisitsEveryWindowOncePerEpochInADifferentOrder) {
  const int T = 3;
  const int windows = 40;
  const auto tokens = counting(windows * T + 1);
  BatchLoader loader(tokens, T, BatchLoader::Order::Shuffled, 7, "test data");
  ASSERT_EQ(loader.windows_per_epoch(), static_cast<uint64_t>(windows));
  const auto epochs = epochs_of(loader, 3, T, tokens.size());
  for (const auto& epoch : epochs) EXPECT_EQ(sorted(epoch), zero_to(windows));
  EXPECT_NE(epochs[0], zero_to(windows));
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
}

TEST(BatchLoader, ShuffledEpochsAfterTheFirstShiftTheirWindowsAndWrap) {
  const int T = 8;
  const int windows = 25;
  const auto tokens = counting(windows * T + 1);
  BatchLoader loader(tokens, T, BatchLoader::Order::Shuffled, 11, "test data");
  const Epochs epochs = shifted_epochs_of(loader, 12, T, tokens.size());
  EXPECT_EQ(epochs.shifts[0], 0);
  std::set<int> shifts(epochs.shifts.begin() + 1, epochs.shifts.end());
  EXPECT_GT(shifts.size(), 3u) << "the later epochs' shifts should vary";
  bool wrapped = false;
  for (size_t e = 0; e < epochs.windows.size(); ++e) {
    EXPECT_EQ(sorted(epochs.windows[e]), zero_to(windows)) << "epoch " << e;
    EXPECT_LT(epochs.shifts[e], T);
    wrapped = wrapped || epochs.shifts[e] > 0;  // its last window runs into the first tokens
  }
  EXPECT_TRUE(wrapped);
}

TEST(BatchLoader, OverEpochsATokenIsSeenAtManyPositionsOfAWindow) {
  const int T = 16;
  const auto tokens = counting(10 * T + 1);
  BatchLoader loader(tokens, T, BatchLoader::Order::Shuffled, 3, "test data");
  std::set<int> positions;  // where token 37 sits in the windows that hold it
  for (int step = 0; step < 20 * 10; ++step) {
    const Batch row = take(loader, 1, T);
    for (int t = 0; t < T; ++t) {
      if (row.inputs[static_cast<size_t>(t)] == 37) positions.insert(t);
    }
  }
  EXPECT_GT(positions.size(), 5u);
}

TEST(BatchLoader, ShuffledOrderIsAFunctionOfTheSeed) {
  const int T = 2;
  const auto tokens = counting(101);
  BatchLoader a(tokens, T, BatchLoader::Order::Shuffled, 42, "test data");
  BatchLoader b(tokens, T, BatchLoader::Order::Shuffled, 42, "test data");
  BatchLoader c(tokens, T, BatchLoader::Order::Shuffled, 43, "test data");
  const auto epochs_a = epochs_of(a, 2, T, tokens.size());
  EXPECT_EQ(epochs_a, epochs_of(b, 2, T, tokens.size()));
  EXPECT_NE(epochs_a, epochs_of(c, 2, T, tokens.size()));
}

TEST(BatchLoader, ARestoredCursorReplaysTheSameBatches) {
  const int T = 5, B = 3;
  const auto tokens = counting(5 * 37 + 2);  // 37 windows: batches of 3 straddle epoch ends
  for (const auto order : {BatchLoader::Order::Shuffled, BatchLoader::Order::Sequential}) {
    BatchLoader original(tokens, T, order, 9, "test data");
    for (int i = 0; i < 20; ++i) take(original, B, T);  // 60 windows: into the second epoch
    const DataCursor saved = original.cursor();
    EXPECT_EQ(saved, (DataCursor{1, 23}));
    std::vector<Batch> expected;
    for (int i = 0; i < 30; ++i) expected.push_back(take(original, B, T));

    BatchLoader resumed(tokens, T, order, 9, "test data");
    take(resumed, B, T);  // its own position must not matter
    resumed.restore(saved);
    EXPECT_EQ(resumed.cursor(), saved);
    for (int i = 0; i < 30; ++i)
      EXPECT_EQ(take(resumed, B, T), expected[static_cast<size_t>(i)]) << "batch " << i;
  }
}

TEST(BatchLoader, RewindStartsTheFirstEpochAgain) {
  const int T = 2;
  const auto tokens = counting(41);
  BatchLoader loader(tokens, T, BatchLoader::Order::Shuffled, 3, "test data");
  const Batch first = take(loader, 4, T);
  for (int i = 0; i < 10; ++i) take(loader, 4, T);
  loader.rewind();
  EXPECT_EQ(loader.cursor(), (DataCursor{0, 0}));
  EXPECT_EQ(take(loader, 4, T), first);
}

TEST(BatchLoader, ACursorPastTheEpochIsAnError) {
  const auto tokens = counting(41);
  BatchLoader loader(tokens, 4, BatchLoader::Order::Sequential, 1, "the training split of data/x");
  const std::string message = error_of([&] { loader.restore({0, 11}); });  // 10 windows per epoch
  EXPECT_NE(message.find("data/x"), std::string::npos) << message;
  EXPECT_EQ(error_of([&] { loader.restore({2, 10}); }), "");  // the end of an epoch is a valid position
}

TEST(BatchLoader, RanksSplitEachEpochIntoDisjointHalves) {
  const int T = 3, windows = 31;  // odd: one window per epoch is left out
  const auto tokens = counting(windows * T + 1);
  for (const auto order : {BatchLoader::Order::Shuffled, BatchLoader::Order::Sequential}) {
    BatchLoader rank0(tokens, T, order, 5, "test data", 0, 2);
    BatchLoader rank1(tokens, T, order, 5, "test data", 1, 2);
    ASSERT_EQ(rank0.windows_per_epoch(), 15u);
    ASSERT_EQ(rank1.windows_per_epoch(), 15u);
    const auto epochs0 = epochs_of(rank0, 3, T, tokens.size());
    const auto epochs1 = epochs_of(rank1, 3, T, tokens.size());
    std::set<int> left_out;
    for (size_t e = 0; e < 3; ++e) {
      std::vector<int> both = epochs0[e];
      both.insert(both.end(), epochs1[e].begin(), epochs1[e].end());
      both = sorted(both);
      EXPECT_EQ(std::adjacent_find(both.begin(), both.end()), both.end())
          << "a window seen twice in epoch " << e;
      ASSERT_EQ(both.size(), 30u);
      const auto all = zero_to(windows);
      std::vector<int> missing;
      std::set_difference(all.begin(), all.end(), both.begin(), both.end(), std::back_inserter(missing));
      ASSERT_EQ(missing.size(), 1u);
      left_out.insert(missing[0]);
    }
    if (order == BatchLoader::Order::Sequential) {
      EXPECT_EQ(epochs0[0], (std::vector<int>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28}));
      EXPECT_EQ(left_out, std::set<int>{30});
    } else {
      EXPECT_GT(left_out.size(), 1u) << "shuffling should leave out a different window in some epoch";
    }
  }
}

TEST(BatchLoader, TooFewTokensIsAnErrorNamingTheDataAndSizes) {
  const auto tokens = counting(64);  // 63 / 32 = 1 window
  EXPECT_EQ(error_of([&] { BatchLoader(tokens, 32, BatchLoader::Order::Sequential, 1, "x"); }), "");
  const std::string message = error_of(
      [&] { BatchLoader(tokens, 64, BatchLoader::Order::Shuffled, 1, "the training split of data/tang"); });
  EXPECT_NE(message.find("the training split of data/tang"), std::string::npos) << message;
  EXPECT_NE(message.find("64"), std::string::npos) << message;
  EXPECT_NE(message.find("seq_len"), std::string::npos) << message;
  // One window is not enough for two processes.
  EXPECT_NE(error_of([&] { BatchLoader(tokens, 32, BatchLoader::Order::Sequential, 1, "x", 0, 2); }), "");
  EXPECT_NE(
      error_of([&] { BatchLoader(std::span<const int32_t>{}, 8, BatchLoader::Order::Sequential, 1, "x"); }),
      "");
}

}  // namespace
}  // namespace inkstone
