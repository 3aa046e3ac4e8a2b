// inkstone: the command-line entry point. Parsing only; the work is in the libraries.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "runtime/error.h"

int main(int argc, char** argv) {
  CLI::App app{"inkstone: train, evaluate and write with GPT-style language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "inkstone 0.1.0");
  inkstone::cli::add_config_command(app);
  inkstone::cli::add_prepare_command(app);
  inkstone::cli::add_inspect_command(app);
  inkstone::cli::add_train_command(app);
  inkstone::cli::add_plot_command(app);
  inkstone::cli::add_generate_command(app);
  inkstone::cli::add_eval_command(app);
  inkstone::cli::add_convert_command(app);
  inkstone::cli::add_tokenizer_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help and --version
  } catch (const CLI::ParseError& e) {
    // CLI11 would print the error and then a usage hint on a second line; keep it to one line.
    fmt::print(stderr, "inkstone: error: {} (see inkstone --help)\n", e.what());
    return 2;  // usage error
  } catch (const inkstone::Error& e) {
    fmt::print(stderr, "inkstone: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "inkstone: internal error: {}\n", e.what());
    return 70;  // EX_SOFTWARE: a bug, not a bad input
  }
  return 0;
}
