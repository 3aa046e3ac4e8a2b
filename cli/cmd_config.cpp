// inkstone config CONFIG [key=value ...] [--out FILE]: loads and checks a config, prints the resolved
// YAML (every key, defaults included) and one line to stderr with the model it describes, so a
// config can be tried before a run is launched.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/model_config.h"
#include "runtime/model_source.h"
#include "runtime/tokenizer.h"

namespace inkstone::cli {
namespace {

struct ConfigOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_path;
};

struct KnownVocab {
  int size = 0;      // 0: not known before `inkstone prepare` has run
  std::string from;  // where it was read, for the summary
};

// The tokenizer's vocabulary when it is known already: the byte tokenizer's, the tokenizer.json that
// data.tokenizer names, or the one `inkstone prepare` wrote into data.dir.
KnownVocab known_tokenizer_vocab(const DataConfig& data) {
  namespace fs = std::filesystem;
  if (data.tokenizer == "byte") return {tokenizer_from_spec(data.tokenizer)->vocab_size(), "byte tokenizer"};
  if (fs::is_regular_file(data.tokenizer))
    return {load_tokenizer(data.tokenizer)->vocab_size(), data.tokenizer};
  const fs::path prepared = fs::path(data.dir) / "tokenizer.json";
  if (fs::is_regular_file(prepared))
    return {load_tokenizer(prepared.string())->vocab_size(), prepared.string()};
  return {};
}

// Whether a run with this device setting would train on this machine's CPU: the memory check below
// only makes sense then (a config may well be written here for a GPU machine).
bool trains_on_cpu(const std::string& device) {
  if (device == "cpu") return true;
  if (device != "auto") return false;
  return make_backend("auto")->kind() == DeviceKind::CPU;
}

std::string millions(int64_t count) {
  return fmt::format("{:.2f}M", static_cast<double>(count) / 1e6);
}
std::string gib(int64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

// One line: the resolved shape, the parameter count and the fp32 training memory estimate.
std::string summary(const RunConfig& config) {
  KnownVocab vocab = known_tokenizer_vocab(config.data);
  GPT2Shape shape;
  std::string name = config.model.preset;
  if (!config.init_from.empty()) {
    // The model is the source's (the trainer checks the config's model keys against it).
    std::error_code ec;
    if (!std::filesystem::exists(config.init_from, ec)) {
      return fmt::format("model from init_from {}, which is not there yet: train or convert it first",
                         config.init_from);
    }
    shape = read_model_source(config.init_from).shape;
    name = "init_from " + config.init_from;
    vocab = {shape.vocab, "init_from"};
  } else {
    try {
      shape = vocab.size > 0 || config.model.vocab > 0 ? resolve_shape(config.model, vocab.size)
                                                       : resolve_architecture(config.model);
    } catch (const Error& e) {
      fail("{}: {}", config.source, e.what());
    }
  }
  const TrainConfig& train = config.train;
  if (trains_on_cpu(config.device)) {
    const int64_t ram = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
    check_fits_in_memory(config.model.preset, shape, train, ram, /*on_gpu=*/false);
  }
  const int64_t memory = training_memory_bytes(shape, train.micro_batch, train.seq_len);
  const std::string dims = fmt::format("{}: {} layers, {} heads, n_embd {}, context {}", name, shape.n_layer,
                                       shape.n_head, shape.n_embd, shape.context);
  const std::string batch = fmt::format("at micro_batch {} x seq_len {}", train.micro_batch, train.seq_len);
  if (shape.vocab == 0) {
    return fmt::format(
        "{}, vocab from the tokenizer that `inkstone prepare` will write; {} parameters besides "
        "the token embedding; training needs over {} in fp32 {}",
        dims, millions(shape.num_parameters()), gib(memory), batch);
  }
  const std::string vocab_from = vocab.size > 0           ? vocab.from
                                 : config.model.vocab > 0 ? std::string("model.vocab")
                                                          : "preset " + config.model.preset;
  return fmt::format("{}, vocab {} ({}); {} parameters; training needs about {} in fp32 {}", dims,
                     shape.vocab, vocab_from, millions(shape.num_parameters()), gib(memory), batch);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) fail("{}: cannot write the resolved config; check that its folder exists and is writable", path);
}

void run_config(const ConfigOptions& options) {
  const RunConfig config = load_config(options.config_path, options.overrides);
  const std::string yaml = to_yaml(config);
  const std::string line = summary(config);
  if (options.out_path.empty()) {
    fmt::print("{}", yaml);
  } else {
    write_text(options.out_path, yaml);
  }
  fmt::print(stderr, "{}\n", line);
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto options = std::make_shared<ConfigOptions>();
  CLI::App* command = app.add_subcommand(
      "config", "check a config and print it resolved: every key, defaults and overrides applied");
  command->add_option("config", options->config_path, "the YAML config file")->required();
  command->add_option("overrides", options->overrides,
                      "key.sub=value overrides, applied in order after the file");
  command->add_option("--out", options->out_path, "write the resolved YAML to this file instead of stdout");
  command->callback([options] { run_config(*options); });
}

}  // namespace inkstone::cli
