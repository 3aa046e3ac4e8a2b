#include "runtime/document_split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/error.h"

namespace inkstone {
namespace {

void expect_partition(const DocumentSplit& split, size_t n) {
  std::vector<size_t> all = split.train;
  all.insert(all.end(), split.val.begin(), split.val.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(all[i], i);  // each document exactly once
  EXPECT_TRUE(std::is_sorted(split.train.begin(), split.train.end()));
  EXPECT_TRUE(std::is_sorted(split.val.begin(), split.val.end()));
}

TEST(DocumentSplit, ValidationGetsTheRoundedShareAndTheRestTrains) {
  const DocumentSplit split = split_documents_train_val(100, 0.1);
  EXPECT_EQ(split.val.size(), 10u);
  EXPECT_EQ(split.train.size(), 90u);
  expect_partition(split, 100);
  EXPECT_EQ(split_documents_train_val(407, 0.05).val.size(), 20u);  // 20.35 rounds down
  EXPECT_EQ(split_documents_train_val(410, 0.05).val.size(), 21u);  // 20.5 rounds up
}

TEST(DocumentSplit, IsDeterministicAndActuallyShuffled) {
  const DocumentSplit a = split_documents_train_val(1000, 0.2), b = split_documents_train_val(1000, 0.2);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.train, b.train);
  // Not simply the first or the last documents.
  EXPECT_LT(a.val.front(), 100u);
  EXPECT_GT(a.val.back(), 900u);
}

TEST(DocumentSplit, SmallCorporaKeepAtLeastOneOnEachSide) {
  const DocumentSplit two = split_documents_train_val(2, 0.05);
  EXPECT_EQ(two.val.size(), 1u);
  EXPECT_EQ(two.train.size(), 1u);
  expect_partition(two, 2);
  const DocumentSplit three = split_documents_train_val(3, 0.5);  // round(1.5) = 2, one left to train
  EXPECT_EQ(three.val.size(), 2u);
  expect_partition(three, 3);
  const DocumentSplit one = split_documents_train_val(1, 0.0);
  EXPECT_EQ(one.train, std::vector<size_t>{0});
  EXPECT_TRUE(one.val.empty());
}

TEST(DocumentSplit, ZeroFractionKeepsEverythingForTraining) {
  const DocumentSplit split = split_documents_train_val(50, 0.0);
  EXPECT_TRUE(split.val.empty());
  expect_partition(split, 50);
}

TEST(DocumentSplit, RejectsWhatCannotBeSplit) {
  EXPECT_THROW(split_documents_train_val(1, 0.1), Error);
  EXPECT_THROW(split_documents_train_val(0, 0.0), Error);
  EXPECT_THROW(split_documents_train_val(10, 0.6), Error);
  EXPECT_THROW(split_documents_train_val(10, -0.1), Error);
  EXPECT_THROW(split_documents_train_val(10, std::numeric_limits<double>::quiet_NaN()), Error);
  try {
    split_documents_train_val(1, 0.1);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.val_fraction: 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace inkstone
