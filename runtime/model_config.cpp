#include "runtime/model_config.h"

#include <fmt/format.h>

#include <limits>

#include "runtime/error.h"

namespace inkstone {
namespace {

constexpr int kGPT2Vocab = 50257;

std::string preset_names() {
  std::string names;
  for (const ModelPreset& p : model_presets()) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names;
}

double gib(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
}

void require_positive(const char* key, int value) {
  if (value < 1) fail("{} must be >= 1, got {}", key, value);
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  // The GPT-2 family as OpenAI released it, plus a tiny shape for laptops and tests whose vocab
  // comes from whatever tokenizer the data was prepared with.
  static const std::vector<ModelPreset> presets = {
      {"gpt2-tiny", 4, 4, 128, 256, 0, false},
      {"gpt2-124m", 12, 12, 768, 1024, kGPT2Vocab, false},
      {"gpt2-350m", 24, 16, 1024, 1024, kGPT2Vocab, false},
      {"gpt2-774m", 36, 20, 1280, 1024, kGPT2Vocab, true},
      {"gpt2-1558m", 48, 25, 1600, 1024, kGPT2Vocab, true},
  };
  return presets;
}

const ModelPreset* find_preset(const std::string& name) {
  for (const ModelPreset& p : model_presets()) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

int64_t GPT2Shape::num_parameters() const {
  const int64_t C = n_embd, L = n_layer;
  const int64_t per_layer = 4 * C                                            // ln_1, ln_2: weight and bias
                            + C * 3 * C + 3 * C                              // attn.c_attn
                            + C * C + C                                      // attn.c_proj
                            + C * 4 * C + 4 * C                              // mlp.c_fc
                            + 4 * C * C + C;                                 // mlp.c_proj
  return int64_t{vocab} * C + int64_t{context} * C + L * per_layer + 2 * C;  // wte, wpe, blocks, ln_f
}

GPT2Shape resolve_architecture(const ModelConfig& config) {
  const ModelPreset* preset = find_preset(config.preset);
  if (!preset) fail("model.preset: unknown preset \"{}\"; known presets: {}", config.preset, preset_names());
  auto pick = [](int explicit_value, int preset_value) {
    return explicit_value != 0 ? explicit_value : preset_value;
  };
  GPT2Shape shape;
  shape.n_layer = pick(config.n_layer, preset->n_layer);
  shape.n_head = pick(config.n_head, preset->n_head);
  shape.n_embd = pick(config.n_embd, preset->n_embd);
  shape.context = pick(config.context, preset->context);
  shape.vocab = pick(config.vocab, preset->vocab);
  require_positive("model.n_layer", shape.n_layer);
  require_positive("model.n_head", shape.n_head);
  require_positive("model.n_embd", shape.n_embd);
  require_positive("model.context", shape.context);
  if (shape.vocab < 0) fail("model.vocab must be >= 1, got {}", shape.vocab);
  if (shape.n_embd % shape.n_head != 0) {
    fail(
        "model.n_embd {} is not divisible by model.n_head {} (each head takes n_embd / n_head channels); "
        "change one of them",
        shape.n_embd, shape.n_head);
  }
  return shape;
}

GPT2Shape resolve_shape(const ModelConfig& config, int tokenizer_vocab) {
  GPT2Shape shape = resolve_architecture(config);
  if (config.vocab != 0 && tokenizer_vocab > 0 && config.vocab != tokenizer_vocab) {
    fail(
        "model.vocab is {} but the tokenizer has {} tokens; remove model.vocab or use the matching tokenizer",
        config.vocab, tokenizer_vocab);
  }
  if (config.vocab == 0 && tokenizer_vocab > 0) shape.vocab = tokenizer_vocab;
  if (shape.vocab < 1) {
    fail(
        "model.vocab is unknown: preset {} takes it from the tokenizer and none was given; "
        "prepare the data first or set model.vocab",
        config.preset);
  }
  return shape;
}

int64_t training_memory_bytes(const GPT2Shape& shape, int micro_batch, int seq_len) {
  // In double: with every field at its config bound (n_embd 65536, n_layer 1024, context 2^20, a large
  // micro_batch) the activations alone pass 2^63 bytes, and int64 overflow is undefined behaviour.
  // Doubles hold every size a real machine has exactly (below 2^53) and saturate cleanly above.
  const double C = shape.n_embd, L = shape.n_layer, NH = shape.n_head, V = shape.vocab;
  const double Vp = shape.padded_vocab();
  const double allocated_params = static_cast<double>(shape.num_parameters()) + (Vp - V) * C;
  const double state_floats = 4 * allocated_params;  // weights, gradients, AdamW m and v
  const double block_floats = 17 * C + NH + 4;
  const double gradient_floats = 15 * C;
  const double floats_per_token = L * block_floats + gradient_floats + 2 * C + 3 + Vp;
  const double tokens = static_cast<double>(micro_batch) * seq_len;
  const double bytes = 4 * (state_floats + tokens * floats_per_token);
  constexpr double kLimit = 0x1p63;  // the first double past int64's range
  return bytes >= kLimit ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bytes);
}

void check_fits_in_memory(const std::string& preset_or_desc, const GPT2Shape& shape, const TrainConfig& train,
                          int64_t available_bytes, bool on_gpu) {
  const ModelPreset* preset = find_preset(preset_or_desc);
  if (!on_gpu && preset && preset->gpu_only) {
    fail(
        "{} ({:.0f}M parameters) is meant for GPUs: on the CPU one training step takes minutes and a run "
        "takes "
        "weeks; train it with device: cuda on a GPU machine, or on this machine use gpt2-124m or gpt2-350m",
        preset_or_desc, static_cast<double>(shape.num_parameters()) / 1e6);
  }
  if (available_bytes <= 0) return;
  const int64_t needed = training_memory_bytes(shape, train.micro_batch, train.seq_len);
  if (needed <= available_bytes) return;
  const char* advice =
      on_gpu ? "lower train.micro_batch (raise train.grad_accum to keep the batch size) or train on more GPUs"
             : "train it on a GPU (device: cuda), or on this machine lower train.micro_batch (raise "
               "train.grad_accum to keep the batch size) or train.seq_len, or use a smaller model";
  fail(
      "{} needs about {:.1f} GiB to train at micro_batch {} x seq_len {} in fp32 on the {}, more than the "
      "{:.1f} GiB available; {}",
      preset_or_desc, gib(needed), train.micro_batch, train.seq_len, on_gpu ? "GPU" : "CPU",
      gib(available_bytes), advice);
}

}  // namespace inkstone
