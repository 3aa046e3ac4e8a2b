// inkstone prepare CONFIG [key=value ...]
// inkstone prepare --input PATH [--input PATH ...] --out DIR [--val-fraction F] [--separator S]
//                  [--invalid-utf8 error|replace] [--shard-tokens N] [--tokenizer byte|PATH]
// Cleans a corpus, tokenizes it and writes train/val token shards (see runtime/prepare.h).
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/prepare.h"

namespace inkstone::cli {
namespace {

struct PrepareArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::vector<std::string> inputs;
  DataConfig flags;  // filled by the flags; defaults are DataConfig's
  const CLI::Option* out = nullptr;
  std::vector<const CLI::Option*> flag_options;  // every flag that only goes with --input
};

DataConfig data_config_from(const PrepareArgs& args) {
  const bool flag_given = std::any_of(args.flag_options.begin(), args.flag_options.end(),
                                      [](const CLI::Option* o) { return o->count() > 0; });
  if (!args.config.empty() && !args.inputs.empty()) {
    fail("prepare: give a config file or --input, not both");
  }
  if (!args.config.empty()) {
    if (flag_given) {
      fail("prepare: with a config file, set data keys as overrides (e.g. data.dir=DIR), not flags");
    }
    return load_config(args.config, args.overrides).data;
  }
  if (args.inputs.empty()) {
    fail("prepare: give a config file (inkstone prepare CONFIG) or --input PATH --out DIR");
  }
  if (args.out->count() == 0) fail("prepare: --out DIR is required with --input");

  DataConfig data = args.flags;
  data.corpus = args.inputs;
  if (!(data.val_fraction >= 0.0 && data.val_fraction <= 0.5)) {
    fail("prepare: --val-fraction is {}; use a value in [0, 0.5]", data.val_fraction);
  }
  if (data.invalid_utf8 != "error" && data.invalid_utf8 != "replace") {
    fail("prepare: --invalid-utf8 is '{}'; use error or replace", data.invalid_utf8);
  }
  if (data.shard_tokens <= 0) fail("prepare: --shard-tokens is {}; it must be positive", data.shard_tokens);
  return data;
}

}  // namespace

void add_prepare_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("prepare", "clean a corpus, tokenize it and write train/val token shards");
  auto args = std::make_shared<PrepareArgs>();
  cmd->add_option("config", args->config, "YAML config; only its data: section is used");
  cmd->add_option("overrides", args->overrides, "key=value overrides of the config, e.g. data.dir=DIR");
  cmd->add_option("--input", args->inputs, "corpus file, folder or glob (repeatable); instead of a config");
  args->out = cmd->add_option("--out", args->flags.dir, "directory to write the prepared data to");
  args->flag_options = {
      args->out,
      cmd->add_option("--val-fraction", args->flags.val_fraction,
                      "share of documents held out for validation")
          ->capture_default_str(),
      cmd->add_option("--separator", args->flags.document_separator,
                      "a line equal to this separates documents (default: one document per file)"),
      cmd->add_option("--invalid-utf8", args->flags.invalid_utf8, "error or replace (with U+FFFD)")
          ->capture_default_str(),
      cmd->add_option("--shard-tokens", args->flags.shard_tokens, "at most this many tokens per shard file")
          ->capture_default_str(),
      cmd->add_option("--tokenizer", args->flags.tokenizer, "byte or the path of a tokenizer.json")
          ->capture_default_str(),
  };
  cmd->callback([args] { prepare_corpus(data_config_from(*args), std::cout); });
}

}  // namespace inkstone::cli
