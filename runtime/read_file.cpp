#include "runtime/read_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/error.h"

namespace inkstone {

std::string read_whole_file(const std::filesystem::path& path, std::string_view what,
                            std::string_view advice) {
  const std::string tail = advice.empty() ? std::string() : "; " + std::string(advice);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail("{}: is a directory, not {}{}", path.string(), what, tail);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open {}: {}{}", path.string(), what, std::strerror(errno), tail);
  std::ostringstream bytes;
  bytes << in.rdbuf();  // an empty file leaves `in` good: only bad() means a read failed
  if (in.bad()) fail("{}: cannot read {}: {}{}", path.string(), what, std::strerror(errno), tail);
  return std::move(bytes).str();
}

}  // namespace inkstone
