// bench_train_step: one GPT-2 training step (forward + backward + AdamW) on random tokens, timed.
//
//   bench_train_step [--preset gpt2-124m] [--batch 4] [--seq 64] [--threads 2] [--steps 10]
//                    [--device cpu] [--precision auto] [--recompute none] [--no-op-times]
//                    [--peak-tflops X] [--json FILE]
//
// The default shape is llm.c's CPU reference (gpt2-124m, B=4, T=64). Prints the median step time,
// tokens/s, the forward/backward/optimizer split and a per-op table; bench/train_step_torch.py
// times the same step in PyTorch. The per-op table synchronises after every op; on a GPU pass
// --no-op-times for the real throughput. MFU = achieved FLOP/s over --peak-tflops (default: the
// device's datasheet peak, when known), counting llm.c's 6 N + 6 L C T FLOPs per token (forward and
// backward, causal attention included). --precision auto is bf16 on a GPU, fp32 on the CPU.
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "bench/bench_common.h"
#include "bench/timed_backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "runtime/model_config.h"
#include "runtime/rng.h"
#include "train/adamw.h"

namespace inkstone::bench {
namespace {

struct Options {
  std::string preset = "gpt2-124m";
  int batch = 4, seq = 64, threads = 2, warmup = 2, steps = 10;
  std::string device = "cpu", json;
  std::string precision = "auto", recompute = "none";
  bool op_times = true;
  double peak_tflops = 0;
};

int run(const Options& o) {
  ModelConfig model_config;
  model_config.preset = o.preset;
  const GPT2Shape shape = resolve_shape(model_config, 50257);
  std::unique_ptr<Backend> device = make_backend(o.device);
  if (device->kind() == DeviceKind::CPU) cpu::set_num_threads(o.threads);
  TimedBackend timed(*device);
  Backend& backend = o.op_times ? static_cast<Backend&>(timed) : *device;

  const bool bf16 = o.precision == "bf16" || (o.precision == "auto" && device->kind() == DeviceKind::CUDA);
  const DType compute = bf16 ? DType::BF16 : DType::F32;
  const Recompute recompute = o.recompute == "gelu+layernorm" ? Recompute::GeluAndLayerNorm
                              : o.recompute == "gelu"         ? Recompute::Gelu
                                                              : Recompute::None;
  GPT2 model(backend, shape, o.batch, o.seq, {.compute = compute, .recompute = recompute});
  model.initialize(1337);
  AdamWOptimizer optimizer(model, AdamWConfig{});
  const ModelMemory mem = model.memory();
  fmt::print("bench_train_step: {} ({:.1f}M parameters), B={} T={}, {}, {}, recompute {}\n", o.preset,
             static_cast<double>(shape.num_parameters()) / 1e6, o.batch, o.seq, backend.describe(),
             bf16 ? "bf16" : "fp32", o.recompute);
  fmt::print(
      "memory: parameters {:.0f} MiB, gradients {:.0f} MiB, AdamW {:.0f} MiB, activations {:.0f} MiB\n",
      mem.parameters / 1048576.0, mem.gradients / 1048576.0, optimizer.memory_bytes() / 1048576.0,
      mem.activations / 1048576.0);

  const int N = o.batch * o.seq;
  Rng rng(42);
  std::vector<int32_t> window(N + 1), tokens(N), targets(N);
  std::vector<double> forward_s, backward_s, optimizer_s, step_s;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    if (step == o.warmup) timed.reset();
    for (auto& t : window) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(shape.vocab));
    std::copy(window.begin(), window.end() - 1, tokens.begin());
    std::copy(window.begin() + 1, window.end(), targets.begin());
    const double t0 = now_seconds();
    const float loss = model.forward(tokens, targets, o.batch, o.seq);
    const double t1 = now_seconds();
    model.zero_grad();
    model.backward();
    backend.synchronize();
    const double t2 = now_seconds();
    const float norm = optimizer.step(6e-4f);
    backend.synchronize();
    const double t3 = now_seconds();
    if (step < o.warmup) {
      fmt::print("warm-up {}: loss {:.4f}, grad norm {:.3f}, {:.1f} ms\n", step + 1, loss, norm,
                 1e3 * (t3 - t0));
      continue;
    }
    forward_s.push_back(t1 - t0);
    backward_s.push_back(t2 - t1);
    optimizer_s.push_back(t3 - t2);
    step_s.push_back(t3 - t0);
  }

  const double step_ms = 1e3 * median(step_s);
  const double tokens_per_s = N / median(step_s);
  fmt::print("\n{:<12} {:>10}\n", "phase", "median ms");
  fmt::print("{:<12} {:>10.1f}\n{:<12} {:>10.1f}\n{:<12} {:>10.1f}\n{:<12} {:>10.1f}\n", "forward",
             1e3 * median(forward_s), "backward", 1e3 * median(backward_s), "optimizer",
             1e3 * median(optimizer_s), "step", step_ms);
  const double flops_per_token = 6.0 * static_cast<double>(shape.num_parameters()) +
                                 6.0 * shape.n_layer * shape.n_embd * static_cast<double>(o.seq);
  const double peak = o.peak_tflops > 0 ? o.peak_tflops * 1e12 : device->peak_flops(compute);
  const double mfu = peak > 0 ? tokens_per_s * flops_per_token / peak : 0.0;
  fmt::print("tokens/s: {:.0f}\n", tokens_per_s);
  if (mfu > 0) fmt::print("MFU: {:.1f}% of {:.1f} TFLOP/s\n", 100 * mfu, peak / 1e12);
  fmt::print("\n{:<22} {:>12} {:>8}\n", "op", "ms/step", "calls");
  std::vector<std::pair<std::string, TimedBackend::OpTime>> ops(timed.times().begin(), timed.times().end());
  std::sort(ops.begin(), ops.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
  nlohmann::json per_op = nlohmann::json::object();
  for (const auto& [name, t] : ops) {
    const double ms = 1e3 * t.seconds / o.steps;
    fmt::print("{:<22} {:>12.2f} {:>8}\n", name, ms, t.calls / o.steps);
    per_op[name] = {{"ms_per_step", ms}, {"calls_per_step", t.calls / o.steps}};
  }

  if (!o.json.empty()) {
    const nlohmann::json out = {{"bench", "train_step"},
                                {"implementation", "inkstone"},
                                {"backend", backend.describe()},
                                {"preset", o.preset},
                                {"batch", o.batch},
                                {"seq", o.seq},
                                {"threads", o.threads},
                                {"steps", o.steps},
                                {"ms_per_step", step_ms},
                                {"tokens_per_s", tokens_per_s},
                                {"flops_per_token", flops_per_token},
                                {"peak_tflops", peak / 1e12},
                                {"precision", bf16 ? "bf16" : "fp32"},
                                {"recompute", o.recompute},
                                {"mfu", mfu},
                                {"op_times", o.op_times},
                                {"forward_ms", 1e3 * median(forward_s)},
                                {"backward_ms", 1e3 * median(backward_s)},
                                {"optimizer_ms", 1e3 * median(optimizer_s)},
                                {"per_op", per_op}};
    write_json(o.json, out);
  }
  return 0;
}

}  // namespace
}  // namespace inkstone::bench

int main(int argc, char** argv) {
  inkstone::bench::Options o;
  CLI::App app{"Time GPT-2 training steps (forward + backward + AdamW) on random tokens"};
  app.add_option("--preset", o.preset, "model preset")->capture_default_str();
  app.add_option("--batch", o.batch, "micro-batch size B")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seq", o.seq, "sequence length T")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "CPU threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "untimed steps first")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--steps", o.steps, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--precision", o.precision, "auto, fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  app.add_option("--recompute", o.recompute, "none, gelu or gelu+layernorm")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "gelu", "gelu+layernorm"}));
  app.add_flag("!--no-op-times", o.op_times, "skip the per-op table (it synchronises after every op)");
  app.add_option("--peak-tflops", o.peak_tflops, "the device's peak, for MFU")->check(CLI::NonNegativeNumber);
  app.add_option("--json", o.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return inkstone::bench::run_reporting_errors("bench_train_step", [&] { return inkstone::bench::run(o); });
}
