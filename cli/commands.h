// Each inkstone command lives in its own cli/cmd_<name>.cpp and registers itself here.
#pragma once

#include <CLI/CLI.hpp>

namespace inkstone::cli {

void add_config_command(CLI::App& app);   // inkstone config CONFIG [key=value ...]
void add_prepare_command(CLI::App& app);  // inkstone prepare CONFIG | --input ...
void add_inspect_command(CLI::App& app);  // inkstone inspect SHARD_OR_FOLDER...

}  // namespace inkstone::cli
