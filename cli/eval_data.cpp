#include "cli/eval_data.h"

#include <fmt/format.h>

#include "runtime/data_loader.h"
#include "runtime/error.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"
#include "runtime/sha256.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"

namespace inkstone::cli {
namespace fs = std::filesystem;

namespace {

EvalData read_prepared_dir(const fs::path& dir, const ExpectedTokenizer& expected) {
  TokenSplit split = read_token_split(dir, "val", expected);
  std::string which = "validation split";
  if (split.tokens.empty()) {
    split = read_token_split(dir, "train", expected);
    which = "training split (it has no validation split, so this measures fit, not generalisation)";
  }
  if (split.tokens.empty())
    fail("{}: no token shards (val_*.bin, train_*.bin); run inkstone prepare", dir.string());
  return {std::move(split.tokens), split.text_bytes,
          fmt::format("{}: {} ({} shards)", dir.string(), which, split.files.size())};
}

EvalData read_shard(const fs::path& path, const ExpectedTokenizer& expected) {
  TokenShard shard = read_token_shard(path, expected);
  return {std::move(shard.tokens), shard.header.text_bytes, fmt::format("{}: token shard", path.string())};
}

// One document, as prepare writes it: <|endoftext|> then the tokens of the cleaned text.
EvalData read_text_file(const fs::path& path, const Tokenizer& tokenizer, InvalidUtf8Policy policy) {
  const std::string raw = read_whole_file(path, "the text to evaluate");
  CorpusStats stats;
  const std::string text = clean_corpus_text(raw, path.string(), policy, stats);
  EvalData data;
  data.tokens.push_back(tokenizer.eot_id());
  const std::vector<int32_t> ids = tokenizer.encode(text);
  data.tokens.insert(data.tokens.end(), ids.begin(), ids.end());
  data.text_bytes = text.size();
  data.description = fmt::format("{}: text, {} bytes after cleaning", path.string(), text.size());
  return data;
}

}  // namespace

EvalData read_eval_data(const fs::path& path, const ModelCheckpointInfo& info, InvalidUtf8Policy policy) {
  const std::string tokenizer_name = (info.dir / kTokenizerFile).string();
  const ExpectedTokenizer expected{sha256_from_hex(tokenizer_hash(info.tokenizer_json), tokenizer_name),
                                   static_cast<uint32_t>(info.tokenizer->vocab_size())};
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_prepared_dir(path, expected);
  if (!fs::exists(path, ec)) fail("--data {}: no such file or directory", path.string());
  if (path.extension() == ".bin") return read_shard(path, expected);
  return read_text_file(path, *info.tokenizer, policy);
}

}  // namespace inkstone::cli
