#include "infer/generator.h"

#include <algorithm>
#include <cassert>

#include "infer/utf8_stream.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

// The longest sequence one forward pass takes: the model's buffers and its position table both bound it.
int context_of(const GPT2& model) {
  return std::min(model.max_seq(), model.shape().context);
}

}  // namespace

void validate(const GenerateConfig& config) {
  validate(config.sampling);
  if (config.max_new_tokens < 1) fail("--max-new-tokens must be >= 1 (got {})", config.max_new_tokens);
}

std::vector<int32_t> prompt_tokens(const Tokenizer& tokenizer, std::string_view prompt,
                                   bool start_of_document, int context) {
  std::vector<int32_t> tokens;
  if (start_of_document) tokens.push_back(tokenizer.eot_id());
  const std::vector<int32_t> encoded = tokenizer.encode(prompt);
  tokens.insert(tokens.end(), encoded.begin(), encoded.end());
  if (tokens.empty())
    fail("the prompt is empty; give some text to continue, or let generation start a document");
  if (tokens.size() > static_cast<size_t>(context))
    fail("the prompt is {} tokens, longer than the model's context of {} tokens; shorten the prompt",
         tokens.size(), context);
  return tokens;
}

GenerateResult generate(GPT2& model, const Tokenizer& tokenizer, std::string_view prompt,
                        const GenerateConfig& config, const std::function<void(std::string_view)>& on_text) {
  validate(config);
  const int context = context_of(model);
  assert(model.max_batch() >= 1 && context >= 1);

  std::vector<int32_t> tokens = prompt_tokens(tokenizer, prompt, config.start_of_document, context);

  Sampler sampler(config.sampling);
  Utf8Stream stream;
  GenerateResult result;
  result.finish_reason = "length";
  const auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    result.text += piece;
    if (on_text) on_text(piece);
  };

  for (int step = 0; step < config.max_new_tokens; ++step) {
    // No KV cache yet: every step re-reads the last `context` tokens, dropping the oldest once the
    // sequence outgrows the context.
    const int T = static_cast<int>(std::min(tokens.size(), static_cast<size_t>(context)));
    const std::span<const int32_t> window(tokens.data() + tokens.size() - static_cast<size_t>(T),
                                          static_cast<size_t>(T));
    model.forward(window, {}, 1, T);
    const int32_t next = sampler.sample(model.read_logits(T - 1, 1));
    if (config.stop_at_eot && next == tokenizer.eot_id()) {
      result.finish_reason = "eot";
      break;
    }
    tokens.push_back(next);
    result.tokens.push_back(next);
    emit(stream.push(tokenizer.decode(std::span<const int32_t>(&next, 1))));
  }
  emit(stream.flush());
  return result;
}

}  // namespace inkstone
