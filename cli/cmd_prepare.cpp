// Placeholder until the prepare command lands (replaced by the data work).
#include "cli/commands.h"

namespace inkstone::cli {
void add_prepare_command(CLI::App& app) {
  app.add_subcommand("prepare", "prepare a corpus");
}
}  // namespace inkstone::cli
