#include "runtime/durable_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

TEST(DurableFile, WritesAndReplacesWithoutLeavingTheTemporary) {
  testing::TempDir dir;
  const fs::path path = dir / "prepare.json";
  write_file_durably(path, std::string("first\0bytes", 11));
  EXPECT_EQ(testing::read_file(path), std::string("first\0bytes", 11));
  write_file_durably(path, "second");
  EXPECT_EQ(testing::read_file(path), "second");
  EXPECT_FALSE(fs::exists(dir / "prepare.json.tmp"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(DurableFile, FailureNamesTheFile) {
  testing::TempDir dir;
  const fs::path path = dir / "no-such-dir" / "x.bin";
  try {
    write_file_durably(path, "x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  EXPECT_THROW(fsync_directory(dir / "no-such-dir"), Error);
}

}  // namespace
}  // namespace inkstone
