#include "runtime/staging_dir.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "runtime/error.h"

namespace inkstone {
namespace fs = std::filesystem;

StagingDir::StagingDir(const fs::path& dest, const char* kind) {
  const fs::path parent = dest.parent_path().empty() ? fs::path(".") : dest.parent_path();
  std::string pattern = (parent / fmt::format(".{}.{}-XXXXXX", dest.filename().string(), kind)).string();
  if (!::mkdtemp(pattern.data())) {
    fail("{}: cannot create a directory beside it ({}); check the folder's permissions", dest.string(),
         std::strerror(errno));
  }
  path_ = pattern;
  // mkdtemp makes it private (0700); what it becomes should read like any other directory.
  std::error_code ec;
  fs::permissions(path_,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
    fail("{}: cannot make the new directory readable ({}); check the folder's permissions", pattern,
         ec.message());
  }
}

StagingDir::~StagingDir() {
  std::error_code ignored;
  if (!path_.empty()) fs::remove_all(path_, ignored);
}

}  // namespace inkstone
