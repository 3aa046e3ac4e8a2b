// inkstone generate CHECKPOINT [--prompt TEXT ...] [--prompts-file FILE] [--num-samples N]
//                  [--max-new-tokens N] [--min-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                  [--min-p P]
//                  [--repetition-penalty R] [--no-repeat-ngram-size N] [--stop STR ...] [--seed S]
//                  [--sliding-window] [--json [--logprobs]] [--batch N] [--no-kv-cache]
//                  [--device cpu|cuda|auto] [--no-eot-start]
// Continues each prompt with the model. One generation streams to stdout (the prompt, then the text
// as it comes); several are printed one after another under a header line each; --json prints one
// JSON document instead. The device and a stats line go to stderr, so `inkstone generate ... >
// story.txt` keeps only the story.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/checkpoint_dir.h"
#include "cli/commands.h"
#include "infer/generator.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "runtime/read_file.h"

namespace inkstone::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::vector<std::string> prompts;
  std::string prompts_file;
  std::string device = "auto";
  GenerateConfig config{.sampling = {.temperature = 0.8, .top_k = 0, .top_p = 0.9, .seed = 1337},
                        .max_new_tokens = 200};
  bool no_eot_start = false;
  bool no_kv_cache = false;
  bool json = false;
  bool logprobs = false;
};

void print_piece(std::string_view piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

// One prompt per line; blank lines are skipped (a trailing newline or a spacer is not a prompt).
std::vector<std::string> read_prompts_file(const std::string& path) {
  std::string text = read_whole_file(path, "--prompts-file", "give a UTF-8 file with one prompt per line");
  if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // a byte order mark is no part of a prompt
  std::vector<std::string> prompts;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(std::move(line));
    begin = end + 1;
  }
  if (prompts.empty()) fail("--prompts-file {}: no prompt in it; write one prompt per line", path);
  return prompts;
}

nlohmann::json to_json(const GenerateArgs& args, const std::vector<std::string>& prompts,
                       const std::vector<GenerateResult>& results) {
  nlohmann::json generations = nlohmann::json::array();
  for (const GenerateResult& r : results) {
    nlohmann::json g = {{"prompt_index", r.prompt_index},
                        {"sample_index", r.sample_index},
                        {"prompt", prompts[r.prompt_index]},
                        {"text", r.text},
                        {"finish_reason", r.finish_reason},
                        {"prompt_tokens", r.prompt_tokens},
                        {"tokens", r.tokens}};
    if (args.logprobs) g["logprobs"] = r.logprobs;
    generations.push_back(std::move(g));
  }
  return {{"checkpoint", args.checkpoint}, {"generations", std::move(generations)}};
}

void run_generate(GenerateArgs args) {
  // Flags and prompts first: a typo should not cost the time of loading a model.
  args.config.start_of_document = !args.no_eot_start;
  args.config.kv_cache = !args.no_kv_cache;
  validate(args.config);
  if (args.logprobs && !args.json)
    fail("--logprobs needs --json (log-probabilities are part of the JSON output)");
  std::vector<std::string> prompts = args.prompts;
  if (!args.prompts_file.empty()) {
    const std::vector<std::string> from_file = read_prompts_file(args.prompts_file);
    prompts.insert(prompts.end(), from_file.begin(), from_file.end());
  }
  if (prompts.empty()) prompts.emplace_back();  // the model starts a document

  const ModelCheckpointInfo info = read_model_checkpoint_info(resolve_checkpoint_dir(args.checkpoint));
  // The model reads at most as many tokens as it was trained on: later positions never learned anything.
  const int context = std::min(info.config.train.seq_len, info.shape.context);
  for (const std::string& prompt : prompts)
    prompt_tokens(*info.tokenizer, prompt, args.config.start_of_document, args.config.sliding_window,
                  context);
  const size_t rows = prompts.size() * static_cast<size_t>(args.config.num_samples);
  const int batch = static_cast<int>(std::min<size_t>(static_cast<size_t>(args.config.batch), rows));
  std::string chosen;
  const std::unique_ptr<Backend> backend = make_backend(args.device, &chosen);
  const std::unique_ptr<GPT2> model = load_model(info, *backend, batch, context);
  fmt::print(stderr, "generate: {} on {}{}\n", info.dir.string(), chosen,
             args.config.kv_cache ? "" : " (no KV cache: a full forward pass per token)");

  const bool stream = rows == 1 && !args.json;
  if (stream) print_piece(prompts.front());
  const auto start = std::chrono::steady_clock::now();
  const std::vector<GenerateResult> results =
      generate(*model, *info.tokenizer, prompts, args.config, [&](size_t, std::string_view piece) {
        if (stream) print_piece(piece);
      });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (args.json) {
    // JSON strings are UTF-8; a byte-level model can end a text mid-character, so invalid bytes become
    // U+FFFD in "text" (the token ids stay exact).
    print_piece(
        to_json(args, prompts, results).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  } else if (stream) {
    print_piece("\n");
  } else {
    for (const GenerateResult& r : results)
      print_piece(fmt::format("--- prompt {} of {}, sample {} of {} (finished: {}) ---\n{}{}\n",
                              r.prompt_index + 1, prompts.size(), r.sample_index + 1, args.config.num_samples,
                              r.finish_reason, prompts[r.prompt_index], r.text));
  }
  size_t tokens = 0, computed = 0;
  std::map<std::string, int> finished;
  for (const GenerateResult& r : results) {
    tokens += r.tokens.size();
    // The token that ended a text was computed too, so it counts toward the speed.
    computed += r.tokens.size() + (r.finish_reason == "eot" ? 1 : 0);
    ++finished[r.finish_reason];
  }
  std::string reasons;
  for (const auto& [reason, count] : finished)
    reasons += rows == 1 ? reason : fmt::format("{}{} {}", reasons.empty() ? "" : ", ", reason, count);
  fmt::print(stderr, "generate: {} tokens in {:.2f} s ({:.1f} tokens/s), finished: {}\n", tokens, seconds,
             static_cast<double>(computed) / seconds, reasons);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  SamplingConfig& s = args->config.sampling;
  CLI::App* cmd =
      app.add_subcommand("generate", "continue prompts with a trained model, printing as it goes");
  cmd->add_option("checkpoint", args->checkpoint,
                  "checkpoint directory, or a run directory (uses its latest)")
      ->required();
  cmd->add_option("--prompt", args->prompts,
                  "text to continue; repeat for several (none: the model starts a document)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--prompts-file", args->prompts_file, "a file with one prompt per line");
  cmd->add_option("--num-samples", args->config.num_samples, "generations per prompt")->capture_default_str();
  cmd->add_option("--max-new-tokens", args->config.max_new_tokens, "stop after this many tokens")
      ->capture_default_str();
  cmd->add_option("--min-new-tokens", args->config.min_new_tokens,
                  "<|endoftext|> cannot end the text before this many tokens")
      ->capture_default_str();
  cmd->add_option("--temperature", s.temperature, "0 = greedy; higher = more varied")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "sample among the k likeliest tokens; 0 = all")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "sample among the likeliest tokens holding this much probability")
      ->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "drop tokens less likely than this times the likeliest one")
      ->capture_default_str();
  cmd->add_option("--repetition-penalty", s.repetition_penalty, "> 1 discourages tokens already present")
      ->capture_default_str();
  cmd->add_option("--no-repeat-ngram-size", s.no_repeat_ngram_size, "never repeat an n-gram; 0 = off")
      ->capture_default_str();
  cmd->add_option("--stop", args->config.stop, "end the text before this string; repeat for several")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--seed", s.seed, "the same seed gives the same text")->capture_default_str();
  cmd->add_flag("--sliding-window", args->config.sliding_window,
                "keep the end of a prompt longer than the context, and generate past the context");
  cmd->add_flag("--json", args->json, "print the texts, token ids and finish reasons as JSON");
  cmd->add_flag("--logprobs", args->logprobs, "with --json: each token's log-probability under the model");
  cmd->add_option("--batch", args->config.batch, "generations decoded together")->capture_default_str();
  cmd->add_flag("--no-kv-cache", args->no_kv_cache,
                "recompute the whole window every token (slow; for checks)");
  cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_flag("--no-eot-start", args->no_eot_start,
                "do not put <|endoftext|> before the prompt (continue mid-document)");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace inkstone::cli
