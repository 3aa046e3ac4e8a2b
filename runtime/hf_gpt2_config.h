// config.json of a GPT-2 checkpoint: the Hugging Face GPT2Config fields that transformers reads
// (so `GPT2LMHeadModel.from_pretrained(dir)` works), plus an "inkstone" object recording how the
// model was made: {"format": 1, "run_config": <YAML text>, "tokenizer_sha256": <hex>}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/model_config.h"

namespace inkstone {

inline constexpr int kCheckpointFormat = 1;  // the "inkstone" object's format this build writes and reads

struct HFGPT2Config {
  GPT2Shape shape;            // n_layer, n_head, n_embd, n_positions (context), vocab_size
  int64_t bos_token_id = -1;  // -1: absent or null
  int64_t eos_token_id = -1;
  bool has_inkstone = false;  // false for a foreign Hugging Face export
  std::string run_config_yaml;
  std::string tokenizer_sha256;
};

// The config.json text for a model of `shape` whose tokenizer's <|endoftext|> is `eot_id`.
std::string hf_gpt2_config_json(const GPT2Shape& shape, int32_t eot_id, const std::string& run_config_yaml,
                                const std::string& tokenizer_sha256, double dropout = 0.0);

// Reads config.json text; `name` stands for the file in messages. Besides the dimensions it checks
// that the fields describe the GPT-2 inkstone computes (tanh GELU, LayerNorm eps 1e-5, tied
// embeddings, MLP width 4 x n_embd, attention scaled by 1/sqrt(head_dim)); the "inkstone" object is
// optional, and checked when present. Throws inkstone::Error naming the file and the field.
HFGPT2Config parse_hf_gpt2_config(std::string_view text, const std::string& name);

}  // namespace inkstone
