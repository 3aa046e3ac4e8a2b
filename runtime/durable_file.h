// Writing files so that a crash never leaves a half-written one under the final name:
// write NAME.tmp, fsync it, rename it over NAME, fsync the directory.
#pragma once

#include <filesystem>
#include <string_view>

namespace inkstone {

// Throws inkstone::Error naming `path` on any failure; NAME.tmp is removed then.
void write_file_durably(const std::filesystem::path& path, std::string_view bytes);

// Makes renames and creations inside `dir` durable. Throws inkstone::Error on failure.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace inkstone
