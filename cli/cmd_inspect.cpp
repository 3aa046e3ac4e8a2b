// inkstone inspect PATH...: reads token shards (or a prepared folder's shards) with every check the
// trainer applies, and prints their headers. A shard that is truncated, corrupted, made with another
// tokenizer or holding a token outside the vocabulary is one error line and exit 1.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "runtime/error.h"
#include "runtime/read_file.h"
#include "runtime/sha256.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"

namespace inkstone::cli {
namespace {
namespace fs = std::filesystem;

// The shards of a prepared folder, checked against the tokenizer.json stored beside them.
void inspect_folder(const fs::path& dir) {
  const fs::path tokenizer_path = dir / "tokenizer.json";
  if (!fs::is_regular_file(tokenizer_path))
    fail("{}: no tokenizer.json here; is this a folder written by inkstone prepare?", dir.string());
  const std::string json = read_whole_file(tokenizer_path, "the prepared tokenizer");
  const auto tokenizer = load_tokenizer(tokenizer_path.string());  // validates the file itself
  const ExpectedTokenizer expected{sha256_from_hex(tokenizer_hash(json), tokenizer_path.string()),
                                   static_cast<uint32_t>(tokenizer->vocab_size())};
  std::vector<fs::path> shards;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".bin") shards.push_back(entry.path());
  if (shards.empty()) fail("{}: no token shards (*.bin) here; run inkstone prepare", dir.string());
  std::sort(shards.begin(), shards.end());
  fmt::print("{}: tokenizer {}\n", dir.string(), to_hex(expected.sha256).substr(0, 16));
  for (const fs::path& path : shards) {
    const TokenShard shard = read_token_shard(path, expected);
    fmt::print("  {:<16} {:>12} tokens {:>12} bytes  vocab {}\n", path.filename().string(),
               shard.header.token_count, shard.header.text_bytes, shard.header.vocab_size);
  }
}

void inspect_shard(const fs::path& path) {
  const TokenShard shard = read_token_shard(path);
  const TokenShardHeader& h = shard.header;
  fmt::print("{}: version {}, {} tokens of {} bytes, vocab {}, {} bytes of text, tokenizer {}\n",
             path.string(), h.version, h.token_count, h.token_width, h.vocab_size, h.text_bytes,
             to_hex(h.tokenizer_sha256).substr(0, 16));
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* command = app.add_subcommand(
      "inspect", "check token shards (files, or folders written by prepare) and print their headers");
  command->add_option("paths", *paths, "shard files or prepared folders")->required();
  command->callback([paths] {
    for (const std::string& p : *paths) {
      if (fs::is_directory(p)) {
        inspect_folder(p);
      } else if (fs::exists(p)) {
        inspect_shard(p);
      } else {
        fail("{}: no such file or folder", p);
      }
    }
  });
}

}  // namespace inkstone::cli
