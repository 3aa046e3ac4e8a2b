// Each inkstone command lives in its own cli/cmd_<name>.cpp and registers itself here.
#pragma once

#include <CLI/CLI.hpp>

namespace inkstone::cli {

void add_config_command(CLI::App& app);   // inkstone config CONFIG [key=value ...]
void add_prepare_command(CLI::App& app);  // inkstone prepare CONFIG | --input ...
void add_inspect_command(CLI::App& app);  // inkstone inspect SHARD_OR_FOLDER...
void add_train_command(CLI::App& app);    // inkstone train CONFIG [key=value ...]
void add_plot_command(CLI::App& app);     // inkstone plot RUN_DIR

void add_generate_command(CLI::App& app);  // inkstone generate CHECKPOINT --prompt TEXT
void add_eval_command(CLI::App& app);      // inkstone eval CHECKPOINT --data FILE_OR_SHARDS
void add_convert_command(CLI::App& app);   // inkstone convert SRC DST

void add_tokenizer_command(CLI::App& app);  // inkstone tokenizer train|encode|decode ...

}  // namespace inkstone::cli
