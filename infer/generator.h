// Autoregressive generation, first version: each new token runs a full forward pass over the last
// `context` tokens (no KV cache yet; "Writing with the model" adds it). Text is streamed through
// `on_text` in whole UTF-8 characters, never a split multi-byte sequence.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampler.h"
#include "runtime/gpt2.h"
#include "runtime/tokenizer.h"

namespace inkstone {

struct GenerateConfig {
  SamplingConfig sampling;
  int max_new_tokens = 256;  // >= 1
  bool stop_at_eot = true;   // <|endoftext|> ends the text (and is not printed)
  bool start_of_document =
      true;  // put <|endoftext|> before the prompt, as training put it before every document
};

struct GenerateResult {
  std::string text;  // the generated continuation, without the prompt
  std::vector<int32_t> tokens;
  std::string finish_reason;  // "eot" or "length"
};

// Throws inkstone::Error naming the option when a value is out of range (sampling included).
void validate(const GenerateConfig& config);

// The tokens generation starts from: <|endoftext|> when start_of_document, then the prompt's. Throws
// inkstone::Error when there are none or more than `context`, so a caller can check a prompt before
// loading a model.
std::vector<int32_t> prompt_tokens(const Tokenizer& tokenizer, std::string_view prompt,
                                   bool start_of_document, int context);

// `model` must have max_batch >= 1 and max_seq >= 1. An empty prompt is allowed when
// start_of_document is set (the model then starts a document). Throws inkstone::Error on bad input.
GenerateResult generate(GPT2& model, const Tokenizer& tokenizer, std::string_view prompt,
                        const GenerateConfig& config,
                        const std::function<void(std::string_view)>& on_text = {});

}  // namespace inkstone
