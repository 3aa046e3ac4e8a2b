#include "runtime/read_file.h"

#include <gtest/gtest.h>

#include <string>

#include "support/test_support.h"

namespace inkstone::testing {
namespace {

TEST(ReadFile, ReturnsEveryByte) {
  TempDir dir;
  const std::string bytes("a\0b\r\n\xff", 6);
  write_file(dir / "f", bytes);
  EXPECT_EQ(read_whole_file(dir / "f", "the file"), bytes);
  write_file(dir / "empty", "");
  EXPECT_EQ(read_whole_file(dir / "empty", "the file"), "");
}

TEST(ReadFile, ErrorsNameThePathTheRoleAndTheAdvice) {
  TempDir dir;
  const std::string missing = (dir / "nope.yaml").string();
  EXPECT_EQ(error_of([&] { read_whole_file(missing, "the config"); }),
            missing + ": cannot open the config: No such file or directory");
  EXPECT_EQ(error_of([&] { read_whole_file(missing, "the config", "check the path"); }),
            missing + ": cannot open the config: No such file or directory; check the path");
  EXPECT_EQ(error_of([&] { read_whole_file(dir.path(), "the config"); }),
            dir.path().string() + ": is a directory, not the config");
}

}  // namespace
}  // namespace inkstone::testing
