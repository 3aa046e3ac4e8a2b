// inkstone eval CHECKPOINT --data FILE_OR_SHARDS [--batch N] [--device cpu|cuda|auto]
//                          [--invalid-utf8 error|replace]
// Perplexity of a checkpoint on a token shard (*.bin), a prepared data directory (its validation
// split) or a UTF-8 text file (cleaned as prepare cleans, then scored as one document). Prints one
// summary line on stdout; where the data came from and the device go to stderr.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/checkpoint_dir.h"
#include "cli/commands.h"
#include "infer/perplexity.h"
#include "runtime/backend.h"
#include "runtime/corpus.h"
#include "runtime/data_loader.h"
#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"
#include "runtime/sha256.h"
#include "runtime/token_shard.h"

namespace inkstone::cli {
namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint;
  std::string data;
  int batch = 4;
  std::string device = "auto";
  std::string invalid_utf8;  // "" = the checkpoint's data.invalid_utf8
};

struct EvalData {
  std::vector<int32_t> tokens;
  uint64_t text_bytes = 0;
  std::string description;  // what was read, for the log
};

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

void run_eval(const EvalArgs& args) {
  if (args.batch < 1) fail("--batch must be >= 1 (got {})", args.batch);
  const ModelCheckpointInfo info = read_model_checkpoint_info(resolve_checkpoint_dir(args.checkpoint));
  const InvalidUtf8Policy policy = parse_invalid_utf8_policy(
      args.invalid_utf8.empty() ? info.config.data.invalid_utf8 : args.invalid_utf8);
  const EvalData data = read_eval_data(args.data, info, policy);
  if (data.tokens.size() < 2)
    fail("--data {}: {} token(s); perplexity needs at least 2, give more text", args.data,
         data.tokens.size());

  std::string chosen;
  const std::unique_ptr<Backend> backend = make_backend(args.device, &chosen);
  // Windows as long as the training sequences: positions the model never trained on would only
  // make it look worse than it is.
  const int window = std::min(info.config.train.seq_len, info.shape.context);
  const std::unique_ptr<GPT2> model = load_model(info, *backend, args.batch, window);
  fmt::print(stderr, "eval: {} on {}\neval: {}, windows of {} tokens\n", info.dir.string(), chosen,
             data.description, window);

  const auto start = std::chrono::steady_clock::now();
  const PerplexityResult r = evaluate_perplexity(*model, data.tokens, data.text_bytes, window, args.batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double bpb = r.bits_per_byte();
  fmt::print("perplexity {:.4f}  mean NLL {:.4f} nats/token  bits/byte {}  ({} tokens scored)\n",
             r.perplexity(), r.mean_nll(), std::isnan(bpb) ? std::string("n/a") : fmt::format("{:.4f}", bpb),
             r.scored_tokens);
  fmt::print(stderr, "eval: {:.2f} s ({:.0f} tokens/s)\n", seconds,
             static_cast<double>(r.scored_tokens) / seconds);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "perplexity and bits per byte of a checkpoint on some data");
  cmd->add_option("checkpoint", args->checkpoint,
                  "checkpoint directory, or a run directory (uses its latest)")
      ->required();
  cmd->add_option("--data", args->data, "token shard (.bin), prepared data directory, or UTF-8 text file")
      ->required();
  cmd->add_option("--batch", args->batch, "windows per forward pass")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--invalid-utf8", args->invalid_utf8,
                  "for a text file: error or replace (default: as the checkpoint's data was prepared)");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace inkstone::cli
