#include "runtime/rendezvous_file.h"

#include <chrono>
#include <system_error>
#include <thread>

#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/read_file.h"

namespace inkstone {

void publish_rendezvous_file(const std::filesystem::path& path, std::string_view bytes) {
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      fail("{}: cannot create the rendezvous folder ({}); distributed.rendezvous must be a writable folder",
           path.parent_path().string(), ec.message());
    }
  }
  write_file_durably(path, bytes);
}

std::optional<std::string> await_rendezvous_file(const std::filesystem::path& path, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  // Polled, not watched: inotify sees nothing of another node's writes on a network file system.
  // 20 ms keeps the wait of a local launch short and the metadata traffic of a large one low.
  for (;;) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      return read_whole_file(path, "the rendezvous file", "delete it and relaunch every rank");
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace inkstone
