#include "runtime/model_config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(contains(text, part)) << "message: " << (text) << "\nwanted: " << (part)

ModelConfig preset(const std::string& name) {
  ModelConfig config;
  config.preset = name;
  return config;
}

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(ModelPresets, AreGpt2Shapes) {
  struct Expected {
    const char* name;
    int n_layer, n_head, n_embd, context, vocab;
    bool gpu_only;
  };
  const Expected expected[] = {
      {"gpt2-tiny", 4, 4, 128, 256, 0, false},         {"gpt2-124m", 12, 12, 768, 1024, 50257, false},
      {"gpt2-350m", 24, 16, 1024, 1024, 50257, false}, {"gpt2-774m", 36, 20, 1280, 1024, 50257, true},
      {"gpt2-1558m", 48, 25, 1600, 1024, 50257, true},
  };
  ASSERT_EQ(model_presets().size(), std::size(expected));
  for (const Expected& e : expected) {
    const ModelPreset* p = find_preset(e.name);
    ASSERT_NE(p, nullptr) << e.name;
    EXPECT_EQ(p->n_layer, e.n_layer) << e.name;
    EXPECT_EQ(p->n_head, e.n_head) << e.name;
    EXPECT_EQ(p->n_embd, e.n_embd) << e.name;
    EXPECT_EQ(p->context, e.context) << e.name;
    EXPECT_EQ(p->vocab, e.vocab) << e.name;
    EXPECT_EQ(p->gpu_only, e.gpu_only) << e.name;
  }
  EXPECT_EQ(find_preset("gpt2-125m"), nullptr);
  EXPECT_EQ(find_preset(""), nullptr);
}

TEST(ModelShape, ParameterCountsMatchGpt2) {
  // Hugging Face's published counts for GPT-2 small, medium, large and XL (tied embeddings).
  EXPECT_EQ(resolve_shape(preset("gpt2-124m"), 0).num_parameters(), 124'439'808);
  EXPECT_EQ(resolve_shape(preset("gpt2-350m"), 0).num_parameters(), 354'823'168);
  EXPECT_EQ(resolve_shape(preset("gpt2-774m"), 0).num_parameters(), 774'030'080);
  EXPECT_EQ(resolve_shape(preset("gpt2-1558m"), 0).num_parameters(), 1'557'611'200);
  // gpt2-tiny with the byte tokenizer (V=257), C=128, 4 layers, context 256, by hand:
  //   wte 257*128 = 32,896; wpe 256*128 = 32,768; ln_f 2*128 = 256;
  //   one block: 12*128^2 + 13*128 = 196,608 + 1,664 = 198,272; four: 793,088.
  EXPECT_EQ(resolve_shape(preset("gpt2-tiny"), 257).num_parameters(), 32'896 + 32'768 + 793'088 + 256);
}

TEST(ModelShape, PadVocabRoundsUpToAMultipleOf128) {
  EXPECT_EQ(pad_vocab(1), 128);
  EXPECT_EQ(pad_vocab(128), 128);
  EXPECT_EQ(pad_vocab(129), 256);
  EXPECT_EQ(pad_vocab(257), 384);
  EXPECT_EQ(pad_vocab(50257), 50304);
}

TEST(ModelShape, ExplicitFieldsOverrideThePreset) {
  ModelConfig config = preset("gpt2-124m");
  config.n_layer = 2;
  config.context = 128;
  const GPT2Shape shape = resolve_shape(config, 0);
  EXPECT_EQ(shape.n_layer, 2);
  EXPECT_EQ(shape.n_head, 12);
  EXPECT_EQ(shape.n_embd, 768);
  EXPECT_EQ(shape.context, 128);
  EXPECT_EQ(shape.vocab, 50257);
  EXPECT_EQ(shape.padded_vocab(), 50304);
  EXPECT_EQ(shape.head_dim(), 64);
}

TEST(ModelShape, VocabComesFromTheTokenizerUnlessSetExplicitly) {
  EXPECT_EQ(resolve_shape(preset("gpt2-tiny"), 257).vocab, 257);
  EXPECT_EQ(resolve_shape(preset("gpt2-tiny"), 257).padded_vocab(), 384);
  // A preset's 50257 is GPT-2's tokenizer; the data's tokenizer replaces it.
  EXPECT_EQ(resolve_shape(preset("gpt2-124m"), 257).vocab, 257);
  ModelConfig explicit_vocab = preset("gpt2-tiny");
  explicit_vocab.vocab = 257;
  EXPECT_EQ(resolve_shape(explicit_vocab, 257).vocab, 257);
  EXPECT_EQ(resolve_shape(explicit_vocab, 0).vocab, 257);
  // Before a tokenizer exists the architecture still resolves, with vocab unknown.
  EXPECT_EQ(resolve_architecture(preset("gpt2-tiny")).vocab, 0);
  EXPECT_EQ(resolve_architecture(preset("gpt2-tiny")).n_embd, 128);
}

TEST(ModelShape, Errors) {
  ModelConfig mismatch = preset("gpt2-124m");
  mismatch.vocab = 50257;
  EXPECT_EQ(error_of([&] { resolve_shape(mismatch, 257); }),
            "model.vocab is 50257 but the tokenizer has 257 tokens; remove model.vocab or use the matching "
            "tokenizer");
  EXPECT_EQ(
      error_of([] { resolve_shape(preset("gpt3"), 257); }),
      "model.preset: unknown preset \"gpt3\"; known presets: gpt2-tiny, gpt2-124m, gpt2-350m, gpt2-774m, "
      "gpt2-1558m");
  ModelConfig heads = preset("gpt2-tiny");
  heads.n_head = 3;
  EXPECT_CONTAINS(error_of([&] { resolve_shape(heads, 257); }),
                  "model.n_embd 128 is not divisible by model.n_head 3");
  EXPECT_CONTAINS(error_of([] { resolve_shape(preset("gpt2-tiny"), 0); }), "model.vocab is unknown");
  ModelConfig negative = preset("gpt2-tiny");
  negative.n_layer = -2;
  EXPECT_EQ(error_of([&] { resolve_shape(negative, 257); }), "model.n_layer must be >= 1, got -2");
}

TEST(TrainingMemory, CountsStateAndActivationsAsDocumented) {
  // A shape small enough to count by hand: L=1, NH=2, C=4, context 8, V=100 (Vp=128).
  const GPT2Shape s{.n_layer = 1, .n_head = 2, .n_embd = 4, .context = 8, .vocab = 100};
  ASSERT_EQ(s.padded_vocab(), 128);
  // Parameters: wte 100*4 + wpe 8*4 + block (12*16 + 13*4 = 244) + ln_f 8 = 684; the 28 padded
  // wte rows add 112 allocated floats: 796, times 4 (weights, grads, m, v) = 3,184 floats.
  // Activations per token: block 17*4 + 2 + 4 = 74; gradient scratch 15*4 = 60; 2*4 + 3 + 128 = 139:
  // 273 floats. At B=2, T=3: 6 tokens -> 1,638 floats.
  EXPECT_EQ(s.num_parameters(), 684);
  EXPECT_EQ(training_memory_bytes(s, 2, 3), 4 * (3'184 + 1'638));
  // Activations grow linearly with tokens, the state does not.
  const int64_t one = training_memory_bytes(s, 1, 1), two = training_memory_bytes(s, 2, 1);
  EXPECT_EQ(two - one, 4 * 273);
  EXPECT_EQ(training_memory_bytes(s, 1, 2), two);
}

TEST(TrainingMemory, Gpt2SmallNeedsSeveralGiB) {
  const GPT2Shape shape = resolve_shape(preset("gpt2-124m"), 0);
  const int64_t bytes = training_memory_bytes(shape, 8, 1024);
  // At least the 16 bytes per parameter of weights, gradients and AdamW; the logits of 8K tokens
  // alone take 8192 * 50304 * 4 bytes = 1.5 GiB.
  EXPECT_GT(bytes, 16 * shape.num_parameters() + int64_t{8192} * 50304 * 4);
  EXPECT_LT(bytes, 16 * kGiB);
}

TEST(TrainingMemory, SaturatesInsteadOfOverflowingAtTheConfigBounds) {
  // Every shape field at the largest value the config accepts.
  const GPT2Shape s{.n_layer = 1024, .n_head = 1024, .n_embd = 65536, .context = 1 << 20, .vocab = 1 << 24};
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  // 2^31 - 1 sequences of 2^20 tokens, about 2^30 floats each: some 2^83 bytes.
  EXPECT_EQ(training_memory_bytes(s, std::numeric_limits<int>::max(), 1 << 20), kMax);
  // One sequence still fits in int64: over 4 bytes x 2^20 tokens x 1024 layers x 17 x 65536 floats.
  const int64_t one = training_memory_bytes(s, 1, 1 << 20);
  EXPECT_GT(one, int64_t{4} * (1 << 20) * 1024 * 17 * 65536);
  EXPECT_LT(one, kMax);
  TrainConfig train;
  train.micro_batch = std::numeric_limits<int>::max();
  train.seq_len = 1 << 20;
  const std::string message = error_of([&] { check_fits_in_memory("huge", s, train, 1024 * kGiB, true); });
  EXPECT_CONTAINS(message, "huge needs about");
  EXPECT_CONTAINS(message, "more than the 1024.0 GiB available");
}

TEST(MemoryCheck, GpuOnlyPresetsRefuseTheCpu) {
  TrainConfig train;
  for (const char* name : {"gpt2-774m", "gpt2-1558m"}) {
    const GPT2Shape shape = resolve_shape(preset(name), 0);
    const std::string message =
        error_of([&] { check_fits_in_memory(name, shape, train, 1024 * kGiB, false); });
    EXPECT_CONTAINS(message, std::string(name) + " (");
    EXPECT_CONTAINS(message, "is meant for GPUs");
    EXPECT_CONTAINS(message, "device: cuda");
    EXPECT_CONTAINS(message, "gpt2-124m");
    // The same model on a GPU with room to spare is fine.
    EXPECT_NO_THROW(check_fits_in_memory(name, shape, train, 1024 * kGiB, true));
  }
}

TEST(MemoryCheck, TooLittleMemorySaysHowMuchIsNeededAndWhatToChange) {
  const GPT2Shape shape = resolve_shape(preset("gpt2-124m"), 0);
  TrainConfig train;
  train.micro_batch = 8;
  train.seq_len = 1024;
  const int64_t needed = training_memory_bytes(shape, 8, 1024);
  EXPECT_NO_THROW(check_fits_in_memory("gpt2-124m", shape, train, needed, false));
  const std::string message =
      error_of([&] { check_fits_in_memory("gpt2-124m", shape, train, 2 * kGiB, false); });
  EXPECT_CONTAINS(message,
                  fmt::format("gpt2-124m needs about {:.1f} GiB to train at micro_batch 8 x seq_len 1024 "
                              "in fp32 on the CPU, more than the 2.0 GiB available",
                              static_cast<double>(needed) / kGiB));
  EXPECT_CONTAINS(message, "device: cuda");
  EXPECT_CONTAINS(message, "train.micro_batch");
  EXPECT_CONTAINS(error_of([&] { check_fits_in_memory("gpt2-124m", shape, train, needed - 1, true); }),
                  "on the GPU");
  // Unknown available memory (0) skips the size check.
  EXPECT_NO_THROW(check_fits_in_memory("gpt2-124m", shape, train, 0, false));
}

}  // namespace
}  // namespace inkstone
