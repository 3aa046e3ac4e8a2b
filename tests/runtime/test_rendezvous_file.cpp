#include "runtime/rendezvous_file.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TEST(RendezvousFile, PublishedBytesComeBackWholeIntoANewFolder) {
  testing::TempDir dir;
  const fs::path path = dir / "shared" / "nccl_id.run";
  const std::string id("\0\x01id bytes\xff", 12);
  publish_rendezvous_file(path, id);
  EXPECT_EQ(await_rendezvous_file(path, 0.0), id);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(RendezvousFile, WaitsForAFileThatAppearsLater) {
  testing::TempDir dir;
  const fs::path path = dir / "nccl_id.run";
  std::thread rank0([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    publish_rendezvous_file(path, "late");
  });
  const std::optional<std::string> got = await_rendezvous_file(path, 30.0);
  rank0.join();
  EXPECT_EQ(got, "late");
}

TEST(RendezvousFile, GivesUpAfterTheTimeout) {
  testing::TempDir dir;
  const Clock::time_point start = Clock::now();
  EXPECT_EQ(await_rendezvous_file(dir / "never", 0.2), std::nullopt);
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 5.0);
}

TEST(RendezvousFile, UnwritableFolderNamesIt) {
  testing::TempDir dir;
  testing::write_file(dir / "file", "x");  // a file where the folder should be
  const std::string message = testing::error_of([&] { publish_rendezvous_file(dir / "file" / "id", "x"); });
  EXPECT_NE(message.find((dir / "file").string()), std::string::npos) << message;
}

}  // namespace
}  // namespace inkstone
