// Placeholder until the config command lands (replaced by the config work).
#include "cli/commands.h"

namespace inkstone::cli {
void add_config_command(CLI::App& app) {
  app.add_subcommand("config", "print the resolved config");
}
}  // namespace inkstone::cli
