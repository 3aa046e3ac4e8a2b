// Models to start from: Hugging Face GPT-2 directories written by transformers (tests/fixtures/hf_parity,
// made by tests/fixtures/make_hf_parity.py) compute transformers' logits in inkstone, their tokenizer's
// hash is the one `inkstone prepare` records for it, and every way such a directory can be wrong is one
// error line naming the file and the field.
#include "runtime/model_source.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"
#include "runtime/safetensors.h"
#include "runtime/tokenizer.h"
#include "support/expect_contains.h"
#include "support/hf_parity.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::error_of;
using testing::hf_parity_dir;
using testing::read_file;
using testing::write_file;

constexpr GPT2Shape kHfShape = {.n_layer = 2, .n_head = 2, .n_embd = 8, .context = 16, .vocab = 257};

std::vector<float> parameters_of(const fs::path& dir, const GPT2Shape& shape) {
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, shape, 1, 1);
  load_model_weights(dir, model);
  std::vector<float> all;
  for (const ParamInfo& p : model.parameters()) {
    const std::vector<float> values = model.read_parameter(p.name);
    all.insert(all.end(), values.begin(), values.end());
  }
  return all;
}

// The hash `inkstone prepare` records for data prepared with `data.tokenizer: spec`.
std::string prepared_tokenizer_sha(const std::string& spec) {
  testing::TempDir dir;
  write_file(dir / "corpus.txt", "Some text to prepare.\n");
  DataConfig data;
  data.corpus = {(dir / "corpus.txt").string()};
  data.tokenizer = spec;
  data.val_fraction = 0;
  data.dir = (dir / "prepared").string();
  std::ostringstream log;
  return prepare_corpus(data, log).tokenizer_sha256;
}

TEST(ModelSource, TransformersBf16DirectoryComputesTransformersLogits) {
  const fs::path dir = hf_parity_dir() / "hf_bf16";
  const ModelSource source = read_model_source(dir);
  EXPECT_TRUE(source.hugging_face);
  EXPECT_EQ(source.dir, dir);
  EXPECT_EQ(source.shape, kHfShape);
  EXPECT_EQ(source.eos_token_id, 256);
  EXPECT_EQ(source.tokenizer->name(), "byte");  // the byte-level tokenizer.json tokenizers wrote
  EXPECT_EQ(source.tokenizer_sha256, tokenizer_hash(ByteTokenizer().to_json()));

  const testing::ReferenceLogits ref =
      testing::read_reference_logits(hf_parity_dir() / "hf_logits.safetensors");
  ASSERT_EQ(ref.vocab, 257);
  const double error = testing::max_relative_error(testing::inkstone_logits(dir, ref.tokens), ref.logits);
  std::printf("hf_bf16: max |inkstone - transformers| / max |logit| = %.3g\n", error);
  EXPECT_LT(error, testing::kLogitTolerance);
}

// The same model as older transformers saved it: F16, the whole state dict with attention buffers and a
// stored lm_head, vocab.json + merges.txt. Its values are exact in BF16 and F16, so both directories
// must load to the same float32 parameters, bit for bit.
TEST(ModelSource, LegacyF16DirectoryWithBuffersIsTheSameModel) {
  const fs::path dir = hf_parity_dir() / "hf_f16_legacy";
  const ModelSource source = read_model_source(dir);
  EXPECT_TRUE(source.hugging_face);
  EXPECT_EQ(source.shape, kHfShape);
  EXPECT_EQ(source.tokenizer->vocab_size(), 257);
  EXPECT_EQ(source.tokenizer->encode("naïve\n"), ByteTokenizer().encode("naïve\n"));

  const std::vector<float> legacy = parameters_of(dir, kHfShape);
  const std::vector<float> bf16 = parameters_of(hf_parity_dir() / "hf_bf16", kHfShape);
  ASSERT_EQ(legacy.size(), bf16.size());
  EXPECT_EQ(std::memcmp(legacy.data(), bf16.data(), legacy.size() * sizeof(float)), 0);

  const testing::ReferenceLogits ref =
      testing::read_reference_logits(hf_parity_dir() / "hf_logits.safetensors");
  const double error = testing::max_relative_error(testing::inkstone_logits(dir, ref.tokens), ref.logits);
  std::printf("hf_f16_legacy: max |inkstone - transformers| / max |logit| = %.3g\n", error);
  EXPECT_LT(error, testing::kLogitTolerance);
}

// The hash check_compatible compares with is what prepare records for the data.tokenizer it advises.
TEST(ModelSource, TokenizerHashIsWhatPrepareRecords) {
  for (const char* name : {"hf_bf16", "hf_f16_legacy", "inkstone_checkpoint"}) {
    const fs::path dir = hf_parity_dir() / name;
    const ModelSource source = read_model_source(dir);
    const std::string spec =
        (fs::exists(dir / kTokenizerFile) ? dir / kTokenizerFile : dir / "vocab.json").string();
    EXPECT_EQ(source.tokenizer_sha256, prepared_tokenizer_sha(spec)) << name;
    EXPECT_NO_THROW(check_compatible(source, source.shape.vocab, prepared_tokenizer_sha(spec), "data/x"))
        << name;
  }
}

// The Hub's gpt2 layout with GPT-2's real vocabulary (vocab.json + merges.txt, 50257 ids) and a Hub-style
// config.json; the weights are a random tiny model of that vocabulary under GPT2LMHeadModel's names.
TEST(ModelSource, HubLayoutWithGPT2Vocabulary) {
  const fs::path gpt2 = testing::shared_dir() / "tokenizers" / "gpt2";
  if (testing::shared_dir().empty() || !fs::exists(gpt2 / "vocab.json"))
    GTEST_SKIP() << "../shared/tokenizers/gpt2 is absent";
  testing::TempDir dir;
  fs::copy(gpt2 / "vocab.json", dir / "vocab.json");
  fs::copy(gpt2 / "merges.txt", dir / "merges.txt");
  const GPT2Shape shape = {.n_layer = 1, .n_head = 2, .n_embd = 8, .context = 16, .vocab = 50257};
  write_file(dir / kModelConfigFile,
             json{{"activation_function", "gelu_new"},
                  {"architectures", {"GPT2LMHeadModel"}},
                  {"bos_token_id", 50256},
                  {"eos_token_id", 50256},
                  {"layer_norm_epsilon", 1e-05},
                  {"model_type", "gpt2"},
                  {"n_ctx", 16},
                  {"n_embd", 8},
                  {"n_head", 2},
                  {"n_layer", 1},
                  {"n_positions", 16},
                  {"task_specific_params", {{"text-generation", {{"max_length", 50}}}}},
                  {"vocab_size", 50257}}
                 .dump(2));
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, shape, 1, 1);
  model.initialize(7);
  SafetensorsWriter weights;
  weights.set_metadata("format", "pt");
  for (const ParamInfo& p : model.parameters())
    weights.add_floats("transformer." + p.name, p.shape, model.read_parameter(p.name));
  write_file(dir / kModelWeightsFile, weights.serialize());

  const ModelSource source = read_model_source(dir.path());
  EXPECT_TRUE(source.hugging_face);
  EXPECT_EQ(source.shape, shape);
  EXPECT_EQ(source.eos_token_id, 50256);
  EXPECT_EQ(source.tokenizer->encode("Hello, world!"), (std::vector<int32_t>{15496, 11, 995, 0}));
  EXPECT_EQ(source.tokenizer_sha256, prepared_tokenizer_sha((dir / "vocab.json").string()));
  GPT2 loaded(*backend, source.shape, 1, 1);
  load_model_weights(dir.path(), loaded);
  EXPECT_EQ(loaded.read_parameter("h.0.mlp.c_fc.weight"), model.read_parameter("h.0.mlp.c_fc.weight"));
  EXPECT_CONTAINS(
      error_of([&] { check_compatible(source, 257, tokenizer_hash(ByteTokenizer().to_json()), "d"); }),
      "data.tokenizer: " + (dir / "vocab.json").string());
}

TEST(ModelSource, InkstoneCheckpointIsReadAsOne) {
  const fs::path dir = hf_parity_dir() / "inkstone_checkpoint";
  const ModelSource source = read_model_source(dir);
  EXPECT_FALSE(source.hugging_face);
  EXPECT_EQ(source.shape, (GPT2Shape{.n_layer = 2, .n_head = 2, .n_embd = 8, .context = 16, .vocab = 320}));
  EXPECT_EQ(source.tokenizer_json, read_file(dir / kTokenizerFile));
  EXPECT_EQ(source.tokenizer_sha256,
            json::parse(read_file(dir / kModelConfigFile))["inkstone"]["tokenizer_sha256"]);
  EXPECT_EQ(source.eos_token_id, source.tokenizer->eot_id());
}

TEST(ModelSource, DataOfAnotherTokenizerIsRefusedWithTheFix) {
  const ModelSource source = read_model_source(hf_parity_dir() / "inkstone_checkpoint");
  const std::string byte_sha = tokenizer_hash(ByteTokenizer().to_json());
  const std::string message = error_of([&] { check_compatible(source, 257, byte_sha, "data/novel"); });
  EXPECT_CONTAINS(message, "data/novel: prepared with another tokenizer");
  EXPECT_CONTAINS(message, byte_sha);
  EXPECT_CONTAINS(message, source.tokenizer_sha256);
  EXPECT_CONTAINS(message, "257 tokens");
  EXPECT_CONTAINS(message, "320 tokens");
  EXPECT_CONTAINS(message,
                  "data.tokenizer: " + (hf_parity_dir() / "inkstone_checkpoint" / kTokenizerFile).string());
  EXPECT_EQ(message.find('\n'), std::string::npos);

  const ModelSource legacy = read_model_source(hf_parity_dir() / "hf_f16_legacy");
  EXPECT_CONTAINS(error_of([&] { check_compatible(legacy, 320, source.tokenizer_sha256, "d"); }),
                  "data.tokenizer: " + (hf_parity_dir() / "hf_f16_legacy" / "vocab.json").string());
}

// A copy of hf_bf16 to break.
class BrokenSource : public ::testing::Test {
 protected:
  BrokenSource() {
    fs::copy(hf_parity_dir() / "hf_bf16", dir_.path(), fs::copy_options::recursive);
    config_ = json::parse(read_file(config_path()));
  }
  fs::path config_path() const { return dir_ / kModelConfigFile; }
  void edit_config(const std::function<void(json&)>& edit) {
    json doc = config_;
    edit(doc);
    write_file(config_path(), doc.dump(2));
  }
  std::string source_error() const {
    const std::string message = error_of([&] { read_model_source(dir_.path()); });
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  std::string config_error(const std::function<void(json&)>& edit) {
    edit_config(edit);
    const std::string message = source_error();
    EXPECT_CONTAINS(message, config_path().string());
    return message;
  }

  testing::TempDir dir_;
  json config_;
};

TEST_F(BrokenSource, UnsupportedConfigFieldsAreNamed) {
  EXPECT_CONTAINS(config_error([](json& d) { d["model_type"] = "llama"; }), "model_type is \"llama\"");
  EXPECT_CONTAINS(config_error([](json& d) { d.erase("model_type"); }), "has no \"model_type\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["activation_function"] = "gelu"; }),
                  "\"activation_function\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["n_inner"] = 16; }), "\"n_inner\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["scale_attn_by_inverse_layer_idx"] = true; }),
                  "\"scale_attn_by_inverse_layer_idx\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["add_cross_attention"] = true; }), "\"add_cross_attention\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["tie_word_embeddings"] = false; }), "\"tie_word_embeddings\"");
  EXPECT_CONTAINS(config_error([](json& d) { d["eos_token_id"] = 3; }), "eos_token_id is 3");
}

TEST_F(BrokenSource, TokenizerOfAnotherVocabularyIsRefused) {
  const std::string message = config_error([](json& d) { d["vocab_size"] = 300; });
  EXPECT_CONTAINS(message, "vocab_size is 300 but the tokenizer");
  EXPECT_CONTAINS(message, "has 257 tokens");
}

TEST_F(BrokenSource, MissingFilesAreNamed) {
  fs::remove(dir_ / kTokenizerFile);
  EXPECT_CONTAINS(source_error(), "has no tokenizer.json and no vocab.json + merges.txt");
  write_file(dir_ / "vocab.json", read_file(hf_parity_dir() / "hf_f16_legacy" / "vocab.json"));
  EXPECT_CONTAINS(source_error(), "has no tokenizer.json and no vocab.json + merges.txt");  // merges.txt too
  write_file(dir_ / "merges.txt", "#version: 0.2\n");
  EXPECT_EQ(read_model_source(dir_.path()).tokenizer->vocab_size(), 257);

  fs::rename(dir_ / kModelWeightsFile, dir_ / "pytorch_model.bin");
  EXPECT_CONTAINS(source_error(), "holds pytorch_model.bin, which inkstone does not read");
  fs::remove(dir_ / "pytorch_model.bin");
  EXPECT_CONTAINS(source_error(), (dir_ / kModelWeightsFile).string() + ": missing");

  fs::remove(config_path());
  EXPECT_CONTAINS(source_error(), "neither an inkstone checkpoint nor a Hugging Face GPT-2 directory");
  EXPECT_CONTAINS(error_of([&] { read_model_source(dir_ / "absent"); }), "no such directory");
}

// The weights against the model config.json describes: each mismatch names the tensor and both shapes.
TEST_F(BrokenSource, WeightsOfAnotherShapeOrVocabNameTensorAndShapes) {
  const auto backend = make_backend("cpu");
  const GPT2Shape wider = {.n_layer = 2, .n_head = 2, .n_embd = 16, .context = 16, .vocab = 257};
  GPT2 wide(*backend, wider, 1, 1);
  EXPECT_CONTAINS(error_of([&] { load_model_weights(dir_.path(), wide); }),
                  "\"transformer.wte.weight\" has shape [257, 8] but this model's is [257, 16]");
  const GPT2Shape more_vocab = {.n_layer = 2, .n_head = 2, .n_embd = 8, .context = 16, .vocab = 300};
  GPT2 big_vocab(*backend, more_vocab, 1, 1);
  EXPECT_CONTAINS(error_of([&] { load_model_weights(dir_.path(), big_vocab); }),
                  "\"transformer.wte.weight\" has shape [257, 8] but this model's is [300, 8]");
}

}  // namespace
}  // namespace inkstone
