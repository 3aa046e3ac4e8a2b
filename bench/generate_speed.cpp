// bench_generate_speed: autoregressive decoding speed with the KV cache and without it, in one run.
//
//   bench_generate_speed [--preset gpt2-124m] [--prompt 32] [--new 256] [--batch 1] [--threads 2]
//                        [--repeats 3] [--device cpu] [--json FILE]
//
// A randomly initialised model (speed does not depend on the weights) reads a random prompt and then
// decodes greedily. Prefill is the prompt's one forward pass; decode is every later token. The cached
// path runs `repeats` times (median); the recomputing path (a full forward pass over the whole
// sequence per token, the cost a model without a cache pays) runs once, since it is far slower. Both
// should pick the same greedy tokens: "same tokens" checks the cache end to end (a late divergence can
// be float rounding flipping a near-tie of a random model's logits; an early one is a bug).
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "bench/bench_common.h"
#include "infer/next_token_logits.h"
#include "kernels/cpu/cpu_ops.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "runtime/model_config.h"
#include "runtime/rng.h"

namespace inkstone::bench {
namespace {

struct Options {
  std::string preset = "gpt2-124m";
  int prompt = 32, generated = 256, batch = 1, threads = 2, repeats = 3;
  std::string device = "cpu", json;
};

struct Timing {
  double prefill_s = 0, decode_s = 0;
  std::vector<int32_t> tokens;  // row 0's greedy tokens
};

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Prefill the prompts, then `generated` greedy tokens per row (the last one sampled, not fed back).
Timing decode(GPT2& model, NextTokenLogits& source, std::vector<std::vector<int32_t>> sequences,
              int generated) {
  Timing t;
  const std::vector<bool> active(sequences.size(), true);
  model.backend().synchronize();
  double t0 = now_seconds();
  source.start(sequences);
  model.backend().synchronize();
  t.prefill_s = now_seconds() - t0;
  t0 = now_seconds();
  for (int i = 0; i < generated; ++i) {
    for (size_t r = 0; r < sequences.size(); ++r) sequences[r].push_back(argmax(source.logits(r)));
    if (i + 1 < generated) source.advance(sequences, active);
  }
  model.backend().synchronize();
  t.decode_s = now_seconds() - t0;
  t.tokens.assign(sequences[0].end() - generated, sequences[0].end());
  return t;
}

int run(const Options& o) {
  ModelConfig model_config;
  model_config.preset = o.preset;
  const GPT2Shape shape = resolve_shape(model_config, 50257);
  const int capacity = o.prompt + o.generated;
  if (capacity > shape.context)
    fail("--prompt + --new = {} exceeds the context of {} ({})", capacity, shape.context, o.preset);
  std::unique_ptr<Backend> backend = make_backend(o.device);
  if (backend->kind() == DeviceKind::CPU) cpu::set_num_threads(o.threads);
  GPT2 model(*backend, shape, o.batch, capacity);
  model.initialize(1337);
  fmt::print("bench_generate_speed: {} ({:.1f}M parameters), batch {}, prompt {} + {} new tokens, {}\n",
             o.preset, static_cast<double>(shape.num_parameters()) / 1e6, o.batch, o.prompt, o.generated,
             backend->describe());

  Rng rng(42);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.batch));
  for (auto& p : prompts)
    for (int i = 0; i < o.prompt; ++i)
      p.push_back(static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(shape.vocab)));

  const std::unique_ptr<NextTokenLogits> cached = make_cached_logits(model, o.batch, capacity);
  decode(model, *cached, prompts, std::min(o.generated, 8));  // warm-up: first-touch, thread pools
  std::vector<double> prefill, step;
  Timing last;
  for (int i = 0; i < o.repeats; ++i) {
    last = decode(model, *cached, prompts, o.generated);
    prefill.push_back(last.prefill_s);
    step.push_back(last.decode_s);
  }
  const std::unique_ptr<NextTokenLogits> recomputed = make_recomputed_logits(model, o.batch, capacity);
  const Timing full = decode(model, *recomputed, prompts, o.generated);

  const double new_tokens = static_cast<double>(o.batch) * o.generated;
  const double prefill_tps = static_cast<double>(o.batch) * o.prompt / median(prefill);
  const double cached_tps = new_tokens / (median(prefill) + median(step));
  const double full_tps = new_tokens / (full.prefill_s + full.decode_s);
  const size_t agree = static_cast<size_t>(
      std::mismatch(last.tokens.begin(), last.tokens.end(), full.tokens.begin()).first - last.tokens.begin());
  const bool same = agree == last.tokens.size();
  fmt::print("\n{:<26} {:>12}\n", "", "tokens/s");
  fmt::print("{:<26} {:>12.1f}\n", "prefill (cache)", prefill_tps);
  fmt::print("{:<26} {:>12.1f}   median of {}\n", "generate, KV cache", cached_tps, o.repeats);
  fmt::print("{:<26} {:>12.1f}   one run\n", "generate, full recompute", full_tps);
  fmt::print("speed-up of the cache: {:.1f}x; same tokens: {}\n", cached_tps / full_tps,
             same ? "yes" : fmt::format("first {} of {}", agree, last.tokens.size()));

  if (!o.json.empty()) {
    const nlohmann::json out = {{"bench", "generate_speed"},
                                {"backend", backend->describe()},
                                {"preset", o.preset},
                                {"batch", o.batch},
                                {"prompt_tokens", o.prompt},
                                {"new_tokens", o.generated},
                                {"threads", o.threads},
                                {"prefill_tokens_per_s", prefill_tps},
                                {"kv_cache_tokens_per_s", cached_tps},
                                {"recompute_tokens_per_s", full_tps},
                                {"speedup", cached_tps / full_tps},
                                {"same_tokens", same},
                                {"agreeing_tokens", agree}};
    write_json(o.json, out);
  }
  return 0;
}

}  // namespace
}  // namespace inkstone::bench

int main(int argc, char** argv) {
  inkstone::bench::Options o;
  CLI::App app{"Time autoregressive decoding with and without the KV cache"};
  app.add_option("--preset", o.preset, "model preset")->capture_default_str();
  app.add_option("--prompt", o.prompt, "prompt tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--new", o.generated, "new tokens per row")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "rows decoded together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "CPU threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--repeats", o.repeats, "timed runs of the cached path")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--json", o.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return inkstone::bench::run_reporting_errors("bench_generate_speed",
                                               [&] { return inkstone::bench::run(o); });
}
