#include "runtime/checkpoint_manifest.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace inkstone::testing {
namespace {

TEST(CheckpointManifest, WritesSha256sumLinesThatVerify) {
  TempDir dir;
  write_file(dir / "a.bin", "abc");
  write_file(dir / "b.json", "");
  write_checkpoint_manifest(dir.path(), {"a.bin", "b.json"});
  // sha256("abc") and sha256("") from FIPS 180-2's examples.
  EXPECT_EQ(read_file(dir / "checksums.sha256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a.bin\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b.json\n");
  EXPECT_TRUE(verify_checkpoint_manifest(dir.path(), {"a.bin"}));
}

TEST(CheckpointManifest, NoManifestVerifiesNothing) {
  TempDir dir;
  write_file(dir / "a.bin", "abc");
  EXPECT_FALSE(verify_checkpoint_manifest(dir.path(), {"a.bin"}));
}

TEST(CheckpointManifest, FlippedByteMissingEntryAndBadLinesAreErrors) {
  TempDir dir;
  write_file(dir / "a.bin", "abc");
  write_checkpoint_manifest(dir.path(), {"a.bin"});
  write_file(dir / "a.bin", "abd");
  std::string error = error_of([&] { verify_checkpoint_manifest(dir.path(), {"a.bin"}); });
  EXPECT_NE(error.find("a.bin: its sha256 differs"), std::string::npos) << error;

  write_file(dir / "a.bin", "abc");
  error = error_of([&] { verify_checkpoint_manifest(dir.path(), {"a.bin", "state.json"}); });
  EXPECT_NE(error.find("does not list state.json"), std::string::npos) << error;

  write_file(dir / "checksums.sha256", "nothex  a.bin\n");
  error = error_of([&] { verify_checkpoint_manifest(dir.path(), {}); });
  EXPECT_NE(error.find("checksums.sha256:1: not a sha256sum line"), std::string::npos) << error;

  write_file(dir / "checksums.sha256",
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ../a.bin\n");
  error = error_of([&] { verify_checkpoint_manifest(dir.path(), {}); });
  EXPECT_NE(error.find("not a sha256sum line"), std::string::npos) << error;
}

}  // namespace
}  // namespace inkstone::testing
