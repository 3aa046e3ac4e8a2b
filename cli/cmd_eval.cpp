// inkstone eval CHECKPOINT... --data FILE_OR_SHARDS [--stride N] [--json FILE] [--batch N]
//                             [--device cpu|cuda|auto] [--invalid-utf8 error|replace]
// Perplexity of checkpoints on some data (cli/eval_data.h). Each CHECKPOINT is a checkpoint directory
// or a run directory, which stands for every checkpoint it holds. Every checkpoint is checked before
// the first is evaluated. One checkpoint prints one summary line on stdout, several a table (a row as
// each finishes); --json writes every result to a file (cli/eval_report.h). Where the data came from,
// the device and timings go to stderr.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/checkpoint_dir.h"
#include "cli/commands.h"
#include "cli/eval_data.h"
#include "cli/eval_report.h"
#include "infer/perplexity.h"
#include "runtime/backend.h"
#include "runtime/corpus.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "runtime/read_file.h"
#include "runtime/tokenizer.h"
#include "train/run_checkpoint.h"

namespace inkstone::cli {
namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  std::vector<std::string> checkpoints;
  std::string data;
  std::optional<int> stride;  // default: the window (non-overlapping windows)
  std::string json;
  int batch = 4;
  std::string device = "auto";
  std::string invalid_utf8;  // "" = the checkpoint's data.invalid_utf8
};

// A checkpoint to evaluate, with everything checked that can be before the first evaluation.
struct PlannedEval {
  fs::path dir;
  std::optional<int64_t> step, tokens;  // from state.json, when it has one
  int window = 0, stride = 0;
  std::string tokenizer_sha;  // with the policy, says whether the data must be read again
  InvalidUtf8Policy policy = InvalidUtf8Policy::kError;
};

PlannedEval plan_eval(const fs::path& dir, const EvalArgs& args) {
  const ModelCheckpointInfo info = read_model_checkpoint_info(dir);
  PlannedEval plan;
  plan.dir = dir;
  std::error_code ec;
  if (fs::exists(dir / kTrainStateFile, ec)) {
    const TrainState state = read_train_state(dir);
    plan.step = state.step;
    plan.tokens = state.tokens;
  }
  // Windows as long as the training sequences: positions the model never trained on would only
  // make it look worse than it is.
  plan.window = std::min(info.config.train.seq_len, info.shape.context);
  plan.stride = args.stride.value_or(plan.window);
  if (plan.stride < 1 || plan.stride > plan.window)
    fail("--stride {} is outside [1, {}], the window of {}; give a stride in that range", plan.stride,
         plan.window, dir.string());
  plan.tokenizer_sha = tokenizer_hash(info.tokenizer_json);
  plan.policy = parse_invalid_utf8_policy(args.invalid_utf8.empty() ? info.config.data.invalid_utf8
                                                                    : args.invalid_utf8);
  return plan;
}

// An earlier `eval --json` result may be replaced; anything else (a config given by mistake) may not.
bool is_eval_json(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) > (size_t{64} << 20)) return false;
  try {
    const nlohmann::json doc = nlohmann::json::parse(read_whole_file(path, "the --json file"));
    return doc.is_object() && doc.contains("results") && doc["results"].is_array();
  } catch (const std::exception&) {
    return false;
  }
}

// The windows the strided method reads (infer/perplexity.h): more rows per forward pass than that
// would only allocate activations that are never used.
int64_t window_count(size_t tokens, const PlannedEval& plan) {
  const auto predictions = static_cast<int64_t>(tokens) - 1;
  if (predictions <= plan.window) return 1;
  return 1 + (predictions - plan.window + plan.stride - 1) / plan.stride;
}

PerplexityResult evaluate(const PlannedEval& plan, const ModelCheckpointInfo& info, const EvalData& data,
                          Backend& backend, const std::string& device, int requested_batch) {
  const int batch =
      static_cast<int>(std::min<int64_t>(requested_batch, window_count(data.tokens.size(), plan)));
  const std::unique_ptr<GPT2> model = load_model(info, backend, batch, plan.window);
  fmt::print(stderr, "eval: {} on {}, windows of {} tokens, stride {}\n", plan.dir.string(), device,
             plan.window, plan.stride);
  const auto start = std::chrono::steady_clock::now();
  const PerplexityResult r =
      evaluate_perplexity(*model, data.tokens, data.text_bytes, plan.window, plan.stride, batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "eval: {:.2f} s ({:.0f} tokens/s)\n", seconds,
             static_cast<double>(r.scored_tokens) / seconds);
  return r;
}

void run_eval(const EvalArgs& args) {
  if (args.batch < 1) fail("--batch must be >= 1 (got {})", args.batch);
  std::error_code ec;
  if (const fs::path folder = fs::path(args.json).parent_path();
      !args.json.empty() && !folder.empty() && !fs::is_directory(folder, ec))
    fail("--json {}: folder {} does not exist; create it first", args.json, folder.string());
  if (!args.json.empty() && fs::exists(fs::symlink_status(args.json, ec)) && !is_eval_json(args.json))
    fail(
        "--json {}: the file exists and is not an earlier eval result; give another name (it is not "
        "replaced)",
        args.json);
  std::vector<PlannedEval> plans;
  for (const std::string& item : args.checkpoints)
    for (const fs::path& dir : expand_checkpoint_dirs(item)) plans.push_back(plan_eval(dir, args));

  std::string device;
  const std::unique_ptr<Backend> backend = make_backend(args.device, &device);
  std::vector<fs::path> dirs;
  for (const PlannedEval& plan : plans) dirs.push_back(plan.dir);
  const EvalTable table(dirs);

  EvalData data;
  const PlannedEval* data_read_for = nullptr;  // read once per tokenizer (and text cleaning policy)
  std::vector<EvalRow> rows;
  for (const PlannedEval& plan : plans) {
    // Read again rather than kept from the plan: a tokenizer can be large and a run may hold many.
    const ModelCheckpointInfo info = read_model_checkpoint_info(plan.dir);
    if (!data_read_for || data_read_for->tokenizer_sha != plan.tokenizer_sha ||
        data_read_for->policy != plan.policy) {
      data = read_eval_data(args.data, info, plan.policy);
      if (data.tokens.size() < 2)
        fail("--data {}: {} token(s); perplexity needs at least 2, give more text", args.data,
             data.tokens.size());
      data_read_for = &plan;
      fmt::print(stderr, "eval: {}\n", data.description);
    }
    const PerplexityResult r = evaluate(plan, info, data, *backend, device, args.batch);
    rows.push_back({plan.dir, plan.step, plan.tokens, plan.window, plan.stride, r});
    // A row as soon as it is known (evaluating many checkpoints takes a while); the header with the
    // first, so that an error before it leaves stdout empty.
    if (plans.size() == 1)
      fmt::print("{}", eval_summary_line(r));
    else
      fmt::print("{}{}", rows.size() == 1 ? table.header() : "", table.row(rows.size() - 1, rows.back()));
    std::fflush(stdout);
  }
  if (!args.json.empty()) write_file_durably(args.json, eval_json(args.data, rows));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "perplexity and bits per byte of checkpoints on some data");
  cmd->add_option("checkpoints", args->checkpoints,
                  "checkpoint directories, or run directories (each stands for all its checkpoints)")
      ->required();
  cmd->add_option("--data", args->data, "token shard (.bin), prepared data directory, or UTF-8 text file")
      ->required();
  cmd->add_option("--stride", args->stride,
                  "tokens between window starts, 1..window; smaller gives each token more context and "
                  "costs window/stride times the compute (default: the window, non-overlapping)");
  cmd->add_option("--json", args->json, "also write the results to this JSON file");
  cmd->add_option("--batch", args->batch, "windows per forward pass")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--invalid-utf8", args->invalid_utf8,
                  "for a text file: error or replace (default: as the checkpoint's data was prepared)");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace inkstone::cli
