// The shared-folder rendezvous of a torchrun-style launch: rank 0 publishes a small blob (the NCCL
// unique id) as a file that every rank sees, the others wait for it to appear. The file appears whole
// or not at all (a synced temporary renamed over the name), so a reader that sees it reads all of it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace inkstone {

// Writes `bytes` to `path` atomically and durably, creating its folder. Throws inkstone::Error
// naming the path on failure.
void publish_rendezvous_file(const std::filesystem::path& path, std::string_view bytes);

// The contents of `path` once it exists; nullopt when it has not appeared within timeout_s.
// Throws inkstone::Error naming the path when it exists but cannot be read.
std::optional<std::string> await_rendezvous_file(const std::filesystem::path& path, double timeout_s);

}  // namespace inkstone
