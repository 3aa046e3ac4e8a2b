// Autoregressive generation for a batch of prompts, several samples each, decoded in lockstep:
// prompts prefilled in one forward pass into the KV cache, then one token per row per step (or, for
// reference, a full forward pass per token). Text streams in whole UTF-8 characters and ends exactly
// before a stop string; each row has its own sampler, seeded from (seed, row), so the same seed gives
// the same texts.
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
  // <|endoftext|> cannot be sampled before this many new tokens (Hugging Face's min_new_tokens): a
  // small model that likes to end early still writes a body. 0 <= min_new_tokens <= max_new_tokens.
  int min_new_tokens = 0;
  int num_samples = 1;      // per prompt, >= 1
  bool stop_at_eot = true;  // <|endoftext|> ends the text (and is not printed)
  // Put <|endoftext|> before the prompt, as training put it before every document.
  bool start_of_document = true;
  std::vector<std::string> stop = {};  // the text ends before the first of these (none empty)
  // A prompt longer than the context keeps its last `context` tokens, and generation goes on past the
  // context (see infer/next_token_logits.h); otherwise the first is an error and the second ends the
  // text with finish reason "context".
  bool sliding_window = false;
  bool kv_cache = true;  // false: a full forward pass per token (for comparison)
  int batch = 8;         // rows decoded together, >= 1 (capped by the model's max_batch)
};

struct GenerateResult {
  size_t prompt_index = 0;
  int sample_index = 0;
  std::string text;  // the continuation, without the prompt, cut before a stop string
  // Every token sampled (a stop string's too; <|endoftext|> not), with the model's own log-probability
  // of each (log softmax of its logits, before any sampling rule).
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
  std::string finish_reason;  // "eot", "stop", "length" (max_new_tokens) or "context"
  size_t prompt_tokens = 0;   // tokens the model read before the first new one
};

// Throws inkstone::Error naming the option when a value is out of range (sampling included).
void validate(const GenerateConfig& config);

// The tokens generation starts from: <|endoftext|> when start_of_document, then the prompt's. Throws
// inkstone::Error when there are none, or more than `context` without sliding_window (which keeps the
// last `context`), so a caller can check prompts before loading a model.
std::vector<int32_t> prompt_tokens(const Tokenizer& tokenizer, std::string_view prompt,
                                   bool start_of_document, bool sliding_window, int context);

// Row index (into the result), then a piece of its text.
using TextSink = std::function<void(size_t row, std::string_view piece)>;

// Results in row order: prompt 0's samples, then prompt 1's, ... `model` reads at most
// min(max_seq, context) tokens per row and decodes min(batch, max_batch) rows at a time.
std::vector<GenerateResult> generate(GPT2& model, const Tokenizer& tokenizer,
                                     std::span<const std::string> prompts, const GenerateConfig& config,
                                     const TextSink& on_text = {});

// One prompt, one sample.
GenerateResult generate(GPT2& model, const Tokenizer& tokenizer, std::string_view prompt,
                        const GenerateConfig& config,
                        const std::function<void(std::string_view)>& on_text = {});

}  // namespace inkstone
