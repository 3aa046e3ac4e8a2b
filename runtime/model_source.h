// A pretrained model to start from (`init_from: PATH`, `inkstone convert SRC`): either an inkstone
// checkpoint directory (runtime/model_checkpoint.h) or a Hugging Face GPT-2 directory as transformers'
// save_pretrained or the Hub leave it:
//
//   config.json        GPT2Config (model_type "gpt2"), without inkstone's "inkstone" object
//   model.safetensors  F32, F16 or BF16; "transformer." prefixes, attn.bias / attn.masked_bias buffers
//                      and a tied lm_head.weight are accepted (see load_model_weights)
//   tokenizer.json, or vocab.json + merges.txt (tokenizer.json wins when both are there, as in
//                      transformers' fast tokenizer)
//
// The weights are read by load_model_weights(source.dir, model), which checks every name and shape.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "runtime/model_config.h"
#include "runtime/tokenizer.h"

namespace inkstone {

struct ModelSource {
  std::filesystem::path dir;
  GPT2Shape shape;
  // The tokenizer.json text whose hash identifies the tokenizer. An inkstone checkpoint's own file;
  // for a Hugging Face directory the text inkstone writes for its tokenizer (Tokenizer::to_json), which
  // is what `inkstone prepare` writes with `data.tokenizer: DIR/tokenizer.json` (or DIR/vocab.json), so
  // data prepared that way has this hash.
  std::string tokenizer_json;
  std::string tokenizer_sha256;          // tokenizer_hash(tokenizer_json)
  std::unique_ptr<Tokenizer> tokenizer;  // vocab_size() == shape.vocab
  bool hugging_face = false;             // true: a foreign directory, config.json without "inkstone"
  int32_t eos_token_id = -1;             // the tokenizer's <|endoftext|>, which config.json agrees with
};

// Reads and cross-checks config.json and the tokenizer files of `dir` (not the weights). Throws
// inkstone::Error naming the file and the field: a model_type other than gpt2, a GPT-2 variant
// inkstone does not compute, a tokenizer whose vocabulary is not config.json's vocab_size, a missing
// model.safetensors or tokenizer.
ModelSource read_model_source(const std::filesystem::path& dir);

// Throws inkstone::Error (one line naming `data_name`, both tokenizer hashes and vocab sizes, and the
// `data.tokenizer:` line that prepares the data right) unless the data was prepared with the
// source's tokenizer: the same ids would otherwise mean other text to the weights than to the data.
void check_compatible(const ModelSource& source, int data_vocab, const std::string& data_tokenizer_sha256,
                      const std::string& data_name);

}  // namespace inkstone
