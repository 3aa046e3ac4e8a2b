#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <numbers>
#include <sstream>
#include <thread>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#if INKSTONE_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif
#include "runtime/data_loader.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_config.h"
#include "runtime/model_source.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"
#include "runtime/tokenizer.h"
#include "train/adamw.h"
#include "train/data_parallel.h"
#include "train/gradient_sync.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/progress.h"
#include "train/run_checkpoint.h"
#include "train/run_directory.h"
#include "train/stop_signal.h"

namespace inkstone {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct RunData {
  std::string tokenizer_json;
  std::string tokenizer_sha256;
  int vocab = 0;
  TokenSplit train, val;
};

RunData read_run_data(const RunConfig& config) {
  const fs::path dir(config.data.dir);
  const fs::path tokenizer_path = dir / kTokenizerFile;
  const std::string prepare =
      fmt::format("run `inkstone prepare {}` first", config.source.empty() ? "CONFIG" : config.source);
  if (!fs::exists(tokenizer_path)) {
    fail("data.dir {} holds no prepared data ({} is missing); {}", dir.string(), kTokenizerFile, prepare);
  }
  RunData data;
  data.tokenizer_json = read_whole_file(tokenizer_path, "the prepared tokenizer", prepare);
  data.vocab = tokenizer_from_json(data.tokenizer_json, tokenizer_path.string())->vocab_size();
  data.tokenizer_sha256 = tokenizer_hash(data.tokenizer_json);
  const ExpectedTokenizer expected{sha256_from_hex(data.tokenizer_sha256, tokenizer_path.string()),
                                   static_cast<uint32_t>(data.vocab)};
  data.train = read_token_split(dir, "train", expected);
  if (data.train.tokens.empty()) {
    fail("data.dir {} has no training shards (train_*.bin); {}", dir.string(), prepare);
  }
  data.val = read_token_split(dir, "val", expected);
  return data;
}

uint64_t dropout_seed_of(uint64_t seed, int64_t step, int micro_batch) {
  return mix64(seed ^
               (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(micro_batch)));
}

int64_t total_steps_of(const TrainConfig& t, int64_t tokens_per_step) {
  int64_t total = t.max_steps;
  if (t.max_tokens > 0) total = std::min(total, (t.max_tokens + tokens_per_step - 1) / tokens_per_step);
  return total;
}

class Trainer {
 public:
  Trainer(const RunConfig& config, const TrainHooks& hooks) : config_(config), hooks_(hooks) {}
  TrainResult run();

 private:
  TrainResult run_steps();
  void setup();
  void start_from_init_from();
  // ZeRO-1: this rank's moment shards to (or from) full-layout buffers, which checkpoints hold.
  void copy_moment_shards(const AdamWMoments& full, bool into_full);
  bool lead() const { return comm_->rank() == 0; }  // rank 0 logs and writes
  void say(const std::string& line) {
    if (progress_) progress_->message(line);
  }
  void build_model_and_data();  // the model, optimizer and loaders, restored from the resume checkpoint
  DType resolve_precision() const;
  std::optional<double> mfu(double tokens_per_s) const;
  void check_fits_on_gpu() const;
  void train_step();
  std::optional<double> validation_loss();
  void evaluate();
  void checkpoint();
  void report_bad_step(double loss, double norm);
  // Rank r's micro-batch i draws the masks of global micro-batch r * accum_ + i.
  uint64_t dropout_seed(int64_t step, int micro_batch) const {
    return dropout_seed_of(t_.seed, step, comm_->rank() * accum_ + micro_batch);
  }
  int64_t tokens_per_step() const {  // over every rank
    return int64_t{t_.micro_batch} * t_.seq_len * accum_ * comm_->world_size();
  }

  RunConfig config_;  // a copy: init_from replaces its model section by the source's shape
  const TrainConfig& t_ = config_.train;
  TrainHooks hooks_;
  RunData data_;
  RunDirectory run_directory_;        // holds the output folder's lock for the whole run
  std::string device_line_;           // the backend chosen, and why (device: auto)
  DType compute_dtype_ = DType::F32;  // config precision resolved against the backend
  GPT2Shape shape_;
  LaunchInfo launch_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Communicator> comm_;
  int accum_ = 1;                       // micro-batches per rank per step
  std::vector<int64_t> shard_offsets_;  // ZeRO-1: rank r updates parameter elements [r], [r + 1)
  std::unique_ptr<GPT2> model_;
  std::unique_ptr<AdamWOptimizer> optimizer_;
  std::unique_ptr<GradientSync> gradient_sync_;
  std::unique_ptr<BatchLoader> train_loader_, val_loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<Progress> progress_;
  TrainState state_;
  TrainResult result_;
  int64_t total_steps_ = 0;
  int64_t last_checkpoint_step_ = -1, last_eval_step_ = -1;
  double elapsed_before_ = 0;  // training seconds of earlier processes of this run
  Clock::time_point start_;
  double step_seconds_ema_ = 0;
  std::vector<int32_t> inputs_, targets_;  // [accum_][B*T], filled before the step's first forward
  std::vector<int64_t> counted_;           // [accum_]: counted targets per micro-batch
};

Recompute recompute_of(const TrainConfig& t) {
  if (t.recompute == "gelu+layernorm") return Recompute::GeluAndLayerNorm;
  return t.recompute == "gelu" ? Recompute::Gelu : Recompute::None;
}

#if INKSTONE_HAVE_CUDA
// The device memory this run will take, from the model's own layout (so precision and recompute
// count), against what the GPU has free: a refusal before the first allocation, naming the sizes
// and what to change, instead of an out-of-memory error halfway through the setup.
void Trainer::check_fits_on_gpu() const {
  const double GiB = double(1 << 30);
  const int64_t rows = int64_t{t_.micro_batch} * t_.seq_len;
  const int64_t elements = gpt2_parameter_layout(shape_).total_elements;
  const auto element = static_cast<int64_t>(dtype_size(compute_dtype_));
  const bool mixed = compute_dtype_ != DType::F32;
  // Parameters and gradients in the compute dtype, an fp32 master copy when mixed, AdamW's m and v.
  const int64_t state = elements * (2 * element + (mixed ? 4 : 0) + 8);
  const int64_t activations =
      gpt2_activation_offsets(shape_, rows, compute_dtype_, recompute_of(t_)).total_bytes + 3 * 4 * rows;
  const int64_t workspace = int64_t{96} << 20;  // cuBLASLt's workspace and the kernels' scratch, about
  size_t free_bytes = 0, total_bytes = 0;
  cuda::memory_info(&free_bytes, &total_bytes);
  const int64_t needed = state + activations + workspace;
  if (needed <= static_cast<int64_t>(free_bytes)) return;
  fail(
      "{}: training needs about {:.1f} GiB on the GPU ({:.1f} GiB of parameters, gradients and AdamW state; "
      "{:.1f} GiB of activations at micro_batch {} x seq_len {} in {}, recompute {}), but {:.1f} GiB of "
      "{:.1f} "
      "are free; lower train.micro_batch (raise train.grad_accum to keep the batch size){}, or use a smaller "
      "model",
      config_.source, double(needed) / GiB, double(state) / GiB, double(activations) / GiB, t_.micro_batch,
      t_.seq_len, mixed ? "bf16" : "fp32", t_.recompute, double(free_bytes) / GiB, double(total_bytes) / GiB,
      t_.recompute == "gelu+layernorm" ? "" : ", set train.recompute: gelu+layernorm");
}
#endif

// Model FLOPs utilisation: llm.c's 6 N + 6 L C T FLOPs per token (forward and backward, causal
// attention included) over the device's datasheet peak; unknown on the CPU and in fp32 mode.
std::optional<double> Trainer::mfu(double tokens_per_s) const {
  const double peak = backend_->peak_flops(compute_dtype_);
  if (peak <= 0) return std::nullopt;
  const double flops_per_token = 6.0 * static_cast<double>(shape_.num_parameters()) +
                                 6.0 * shape_.n_layer * shape_.n_embd * static_cast<double>(t_.seq_len);
  return tokens_per_s * flops_per_token / peak;
}

DType Trainer::resolve_precision() const {
  const bool gpu = backend_->kind() == DeviceKind::CUDA;
  const std::string& p = config_.precision;
  if (p == "fp32" || (p == "auto" && !gpu)) return DType::F32;
  if (!gpu)
    fail("{}: precision: bf16 needs a GPU (the CPU backend computes in fp32); use precision: fp32 or auto",
         config_.source);
  return DType::BF16;
}

void Trainer::build_model_and_data() {
  const std::optional<fs::path>& resume_from = run_directory_.resume_from;

  model_ = std::make_unique<GPT2>(*backend_, shape_, t_.micro_batch, t_.seq_len,
                                  GPT2Options{.compute = compute_dtype_, .recompute = recompute_of(t_)});
  const AdamWConfig adamw{.beta1 = static_cast<float>(t_.beta1),
                          .beta2 = static_cast<float>(t_.beta2),
                          .eps = static_cast<float>(t_.eps),
                          .weight_decay = static_cast<float>(t_.weight_decay),
                          .grad_clip = static_cast<float>(t_.grad_clip)};
  const int rank = comm_->rank(), world = comm_->world_size();
  if (config_.distributed.zero_stage == 1) {
    // Shard boundaries on 64-element multiples keep every rank's slices aligned for vector loads.
    shard_offsets_ = even_parts(model_->parameter_buffer().numel(), world, 64);
    optimizer_ =
        std::make_unique<AdamWOptimizer>(*model_, adamw, shard_offsets_[rank], shard_offsets_[rank + 1]);
  } else {
    optimizer_ = std::make_unique<AdamWOptimizer>(*model_, adamw);
  }
  gradient_sync_ = std::make_unique<GradientSync>(*model_, *comm_, config_.distributed.bucket_mb);
  // Each rank reads every world-th window of the epoch's order: its own part of the data.
  train_loader_ =
      std::make_unique<BatchLoader>(data_.train.tokens, t_.seq_len, BatchLoader::Order::Shuffled, t_.seed,
                                    "the training split of " + config_.data.dir, rank, world);
  if (data_.val.tokens.size() > static_cast<size_t>(t_.seq_len) * world) {
    val_loader_ =
        std::make_unique<BatchLoader>(data_.val.tokens, t_.seq_len, BatchLoader::Order::Sequential, 0,
                                      "the validation split of " + config_.data.dir, rank, world);
  }
  if (resume_from) {
    if (shard_offsets_.empty()) {
      state_ = load_run_checkpoint(*resume_from, *model_, *optimizer_);
    } else {
      // The checkpoint holds the whole moments: read them in full, keep this rank's shard.
      DeviceTensor m(*backend_, DType::F32, {model_->parameter_buffer().numel()});
      DeviceTensor v(*backend_, DType::F32, {model_->parameter_buffer().numel()});
      state_ = load_run_checkpoint(*resume_from, *model_, AdamWMoments{m, v});
      copy_moment_shards(AdamWMoments{m, v}, /*into_full=*/false);
      optimizer_->set_steps(state_.optimizer_steps);
    }
    train_loader_->restore(state_.data_cursor);
    elapsed_before_ = state_.elapsed_s;
    last_checkpoint_step_ = state_.step;
  } else if (!config_.init_from.empty()) {
    load_model_weights(config_.init_from, *model_);
    state_.data_seed = t_.seed;
  } else {
    model_->initialize(t_.seed);
    state_.data_seed = t_.seed;
  }
  state_.world_size = world;
  check_same_weights(*comm_, *model_);
}

void Trainer::copy_moment_shards(const AdamWMoments& full, bool into_full) {
  const int64_t first = optimizer_->shard_begin(), n = optimizer_->shard_end() - first;
  if (n == 0) return;  // a rank may own nothing
  for (const auto& [whole, shard] :
       {std::pair{full.m, optimizer_->m()}, std::pair{full.v, optimizer_->v()}}) {
    const Tensor part(whole.as<float>() + first, DType::F32, {n}), mine(shard.data, DType::F32, {n});
    if (into_full) {
      backend_->copy(part, mine);
    } else {
      backend_->copy(mine, part);
    }
  }
}

// init_from: the model's shape is the source's; its tokenizer must be the data's, or the token ids
// would mean other things to the weights than to the data.
void Trainer::start_from_init_from() {
  const ModelSource source = read_model_source(config_.init_from);
  check_compatible(source, data_.vocab, data_.tokenizer_sha256, config_.data.dir);
  ModelConfig& m = config_.model;
  // A model key set in the config (non-zero) that disagrees with the source would be silently ignored.
  const std::pair<const char*, std::pair<int, int>> keys[] = {
      {"model.n_layer", {m.n_layer, source.shape.n_layer}},
      {"model.n_head", {m.n_head, source.shape.n_head}},
      {"model.n_embd", {m.n_embd, source.shape.n_embd}},
      {"model.context", {m.context, source.shape.context}},
      {"model.vocab", {m.vocab, source.shape.vocab}}};
  for (const auto& [key, values] : keys) {
    if (values.first != 0 && values.first != values.second) {
      fail(
          "{}: {} is {}, but init_from {} has {}; the model's shape is the checkpoint's: remove {} (or set "
          "it to "
          "{})",
          config_.source, key, values.first, config_.init_from, values.second, key, values.second);
    }
  }
  m.n_layer = source.shape.n_layer;
  m.n_head = source.shape.n_head;
  m.n_embd = source.shape.n_embd;
  m.context = source.shape.context;
  m.vocab = source.shape.vocab;
}

void Trainer::setup() {
  launch_ = detect_launch();
  data_ = read_run_data(config_);
  // The shape of an init_from run is its source's, on a fresh start and on resume alike.
  if (!config_.init_from.empty()) start_from_init_from();
  shape_ = resolve_shape(config_.model, data_.vocab);
  if (t_.seq_len > shape_.context) {
    fail("{}: train.seq_len {} exceeds the model's context {}; lower train.seq_len or raise model.context",
         config_.source, t_.seq_len, shape_.context);
  }
  // Ranks sharing a node share its cores: unless OMP_NUM_THREADS says otherwise, each takes its part
  // (OpenMP's default, every core per rank, oversubscribes them and the spinning teams stall each other).
  if (launch_.local_world_size > 1 && std::getenv("OMP_NUM_THREADS") == nullptr) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    cpu::set_num_threads(std::max(1, cores / launch_.local_world_size));
  }
  // with `auto`, it says what it chose and why; a rank takes the GPU of its local rank
  backend_ = make_backend(config_.device, &device_line_, launch_.local_rank);
  comm_ = make_communicator(
      launch_, *backend_,
      CommOptions{.timeout_s = config_.distributed.timeout_s, .rendezvous = config_.distributed.rendezvous});
  const int world = comm_->world_size();
  state_.config_yaml = to_yaml(config_);
  check_same_config(*comm_, state_.config_yaml);
  accum_ = grad_accum_per_rank(config_, world);
  compute_dtype_ = resolve_precision();
  if (backend_->kind() == DeviceKind::CPU) {
    const int64_t ram = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
    // Ranks on one node share its memory (unknown under srun: then each is given all of it).
    check_fits_in_memory(config_.model.preset, shape_, t_, ram / std::max(1, launch_.local_world_size),
                         /*on_gpu=*/false);
  }
#if INKSTONE_HAVE_CUDA
  if (backend_->kind() == DeviceKind::CUDA) check_fits_on_gpu();
#endif
  // Rank 0 owns the run directory (lock, checks, files); the others learn where to start from it.
  if (lead()) run_directory_ = open_run_directory(config_, shape_, data_.tokenizer_sha256, world);
  run_directory_.resume_from = broadcast_path(*comm_, run_directory_.resume_from);
  try {
    build_model_and_data();
  } catch (...) {
    // A refused start (a damaged checkpoint, say) leaves no trace: a folder this run created and
    // left empty goes again.
    std::error_code ec;
    if (run_directory_.created && fs::is_empty(config_.output_dir, ec)) {
      run_directory_.lock.reset();
      fs::remove(config_.output_dir, ec);
    }
    throw;
  }
  const std::optional<fs::path>& resume_from = run_directory_.resume_from;
  total_steps_ = total_steps_of(t_, tokens_per_step());
  if (lead()) {
    const fs::path out(config_.output_dir);
    write_file_durably(out / kRunConfigFile, state_.config_yaml);
    metrics_ = std::make_unique<MetricsLog>(out / kMetricsFile);
    progress_ = std::make_unique<Progress>(stderr, isatty(fileno(stderr)) != 0,
                                           static_cast<int>(std::max<int64_t>(1, total_steps_ / 50)));
  }
  say(fmt::format("model: {} ({}), {:.2f}M parameters{}; device: {}; precision: {}", config_.model.preset,
                  describe_shape(shape_), static_cast<double>(shape_.num_parameters()) / 1e6,
                  config_.init_from.empty() ? "" : ", from " + config_.init_from, device_line_,
                  compute_dtype_ == DType::BF16 ? "bf16 (fp32 master weights)" : "fp32"));
  if (!comm_->single()) {
    say(fmt::format("data parallel: {} rank{} ({}); gradients all-reduced in {} buckets; optimizer state {}",
                    world, world == 1 ? "" : "s", comm_->name(), gradient_sync_->buckets().size(),
                    shard_offsets_.empty() ? "on every rank" : "sharded across the ranks (ZeRO-1)"));
  }
  say(fmt::format(
      "data: {} training tokens, {} validation tokens; global batch {} x {} x {} rank{} = {} sequences, {} "
      "tokens per step (micro_batch x grad_accum x ranks, distributed.hold_fixed: {}); {} step{} ({:.1f} "
      "epochs)",
      data_.train.tokens.size(), data_.val.tokens.size(), t_.micro_batch, accum_, world,
      world == 1 ? "" : "s", int64_t{t_.micro_batch} * accum_ * world, tokens_per_step(),
      config_.distributed.hold_fixed, total_steps_, total_steps_ == 1 ? "" : "s",
      static_cast<double>(total_steps_ * tokens_per_step()) /
          static_cast<double>(data_.train.tokens.size())));
  if (resume_from) say(fmt::format("resumed from {} at step {}", resume_from->string(), state_.step));
  if (!val_loader_) say("no validation: the validation split is shorter than seq_len + 1 tokens per rank");
  const size_t n = static_cast<size_t>(t_.micro_batch) * t_.seq_len;
  inputs_.resize(n * accum_);
  targets_.resize(n * accum_);
  counted_.resize(accum_);
}

void Trainer::report_bad_step(double loss, double norm) {
  ++state_.skipped_steps;
  ++state_.bad_steps_in_a_row;
  say(fmt::format("step {}: {} is {}; step skipped ({} in a row, {} in this run)", state_.step + 1,
                  std::isfinite(loss) ? "the gradient norm" : "the loss", std::isfinite(loss) ? norm : loss,
                  state_.bad_steps_in_a_row, state_.skipped_steps));
  if (state_.bad_steps_in_a_row >= t_.max_bad_steps) {
    fail(
        "training stopped at step {}: {} steps in a row had a NaN or Inf loss or gradient "
        "(train.max_bad_steps); "
        "lower train.lr or train.grad_clip and resume from the last checkpoint with train.resume=auto",
        state_.step + 1, state_.bad_steps_in_a_row);
  }
}

void Trainer::train_step() {
  const Clock::time_point step_start = Clock::now();
  const int B = t_.micro_batch, T = t_.seq_len;
  const size_t n = static_cast<size_t>(B) * T;
  const int world = comm_->world_size();
  const double lr = learning_rate(t_, state_.step, total_steps_);
  for (int i = 0; i < accum_; ++i) {
    train_loader_->next(B, std::span(inputs_).subspan(i * n, n), std::span(targets_).subspan(i * n, n));
  }
  // The loss of the step is the mean over every counted target of every rank's micro-batches, so
  // micro-batch i's backward is scaled by its share of the global targets; the ranks' gradients then
  // simply add up to the gradient of that mean.
  std::array<double, 1> total_counted{0};
  for (int i = 0; i < accum_; ++i) {
    counted_[i] = std::count_if(targets_.begin() + i * n, targets_.begin() + (i + 1) * n,
                                [](int32_t x) { return x >= 0; });
    total_counted[0] += static_cast<double>(counted_[i]);
  }
  comm_->all_reduce(total_counted, ReduceOp::Sum);
  model_->zero_grad();
  std::array<double, 1> loss{0};
  const auto layer_done = [this](int layer) { gradient_sync_->on_layer_done(layer); };
  for (int i = 0; i < accum_; ++i) {
    const double share = total_counted[0] > 0 ? static_cast<double>(counted_[i]) / total_counted[0] : 0.0;
    // A fresh mask per micro-batch, a pure function of (seed, step, micro-batch) so resume replays it.
    model_->set_dropout(static_cast<float>(t_.dropout), dropout_seed(state_.step, i));
    const float micro_loss =
        model_->forward(std::span(inputs_).subspan(i * n, n), std::span(targets_).subspan(i * n, n), B, T);
    loss[0] += share * micro_loss;
    // The step is lost: spare the remaining passes (alone: with other ranks, every rank must still
    // take part in the same reductions, and the summed loss tells them all).
    if (!std::isfinite(micro_loss) && comm_->single()) break;
    const bool last = i + 1 == accum_;
    model_->backward(static_cast<float>(share),
                     last && !comm_->single() ? layer_done : std::function<void(int)>{});
  }
  gradient_sync_->finish();
  if (planted_failure(comm_->rank(), state_.step)) loss[0] = std::numeric_limits<double>::quiet_NaN();
  comm_->all_reduce(loss, ReduceOp::Sum);  // NaN on one rank is NaN on all: they skip together
  if (hooks_.after_backward) hooks_.after_backward(state_.step, *model_);
  // AdamW leaves everything untouched when the norm is not finite; a non-finite loss never reaches it.
  // Every rank holds the same summed gradients and applies rank 0's norm: the same update everywhere.
  double norm = std::numeric_limits<double>::quiet_NaN();
  if (std::isfinite(loss[0])) {
    norm = agreed_norm(*comm_, optimizer_->gradient_norm());
    optimizer_->apply(static_cast<float>(lr), norm);
  }
  const bool bad = !std::isfinite(loss[0]) || !std::isfinite(norm);
  if (!bad && !shard_offsets_.empty()) {
    // ZeRO-1: each rank updated its shard; everyone takes everyone's. (The fp32 master of mixed
    // precision is gathered only for checkpoints: nothing else reads other ranks' parts of it.)
    comm_->all_gather(model_->parameter_buffer(), shard_offsets_);
  }
  if (bad) {
    report_bad_step(loss[0], norm);
  } else {
    state_.bad_steps_in_a_row = 0;
  }
  ++state_.step;
  state_.optimizer_steps = optimizer_->steps();
  state_.tokens += tokens_per_step();
  state_.data_cursor = train_loader_->cursor();
  result_.last_loss = loss[0];
  if (!lead()) return;

  const double step_s = seconds_since(step_start);
  step_seconds_ema_ = step_seconds_ema_ == 0 ? step_s : 0.9 * step_seconds_ema_ + 0.1 * step_s;
  const double tokens_per_s = static_cast<double>(tokens_per_step()) / step_s;
  const double elapsed = elapsed_before_ + seconds_since(start_);
  const ModelMemory mem = model_->memory();
  metrics_->write(
      TrainRecord{.step = state_.step,
                  .loss = loss[0],
                  .lr = lr,
                  .grad_norm = norm,
                  .tokens = state_.tokens,
                  .tokens_per_s = tokens_per_s,
                  .elapsed_s = elapsed,
                  .skipped = bad,
                  .mfu = mfu(tokens_per_s / world),  // per device
                  .memory_bytes = static_cast<int64_t>(mem.total() + optimizer_->memory_bytes())});
  progress_->step(StepReport{.step = state_.step,
                             .total_steps = total_steps_,
                             .loss = loss[0],
                             .lr = lr,
                             .grad_norm = norm,
                             // The bar shows the smoothed rate: single steps jitter on a shared machine.
                             .tokens_per_s = static_cast<double>(tokens_per_step()) / step_seconds_ema_,
                             .elapsed_s = elapsed,
                             .eta_s = step_seconds_ema_ * static_cast<double>(total_steps_ - state_.step)});
}

// The mean loss over eval_steps batches from the start of the validation split; with N ranks each
// evaluates eval_steps / N batches of its own windows (rank r takes every N-th one), so together they
// cover the same windows as one process when N divides eval_steps.
std::optional<double> Trainer::validation_loss() {
  if (!val_loader_) return std::nullopt;
  const int T = t_.seq_len;
  const int B = static_cast<int>(std::min<uint64_t>(t_.micro_batch, val_loader_->windows_per_epoch()));
  const int64_t batches = std::min<int64_t>(std::max(1, t_.eval_steps / comm_->world_size()),
                                            static_cast<int64_t>(val_loader_->windows_per_epoch() / B));
  val_loader_->rewind();
  model_->set_dropout(0.0f, 0);
  const size_t n = static_cast<size_t>(B) * T;
  std::array<double, 2> nll_counted{0, 0};
  for (int64_t i = 0; i < batches; ++i) {
    val_loader_->next(B, std::span(inputs_).first(n), std::span(targets_).first(n));
    const float loss = model_->forward(std::span(inputs_).first(n), std::span(targets_).first(n), B, T);
    nll_counted[0] += static_cast<double>(loss) * static_cast<double>(model_->counted_targets());
    nll_counted[1] += static_cast<double>(model_->counted_targets());
  }
  comm_->all_reduce(nll_counted, ReduceOp::Sum);
  return nll_counted[1] > 0 ? nll_counted[0] / nll_counted[1] : std::optional<double>{};
}

void Trainer::evaluate() {
  last_eval_step_ = state_.step;
  const std::optional<double> val = validation_loss();
  if (!val || !lead()) return;
  result_.last_val_loss = *val;
  // Bits per byte of the split's text: the split's tokens-per-byte ratio converts nats per token.
  std::optional<double> bpb;
  if (data_.val.text_bytes > 0) {
    bpb = *val / std::numbers::ln2 * static_cast<double>(data_.val.tokens.size()) /
          static_cast<double>(data_.val.text_bytes);
  }
  metrics_->write(ValRecord{.step = state_.step,
                            .val_loss = *val,
                            .val_bpb = bpb,
                            .elapsed_s = elapsed_before_ + seconds_since(start_)});
  const std::string line =
      fmt::format("step {}: val loss {:.4f}, perplexity {:.2f}", state_.step, *val, std::exp(*val));
  say(bpb ? fmt::format("{}, {:.3f} bits/byte", line, *bpb) : line);
}

// Collective: every rank calls it at the same step (ZeRO-1 gathers the moments); rank 0 writes.
void Trainer::checkpoint() {
  if (last_checkpoint_step_ == state_.step) return;
  state_.elapsed_s = elapsed_before_ + seconds_since(start_);
  last_checkpoint_step_ = state_.step;
  if (shard_offsets_.empty()) {
    if (lead()) {
      result_.last_checkpoint = write_run_checkpoint(config_.output_dir, *model_, *optimizer_, state_,
                                                     config_, data_.tokenizer_json, t_.keep_last);
    }
  } else {
    if (model_->mixed_precision()) comm_->all_gather(model_->master_buffer(), shard_offsets_);
    // Full-size moments for the file, only while it is written.
    const int64_t total = model_->parameter_buffer().numel();
    DeviceTensor m(*backend_, DType::F32, {total}), v(*backend_, DType::F32, {total});
    backend_->fill_zero(m);
    backend_->fill_zero(v);
    copy_moment_shards(AdamWMoments{m, v}, /*into_full=*/true);
    comm_->all_gather(m, shard_offsets_);
    comm_->all_gather(v, shard_offsets_);
    if (lead()) {
      result_.last_checkpoint = write_run_checkpoint(config_.output_dir, *model_, AdamWMoments{m, v}, state_,
                                                     config_, data_.tokenizer_json, t_.keep_last);
    }
  }
  // The other ranks wait here while rank 0 writes: minutes for a large model on a slow filesystem,
  // which the per-collective timeout must not mistake for a dead rank.
  comm_->set_timeout(config_.distributed.checkpoint_timeout_s, "distributed.checkpoint_timeout_s");
  std::array<double, 1> written{1};
  comm_->all_reduce(written, ReduceOp::Min);
  comm_->set_timeout(config_.distributed.timeout_s, "distributed.timeout_s");
  say(fmt::format("step {}: checkpoint {}", state_.step, result_.last_checkpoint.string()));
}

TrainResult Trainer::run_steps() {
  setup();
  start_ = Clock::now();
  const int64_t first_step = state_.step;
  if (state_.step == 0) evaluate();  // the untrained model's loss starts the validation curve
  while (state_.step < total_steps_) {
    if ((result_.stopped_by = any_stop_signal(*comm_, stop_signal())) != 0) break;
    train_step();
    const bool last = state_.step == total_steps_;
    if (state_.step % t_.eval_interval == 0 || last) evaluate();
    if (state_.step % t_.checkpoint_interval == 0 || last) checkpoint();
  }
  if (result_.stopped_by != 0 && last_checkpoint_step_ != state_.step) checkpoint();
  if (result_.last_checkpoint.empty() && last_checkpoint_step_ >= 0) {
    result_.last_checkpoint = fs::path(config_.output_dir) / checkpoint_name(last_checkpoint_step_);
  }
  if (progress_) progress_->finish();
  check_same_weights(*comm_, *model_);  // a rank that drifted from the others would be a bug: say so
  result_.step = state_.step;
  result_.rank = comm_->rank();
  result_.world_size = comm_->world_size();
  result_.steps_run = state_.step - first_step;
  return result_;
}

// In a job of several ranks an error on one must end them all, now: the others would otherwise wait
// in their next collective until the timeout.
TrainResult Trainer::run() {
  try {
    return run_steps();
  } catch (const Error& e) {
    if (comm_ && !comm_->single()) comm_->abort(e.what(), 1);
    throw;
  } catch (const std::exception& e) {  // a bug or out of memory: the same, with main's internal-error code
    if (comm_ && !comm_->single()) comm_->abort(fmt::format("internal error: {}", e.what()), 70);
    throw;
  } catch (...) {
    if (comm_ && !comm_->single()) comm_->abort("internal error: an unknown exception", 70);
    throw;
  }
}

}  // namespace

TrainResult train_model(const RunConfig& config, const TrainHooks& hooks) {
  Trainer trainer(config, hooks);
  return trainer.run();
}

}  // namespace inkstone
