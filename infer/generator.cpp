#include "infer/generator.h"

#include <algorithm>
#include <memory>

#include "infer/next_token_logits.h"
#include "infer/stop_strings.h"
#include "infer/utf8_stream.h"
#include "kernels/ops.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

// The longest sequence one forward pass takes: the model's buffers and its position table both bound it.
int context_of(const GPT2& model) {
  return std::min(model.max_seq(), model.shape().context);
}

// One row's state between steps: what it has read, what it has printed, why it stopped.
struct Row {
  Sampler sampler;
  Utf8Stream utf8;
  StopStringFilter stops;
  GenerateResult result;
  bool active = true;
};

// Each row's own seed, so that a row's text does not depend on which rows share its batch. Row 0
// keeps the seed itself: a single generation is seeded exactly as asked.
uint64_t row_seed(uint64_t seed, size_t row) {
  return row == 0 ? seed : mix64(seed ^ mix64(static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull));
}

class GroupDecoder {
 public:
  GroupDecoder(const Tokenizer& tokenizer, const GenerateConfig& config, const TextSink& on_text)
      : tokenizer_(tokenizer), config_(config), on_text_(on_text) {}

  // Decodes rows [first, first + rows.size()) of the request to the end.
  // Decodes rows [first, first + rows.size()) of the request to the end; sequences[r] holds row r's
  // prompt tokens and receives its generated ones.
  void run(std::vector<Row>& rows, std::vector<std::vector<int32_t>>& sequences, size_t first,
           NextTokenLogits& source) {
    source.start(sequences);
    std::vector<bool> active(rows.size(), true);
    while (std::ranges::find(active, true) != active.end()) {
      for (size_t r = 0; r < rows.size(); ++r) {
        if (!active[r]) continue;
        step(rows[r], sequences[r], first + r, source.logits(r), source.capacity());
        active[r] = rows[r].active;
      }
      if (std::ranges::find(active, true) != active.end()) source.advance(sequences, active);
    }
  }

 private:
  void step(Row& row, std::vector<int32_t>& sequence, size_t index, std::span<const float> logits,
            int capacity) {
    const bool too_early = static_cast<int>(row.result.tokens.size()) < config_.min_new_tokens;
    const int32_t next = row.sampler.sample(logits, sequence, too_early ? tokenizer_.eot_id() : -1);
    if (config_.stop_at_eot && next == tokenizer_.eot_id()) return finish(row, index, "eot");
    sequence.push_back(next);
    row.result.tokens.push_back(next);
    row.result.logprobs.push_back(token_logprob(logits, next));
    emit(row, index, row.stops.push(row.utf8.push(tokenizer_.decode(std::span<const int32_t>(&next, 1)))));
    if (row.stops.stopped()) return finish(row, index, "stop");
    if (static_cast<int>(row.result.tokens.size()) >= config_.max_new_tokens)
      return finish(row, index, "length");
    // The next prediction would need position sequence.size() - 1, past the window.
    if (!config_.sliding_window && sequence.size() > static_cast<size_t>(capacity))
      return finish(row, index, "context");
  }

  void finish(Row& row, size_t index, const char* reason) {
    row.active = false;
    row.result.finish_reason = reason;
    emit(row, index, row.stops.push(row.utf8.flush()));
    if (row.stops.stopped()) row.result.finish_reason = "stop";
    emit(row, index, row.stops.flush());
  }

  void emit(Row& row, size_t index, const std::string& piece) {
    if (piece.empty()) return;
    row.result.text += piece;
    if (on_text_) on_text_(index, piece);
  }

  const Tokenizer& tokenizer_;
  const GenerateConfig& config_;
  const TextSink& on_text_;
};

}  // namespace

// Each sample is a row of results held in memory: a bound turns a typo into an error, not bad_alloc.
constexpr int kMaxSamples = 100000;

void validate(const GenerateConfig& config) {
  validate(config.sampling);
  if (config.max_new_tokens < 1) fail("--max-new-tokens must be >= 1 (got {})", config.max_new_tokens);
  if (config.min_new_tokens < 0 || config.min_new_tokens > config.max_new_tokens) {
    fail("--min-new-tokens must be in [0, --max-new-tokens = {}] (got {})", config.max_new_tokens,
         config.min_new_tokens);
  }
  if (config.num_samples < 1 || config.num_samples > kMaxSamples)
    fail("--num-samples must be in [1, {}] (got {})", kMaxSamples, config.num_samples);
  if (config.batch < 1) fail("--batch must be >= 1 (got {})", config.batch);
  StopStringFilter check(config.stop);
}

std::vector<int32_t> prompt_tokens(const Tokenizer& tokenizer, std::string_view prompt,
                                   bool start_of_document, bool sliding_window, int context) {
  std::vector<int32_t> tokens;
  if (start_of_document) tokens.push_back(tokenizer.eot_id());
  const std::vector<int32_t> encoded = tokenizer.encode(prompt);
  tokens.insert(tokens.end(), encoded.begin(), encoded.end());
  if (tokens.empty())
    fail("the prompt is empty; give some text to continue, or let generation start a document");
  if (tokens.size() > static_cast<size_t>(context)) {
    if (!sliding_window)
      fail(
          "the prompt is {} tokens, longer than the model's context of {} tokens; shorten it, or pass "
          "--sliding-window to keep its last {} tokens",
          tokens.size(), context, context);
    tokens.erase(tokens.begin(), tokens.end() - context);
  }
  return tokens;
}

std::vector<GenerateResult> generate(GPT2& model, const Tokenizer& tokenizer,
                                     std::span<const std::string> prompts, const GenerateConfig& config,
                                     const TextSink& on_text) {
  validate(config);
  const int context = context_of(model);
  std::vector<std::vector<int32_t>> encoded;
  for (const std::string& prompt : prompts)
    encoded.push_back(
        prompt_tokens(tokenizer, prompt, config.start_of_document, config.sliding_window, context));

  const size_t total = prompts.size() * static_cast<size_t>(config.num_samples);
  const size_t group = static_cast<size_t>(std::min(config.batch, model.max_batch()));
  std::vector<GenerateResult> results;
  results.reserve(total);
  GroupDecoder decoder(tokenizer, config, on_text);
  std::unique_ptr<NextTokenLogits> source;
  for (size_t first = 0; first < total; first += group) {
    const size_t n = std::min(group, total - first);
    std::vector<Row> rows;
    std::vector<std::vector<int32_t>> sequences;
    rows.reserve(n);
    for (size_t i = first; i < first + n; ++i) {
      SamplingConfig sampling = config.sampling;
      sampling.seed = row_seed(config.sampling.seed, i);
      const size_t p = i / static_cast<size_t>(config.num_samples);
      sequences.push_back(encoded[p]);
      Row row{.sampler = Sampler(sampling),
              .utf8 = {},
              .stops = StopStringFilter(config.stop),
              .result = {},
              .active = true};
      row.result.prompt_index = p;
      row.result.sample_index = static_cast<int>(i % static_cast<size_t>(config.num_samples));
      row.result.prompt_tokens = encoded[p].size();
      rows.push_back(std::move(row));
    }
    // The last group may be smaller; the source is sized per group size.
    if (!source || n != group)
      source = config.kv_cache ? make_cached_logits(model, static_cast<int>(n), context)
                               : make_recomputed_logits(model, static_cast<int>(n), context);
    decoder.run(rows, sequences, first, *source);
    for (Row& row : rows) results.push_back(std::move(row.result));
  }
  return results;
}

GenerateResult generate(GPT2& model, const Tokenizer& tokenizer, std::string_view prompt,
                        const GenerateConfig& config, const std::function<void(std::string_view)>& on_text) {
  validate(config);
  GenerateConfig one = config;
  one.num_samples = 1;
  const std::string prompts[] = {std::string(prompt)};
  std::vector<GenerateResult> results =
      generate(model, tokenizer, prompts, one, [&](size_t, std::string_view piece) {
        if (on_text) on_text(piece);
      });
  return std::move(results.front());
}

}  // namespace inkstone
