// The model part of a checkpoint: a tiny GPT-2 written and read back bit-exactly, the Hugging Face
// layout of both files, the foreign extras that load, and every way a checkpoint can be wrong.
#include "runtime/model_checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/prepare.h"
#include "runtime/safetensors.h"
#include "support/expect_contains.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::error_of;
using testing::read_file;
using testing::write_file;

constexpr GPT2Shape kTiny = {.n_layer = 2, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};

RunConfig config_for(const GPT2Shape& shape) {
  RunConfig config;
  config.model = {.preset = "gpt2-tiny",
                  .n_layer = shape.n_layer,
                  .n_head = shape.n_head,
                  .n_embd = shape.n_embd,
                  .context = shape.context,
                  .vocab = 0};  // from the tokenizer
  config.train.seq_len = shape.context;
  config.train.lr = 3e-4;  // not the default, to see it come back
  config.device = "cpu";
  return config;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class ModelCheckpoint : public ::testing::Test {
 protected:
  ModelCheckpoint() : backend_(make_backend("cpu")), model_(*backend_, kTiny, 1, kTiny.context) {
    model_.initialize(1234);
    write_model_files(dir_.path(), model_, config_, tokenizer_json_);
  }

  fs::path weights_path() const { return dir_ / kModelWeightsFile; }
  fs::path config_path() const { return dir_ / kModelConfigFile; }
  fs::path tokenizer_path() const { return dir_ / kTokenizerFile; }

  // A fresh model of `shape` whose parameters differ from model_'s, so loading must change them.
  std::unique_ptr<GPT2> other_model(const GPT2Shape& shape = kTiny) const {
    auto model = std::make_unique<GPT2>(*backend_, shape, 1, shape.context);
    model->initialize(99);
    return model;
  }

  std::string load_error(GPT2& model) const {
    const std::string message = error_of([&] { load_model_weights(dir_.path(), model); });
    EXPECT_CONTAINS(message, weights_path().string());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  std::string info_error() const {
    const std::string message = error_of([&] { read_model_checkpoint_info(dir_.path()); });
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }

  // Rewrites model.safetensors with the model's tensors, transformed by `edit` (which may add more).
  void rewrite_weights(
      const std::function<void(SafetensorsWriter&, const ParamInfo&, std::vector<float>)>& edit,
      const std::function<void(SafetensorsWriter&)>& extra = {}) const {
    SafetensorsWriter writer;
    for (const ParamInfo& p : model_.parameters()) edit(writer, p, model_.read_parameter(p.name));
    if (extra) extra(writer);
    write_file(weights_path(), writer.serialize());
  }

  testing::TempDir dir_;
  std::unique_ptr<Backend> backend_;
  GPT2 model_;
  RunConfig config_ = config_for(kTiny);
  std::string tokenizer_json_ = ByteTokenizer().to_json();
};

TEST_F(ModelCheckpoint, RoundTripIsBitExact) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_.path())) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));

  const ModelCheckpointInfo info = read_model_checkpoint_info(dir_.path());
  EXPECT_EQ(info.dir, dir_.path());
  EXPECT_EQ(info.shape.n_layer, 2);
  EXPECT_EQ(info.shape.n_head, 2);
  EXPECT_EQ(info.shape.n_embd, 32);
  EXPECT_EQ(info.shape.context, 16);
  EXPECT_EQ(info.shape.vocab, 257);
  EXPECT_EQ(info.config.model, config_.model);
  EXPECT_EQ(info.config.train, config_.train);
  EXPECT_EQ(info.config.device, "cpu");
  EXPECT_EQ(info.tokenizer_json, tokenizer_json_);
  ASSERT_NE(info.tokenizer, nullptr);
  EXPECT_EQ(info.tokenizer->vocab_size(), 257);

  const std::unique_ptr<GPT2> loaded = load_model(info, *backend_, 2, 8);
  EXPECT_EQ(loaded->max_batch(), 2);
  EXPECT_EQ(loaded->max_seq(), 8);
  ASSERT_EQ(loaded->parameters().size(), model_.parameters().size());
  for (const ParamInfo& p : model_.parameters()) {
    EXPECT_TRUE(bit_equal(loaded->read_parameter(p.name), model_.read_parameter(p.name))) << p.name;
  }

  // Into an existing model with other values, too: every tensor is overwritten.
  const std::unique_ptr<GPT2> other = other_model();
  ASSERT_FALSE(
      bit_equal(other->read_parameter("h.1.mlp.c_fc.weight"), model_.read_parameter("h.1.mlp.c_fc.weight")));
  load_model_weights(dir_.path(), *other);
  for (const ParamInfo& p : model_.parameters()) {
    EXPECT_TRUE(bit_equal(other->read_parameter(p.name), model_.read_parameter(p.name))) << p.name;
  }
}

TEST_F(ModelCheckpoint, WeightsAreHuggingFaceGPT2Layout) {
  const SafetensorsFile file = SafetensorsFile::read(weights_path());
  EXPECT_EQ(file.metadata().at("format"), "pt");  // transformers requires it
  // wte, wpe, 12 tensors per block, ln_f weight and bias; the tied lm_head is not stored.
  ASSERT_EQ(file.tensors().size(), 2u + 12 * 2 + 2);
  EXPECT_EQ(file.find("lm_head.weight"), nullptr);
  for (const SafeTensorInfo& t : file.tensors()) EXPECT_EQ(t.dtype, SafeDType::F32) << t.name;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"wte.weight", {257, 32}},
      {"wpe.weight", {16, 32}},
      {"h.0.ln_1.weight", {32}},
      {"h.0.attn.c_attn.weight", {32, 96}},
      {"h.0.attn.c_attn.bias", {96}},
      {"h.1.attn.c_proj.weight", {32, 32}},
      {"h.1.mlp.c_fc.weight", {32, 128}},
      {"h.1.mlp.c_proj.weight", {128, 32}},
      {"ln_f.bias", {32}}};
  for (const auto& [name, shape] : shapes) {
    const SafeTensorInfo* t = file.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
  }
  EXPECT_TRUE(
      bit_equal(file.read_floats("h.0.attn.c_attn.weight"), model_.read_parameter("h.0.attn.c_attn.weight")));
  EXPECT_EQ(read_file(tokenizer_path()), tokenizer_json_);
}

TEST_F(ModelCheckpoint, ConfigJsonIsHuggingFaceGPT2Config) {
  const json doc = json::parse(read_file(config_path()));
  EXPECT_EQ(doc["model_type"], "gpt2");
  EXPECT_EQ(doc["architectures"], json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(doc["n_layer"], 2);
  EXPECT_EQ(doc["n_head"], 2);
  EXPECT_EQ(doc["n_embd"], 32);
  EXPECT_EQ(doc["n_positions"], 16);
  EXPECT_EQ(doc["vocab_size"], 257);
  EXPECT_TRUE(doc["n_inner"].is_null());
  EXPECT_EQ(doc["activation_function"], "gelu_new");
  EXPECT_EQ(doc["layer_norm_epsilon"].get<double>(), 1e-5);
  EXPECT_EQ(doc["initializer_range"].get<double>(), 0.02);
  for (const char* dropout : {"resid_pdrop", "embd_pdrop", "attn_pdrop"})
    EXPECT_EQ(doc[dropout], 0.0) << dropout;
  EXPECT_EQ(doc["bos_token_id"], 256);
  EXPECT_EQ(doc["eos_token_id"], 256);
  EXPECT_EQ(doc["tie_word_embeddings"], true);
  EXPECT_EQ(doc["scale_attn_weights"], true);
  EXPECT_EQ(doc["use_cache"], true);
  EXPECT_EQ(doc["torch_dtype"], "float32");

  const json& inkstone = doc["inkstone"];
  EXPECT_EQ(inkstone["format"], 1);
  EXPECT_EQ(inkstone["tokenizer_sha256"], tokenizer_hash(tokenizer_json_));
  const RunConfig stored = parse_config(inkstone["run_config"].get<std::string>(), "stored");
  EXPECT_EQ(stored.model, config_.model);
  EXPECT_EQ(stored.train.lr, 3e-4);
}

TEST_F(ModelCheckpoint, MissingDirectoryOrFileIsNotACheckpoint) {
  const fs::path absent = dir_ / "nope";
  const std::string no_dir = error_of([&] { read_model_checkpoint_info(absent); });
  EXPECT_CONTAINS(no_dir, absent.string());
  EXPECT_CONTAINS(no_dir, "no such directory");
  EXPECT_CONTAINS(no_dir, "inkstone checkpoint");

  for (const fs::path& file : {weights_path(), config_path(), tokenizer_path()}) {
    const std::string saved = read_file(file);
    fs::remove(file);
    const std::string message = info_error();
    EXPECT_CONTAINS(message, file.string());
    EXPECT_CONTAINS(message, "not an inkstone checkpoint");
    write_file(file, saved);
  }
  fs::remove(weights_path());
  EXPECT_CONTAINS(load_error(model_), "missing");
}

// A flipped bit in the header must never crash or load wrong weights: it is an error, except inside
// the metadata's strings ("format": "pt"), which do not describe the weights.
TEST_F(ModelCheckpoint, FlippedHeaderBytesAreErrors) {
  const std::string bytes = read_file(weights_path());
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  const std::string header = bytes.substr(8, header_size);
  const size_t metadata_begin = header.find("\"__metadata__\":{");
  ASSERT_NE(metadata_begin, std::string::npos);
  const size_t metadata_body = metadata_begin + std::string("\"__metadata__\":{").size();
  const size_t metadata_end = header.find('}', metadata_body);

  const std::unique_ptr<GPT2> model = other_model();
  int flips = 0, errors = 0;
  for (size_t i = 0; i < header.size(); ++i) {
    std::string damaged = bytes;
    damaged[8 + i] = static_cast<char>(damaged[8 + i] ^ 0x04);
    write_file(weights_path(), damaged);
    ++flips;
    // Only inkstone::Error may escape (error_of lets anything else fail the test).
    const std::string message = error_of([&] { load_model_weights(dir_.path(), *model); });
    if (!message.empty()) {
      ++errors;
      EXPECT_CONTAINS(message, weights_path().string());
    } else {
      EXPECT_TRUE(i >= metadata_body && i < metadata_end)
          << "flipping header byte " << i << " went unnoticed";
      EXPECT_TRUE(bit_equal(model->read_parameter("wte.weight"), model_.read_parameter("wte.weight"))) << i;
    }
  }
  EXPECT_GE(errors, flips - 8);  // at most the 8 letters of "format" and "pt"
}

TEST_F(ModelCheckpoint, TruncatedWeightsAreAnError) {
  const std::string bytes = read_file(weights_path());
  const std::unique_ptr<GPT2> model = other_model();
  const std::vector<float> before = model->read_parameter("wte.weight");
  for (size_t size : {bytes.size() - 1, bytes.size() / 2, size_t{100}, size_t{5}}) {
    write_file(weights_path(), bytes.substr(0, size));
    EXPECT_CONTAINS(load_error(*model), "truncated") << size;
  }
  EXPECT_TRUE(bit_equal(model->read_parameter("wte.weight"), before)) << "a failed load must change nothing";
}

TEST_F(ModelCheckpoint, WrongShapeIsAnErrorNamingTensorAndShapes) {
  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p, std::vector<float> v) {
    if (p.name == "h.1.ln_2.bias") {
      v.pop_back();
      w.add_floats(p.name, {31}, v);
    } else {
      w.add_floats(p.name, p.shape, v);
    }
  });
  const std::unique_ptr<GPT2> model = other_model();
  const std::vector<float> before = model->read_parameter("wte.weight");
  const std::string message = load_error(*model);
  EXPECT_CONTAINS(message, "\"h.1.ln_2.bias\" has shape [31] but this model's is [32]");
  EXPECT_TRUE(bit_equal(model->read_parameter("wte.weight"), before)) << "a failed load must change nothing";
}

TEST_F(ModelCheckpoint, MissingAndUnexpectedTensorsAreErrors) {
  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p, std::vector<float> v) {
    if (p.name != "h.1.mlp.c_proj.bias") w.add_floats(p.name, p.shape, v);
  });
  std::string message = load_error(model_);
  EXPECT_CONTAINS(message, "\"h.1.mlp.c_proj.bias\" is missing");

  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p,
                     std::vector<float> v) { w.add_floats(p.name, p.shape, v); },
                  [](SafetensorsWriter& w) {
                    w.add_floats("h.0.attn.rotary", {2}, std::vector<float>{1, 2});
                  });
  message = load_error(model_);
  EXPECT_CONTAINS(message, "unexpected tensor \"h.0.attn.rotary\"");

  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p, std::vector<float> v) {
    w.add(p.name, SafeDType::I32, p.shape, std::as_bytes(std::span<const float>(v)));
  });
  EXPECT_CONTAINS(load_error(model_), "\"wte.weight\" is I32");
}

// What transformers' GPT2LMHeadModel.save_pretrained or older exports hold beyond inkstone's names.
TEST_F(ModelCheckpoint, HuggingFaceExtrasAndHalfPrecisionLoad) {
  const std::vector<float> wte = model_.read_parameter("wte.weight");
  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p,
                     std::vector<float> v) { w.add_floats("transformer." + p.name, p.shape, v); },
                  [&](SafetensorsWriter& w) {
                    w.add_floats("transformer.h.0.attn.bias", {1, 1, 16, 16}, std::vector<float>(256, 1.0f));
                    w.add_floats("transformer.h.1.attn.masked_bias", {}, std::vector<float>{-1e4f});
                    w.add_floats("lm_head.weight", {257, 32}, wte);
                  });
  const std::unique_ptr<GPT2> model = other_model();
  load_model_weights(dir_.path(), *model);
  for (const ParamInfo& p : model_.parameters()) {
    EXPECT_TRUE(bit_equal(model->read_parameter(p.name), model_.read_parameter(p.name))) << p.name;
  }

  // An lm_head that is not wte would be silently dropped: an untied model must not load.
  rewrite_weights([](SafetensorsWriter& w, const ParamInfo& p,
                     std::vector<float> v) { w.add_floats(p.name, p.shape, v); },
                  [&](SafetensorsWriter& w) {
                    std::vector<float> head = wte;
                    head[5] += 1.0f;
                    w.add_floats("lm_head.weight", {257, 32}, head);
                  });
  EXPECT_CONTAINS(load_error(*model), "\"lm_head.weight\" differs from \"wte.weight\"");

  // BF16: the top half of each float32, so values with a zero low half must load exactly.
  std::vector<std::vector<float>> expected;
  rewrite_weights([&](SafetensorsWriter& w, const ParamInfo& p, std::vector<float> v) {
    std::vector<uint16_t> halves(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      halves[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
      v[i] = std::bit_cast<float>(std::bit_cast<uint32_t>(v[i]) & 0xFFFF0000u);
    }
    expected.push_back(v);
    w.add(p.name, SafeDType::BF16, p.shape, std::as_bytes(std::span<const uint16_t>(halves)));
  });
  load_model_weights(dir_.path(), *model);
  for (size_t i = 0; i < model_.parameters().size(); ++i) {
    const std::string& name = model_.parameters()[i].name;
    EXPECT_TRUE(bit_equal(model->read_parameter(name), expected[i])) << name;
  }
}

TEST_F(ModelCheckpoint, CheckpointOfAnotherShapeNamesTensorAndBothShapes) {
  const GPT2Shape wider = {.n_layer = 2, .n_head = 2, .n_embd = 64, .context = 16, .vocab = 257};
  const std::unique_ptr<GPT2> model = other_model(wider);
  const std::string message = load_error(*model);
  EXPECT_CONTAINS(message, "\"wte.weight\" has shape [257, 32] but this model's is [257, 64]");

  const GPT2Shape deeper = {.n_layer = 3, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};
  const std::unique_ptr<GPT2> deep = other_model(deeper);
  EXPECT_CONTAINS(load_error(*deep), "\"h.2.ln_1.weight\" is missing");

  const GPT2Shape shallower = {.n_layer = 1, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};
  const std::unique_ptr<GPT2> shallow = other_model(shallower);
  EXPECT_CONTAINS(load_error(*shallow), "unexpected tensor \"h.1.");
}

TEST_F(ModelCheckpoint, TokenizerMustBeTheRecordedOne) {
  // Still the byte tokenizer (so it loads), but a different file: the hash must catch it.
  json changed = json::parse(tokenizer_json_);
  changed["decoder"]["trim_offsets"] = !changed["decoder"]["trim_offsets"].get<bool>();
  write_file(tokenizer_path(), changed.dump(2));
  const std::string message = info_error();
  EXPECT_CONTAINS(message, tokenizer_path().string());
  EXPECT_CONTAINS(message, "does not match the one this model was trained with");

  // Layout alone does not change a tokenizer's identity.
  write_file(tokenizer_path(), json::parse(tokenizer_json_).dump(5));
  EXPECT_EQ(read_model_checkpoint_info(dir_.path()).shape.vocab, 257);
}

TEST_F(ModelCheckpoint, EditedConfigJsonIsAnError) {
  const json original = json::parse(read_file(config_path()));
  auto info_error_with = [&](const std::function<void(json&)>& edit) {
    json doc = original;
    edit(doc);
    write_file(config_path(), doc.dump(2));
    const std::string message = info_error();
    EXPECT_CONTAINS(message, config_path().string());
    return message;
  };
  EXPECT_CONTAINS(info_error_with([](json& d) { d["n_layer"] = 3; }), "disagree with its run_config");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["vocab_size"] = 50257; }), "disagree with its run_config");
  EXPECT_CONTAINS(info_error_with([](json& d) { d.erase("inkstone"); }), "Hugging Face export");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["inkstone"]["format"] = 2; }), "newer inkstone");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["activation_function"] = "relu"; }), "activation_function");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["layer_norm_epsilon"] = 1e-6; }), "layer_norm_epsilon");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["tie_word_embeddings"] = false; }), "tie_word_embeddings");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["model_type"] = "llama"; }), "GPT-2 models");
  EXPECT_CONTAINS(info_error_with([](json& d) { d.erase("n_embd"); }), "has no \"n_embd\"");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["n_head"] = -2; }), "\"n_head\" is -2");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["eos_token_id"] = 5; }), "eos_token_id");
  EXPECT_CONTAINS(info_error_with([](json& d) { d["inkstone"]["run_config"] = "model:\n  n_layr: 2\n"; }),
                  "run_config");
  write_file(config_path(), "{\"n_layer\": ");
  EXPECT_CONTAINS(info_error(), "not valid JSON");
}

TEST_F(ModelCheckpoint, WriteRefusesAConfigThatDescribesAnotherModel) {
  testing::TempDir other;
  RunConfig wrong = config_;
  wrong.model.n_embd = 64;
  const std::string message =
      error_of([&] { write_model_files(other.path(), model_, wrong, tokenizer_json_); });
  EXPECT_CONTAINS(message, other.path().string());
  EXPECT_CONTAINS(message, "n_embd 64");
  EXPECT_TRUE(fs::is_empty(other.path()));
}

}  // namespace
}  // namespace inkstone
