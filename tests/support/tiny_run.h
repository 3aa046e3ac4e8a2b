// A tiny corpus, prepared, and a config that trains on it end to end in about a second: the fixture of
// the training, resume and checkpoint tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace inkstone::testing {

struct TinyRun {
  std::filesystem::path root;
  std::filesystem::path config;      // root/config.yaml
  std::filesystem::path data_dir;    // root/data, prepared
  std::filesystem::path output_dir;  // root/run (not created)
};

// Pseudo-poems (lines of 5 or 7 CJK characters and their punctuation, "%"-separated), deterministic.
std::string tiny_poems(int poems, unsigned seed);

// Writes root/corpus.txt and root/config.yaml (2 layers, n_embd 32, context 32, 4 x 32 tokens per
// step, 8 steps, eval every 4, checkpoint every 4, device cpu) and prepares the data in-process.
TinyRun make_tiny_run(const std::filesystem::path& root);

// `inkstone train` arguments for `run` with extra key=value overrides.
std::vector<std::string> train_args(const TinyRun& run, const std::vector<std::string>& overrides = {});

}  // namespace inkstone::testing
