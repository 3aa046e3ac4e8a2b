#include "runtime/checkpoint_manifest.h"

#include <fstream>
#include <map>
#include <sstream>

#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/sha256.h"

namespace inkstone {
namespace fs = std::filesystem;

namespace {

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read it; the checkpoint is incomplete", path.string());
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return to_hex(hash.finish());
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

void write_checkpoint_manifest(const fs::path& dir, const std::vector<std::string>& files) {
  std::string text;
  for (const std::string& name : files) text += file_sha256(dir / name) + "  " + name + "\n";
  write_file_durably(dir / kChecksumsFile, text);
}

bool verify_checkpoint_manifest(const fs::path& dir, const std::vector<std::string>& required) {
  const fs::path manifest = dir / kChecksumsFile;
  std::ifstream in(manifest, std::ios::binary);
  if (!in) return false;
  std::map<std::string, std::string> expected;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    const size_t gap = line.find("  ");
    const std::string hex = line.substr(0, gap), name = gap == std::string::npos ? "" : line.substr(gap + 2);
    if (!is_hex64(hex) || name.empty() || name.find('/') != std::string::npos || expected.contains(name)) {
      fail("{}:{}: not a sha256sum line; the checkpoint is damaged: use another one", manifest.string(),
           line_number);
    }
    expected[name] = hex;
  }
  for (const std::string& name : required) {
    if (!expected.contains(name)) {
      fail("{}: does not list {}; the checkpoint is damaged: use another one", manifest.string(), name);
    }
  }
  for (const std::string& name : required) {
    if (file_sha256(dir / name) != expected.at(name)) {
      fail("{}: its sha256 differs from the one in {}; the file is damaged: use another checkpoint",
           (dir / name).string(), kChecksumsFile);
    }
  }
  return true;
}

}  // namespace inkstone
