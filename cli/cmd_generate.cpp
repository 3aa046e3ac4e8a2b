// inkstone generate CHECKPOINT [--prompt TEXT] [--max-new-tokens N] [--temperature T] [--top-k K]
//                  [--seed S] [--device cpu|cuda|auto] [--no-eot-start]
// Continues the prompt with the model, printing the prompt and then the text as it comes (stdout);
// the device and a stats line go to stderr, so `inkstone generate ... > story.txt` keeps only the story.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/checkpoint_dir.h"
#include "cli/commands.h"
#include "infer/generator.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/model_checkpoint.h"

namespace inkstone::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  std::string device = "auto";
  GenerateConfig config{.sampling = {.temperature = 0.8, .top_k = 40, .seed = 1337}, .max_new_tokens = 200};
  bool no_eot_start = false;
};

void print_piece(std::string_view piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

void run_generate(GenerateArgs args) {
  // Flags and prompt first: a typo should not cost the time of loading a model.
  args.config.start_of_document = !args.no_eot_start;
  validate(args.config);
  const ModelCheckpointInfo info = read_model_checkpoint_info(resolve_checkpoint_dir(args.checkpoint));
  // The model reads at most as many tokens as it was trained on: later positions never learned anything.
  const int context = std::min(info.config.train.seq_len, info.shape.context);
  prompt_tokens(*info.tokenizer, args.prompt, args.config.start_of_document, context);
  std::string chosen;
  const std::unique_ptr<Backend> backend = make_backend(args.device, &chosen);
  const std::unique_ptr<GPT2> model = load_model(info, *backend, 1, context);
  fmt::print(stderr, "generate: {} on {}\n", info.dir.string(), chosen);

  print_piece(args.prompt);
  const auto start = std::chrono::steady_clock::now();
  const GenerateResult result = generate(*model, *info.tokenizer, args.prompt, args.config, print_piece);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print_piece("\n");
  // The token that ended the text was computed too, so it counts toward the speed.
  const size_t computed = result.tokens.size() + (result.finish_reason == "eot" ? 1 : 0);
  fmt::print(stderr, "generate: {} tokens in {:.2f} s ({:.1f} tokens/s), finished: {}\n",
             result.tokens.size(), seconds, static_cast<double>(computed) / seconds, result.finish_reason);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd =
      app.add_subcommand("generate", "continue a prompt with a trained model, printing as it goes");
  cmd->add_option("checkpoint", args->checkpoint,
                  "checkpoint directory, or a run directory (uses its latest)")
      ->required();
  cmd->add_option("--prompt", args->prompt, "text to continue (empty: the model starts a document)");
  cmd->add_option("--max-new-tokens", args->config.max_new_tokens, "stop after this many tokens")
      ->capture_default_str();
  cmd->add_option("--temperature", args->config.sampling.temperature, "0 = greedy; higher = more varied")
      ->capture_default_str();
  cmd->add_option("--top-k", args->config.sampling.top_k, "sample among the k likeliest tokens; 0 = all")
      ->capture_default_str();
  cmd->add_option("--seed", args->config.sampling.seed, "the same seed gives the same text")
      ->capture_default_str();
  cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_flag("--no-eot-start", args->no_eot_start,
                "do not put <|endoftext|> before the prompt (continue mid-document)");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace inkstone::cli
