// A tiny corpus, prepared, and a config that trains on it end to end in about a second: the fixture of
// the training, resume and checkpoint tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/model_config.h"

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

// A model-only checkpoint in `dir` (created if absent) of a randomly initialised GPT-2 of
// kTinyCheckpointShape with the byte tokenizer, whose run config says it trained on seq_len tokens.
inline constexpr GPT2Shape kTinyCheckpointShape{
    .n_layer = 2, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};
void write_tiny_checkpoint(const std::filesystem::path& dir, int seq_len, uint64_t seed);

// `inkstone train` arguments for `run` with extra key=value overrides.
std::vector<std::string> train_args(const TinyRun& run, const std::vector<std::string>& overrides = {});

}  // namespace inkstone::testing
