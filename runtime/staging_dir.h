// A directory built beside its destination and then renamed into place, so that readers see the
// old contents or the new, never half of them.
#pragma once

#include <filesystem>

namespace inkstone {

// Created as DEST_PARENT/.NAME.KIND-XXXXXX: on the destination's file system (a rename, not a copy),
// hidden (a corpus folder that contains it never reads it), readable like any other directory once
// moved. Removed with everything inside on destruction, unless release()d after it was moved.
class StagingDir {
 public:
  // Throws inkstone::Error naming `dest` when the directory cannot be made.
  StagingDir(const std::filesystem::path& dest, const char* kind);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void release() { path_.clear(); }  // it now lives under another name: keep it

 private:
  std::filesystem::path path_;
};

}  // namespace inkstone
