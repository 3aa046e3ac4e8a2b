// `inkstone convert` end to end. Export: the committed checkpoint exports to exactly the committed
// export that transformers loaded (tests/fixtures/make_hf_parity.py), so transformers' logits and
// AutoTokenizer's ids recorded from it hold for the current code, and they are inkstone's. Import: a
// directory transformers saved becomes a checkpoint that eval and generate run, and an export imports
// back to the same weights. DST is never overwritten, and bad sources are one error line.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/checkpoint_manifest.h"
#include "runtime/config.h"
#include "runtime/gpt2.h"
#include "runtime/hf_export.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_source.h"
#include "runtime/safetensors.h"
#include "support/expect_contains.h"
#include "support/hf_parity.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::hf_parity_dir;
using testing::read_file;
using testing::run_cli;
using testing::write_file;

fs::path committed_checkpoint() {
  return hf_parity_dir() / "inkstone_checkpoint";
}
fs::path committed_export() {
  return hf_parity_dir() / "inkstone_export";
}

std::set<std::string> file_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const SafetensorsFile fa = SafetensorsFile::read(a), fb = SafetensorsFile::read(b);
  EXPECT_EQ(fa.metadata(), fb.metadata());
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
  for (const SafeTensorInfo& t : fa.tensors()) {
    const SafeTensorInfo* u = fb.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(t.dtype, u->dtype) << t.name;
    EXPECT_EQ(t.shape, u->shape) << t.name;
    const auto x = fa.bytes(t), y = fb.bytes(*u);
    EXPECT_TRUE(x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size()) == 0) << t.name;
  }
}

std::vector<float> parameters_of(const fs::path& dir) {
  const ModelSource source = read_model_source(dir);
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, source.shape, 1, 1);
  load_model_weights(dir, model);
  std::vector<float> all;
  for (const ParamInfo& p : model.parameters()) {
    const std::vector<float> v = model.read_parameter(p.name);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The error line of a convert that must fail, after checking it is one line and that DST was not made.
std::string convert_error(const fs::path& src, const fs::path& dst) {
  const testing::CommandResult r = run_cli({"convert", src.string(), dst.string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  return r.err;
}

// No hidden staging directory of a convert to `dst` may outlive it.
void expect_no_staging_left(const fs::path& dst) {
  // fmt rather than operator+, which trips a false -Wrestrict in GCC 12.
  const std::string prefix = fmt::format(".{}.convert-", dst.filename().string());
  for (const std::string& name : file_names(dst.parent_path()))
    EXPECT_FALSE(name.starts_with(prefix)) << name;
}

TEST(ConvertCommand, ExportOfTheCommittedCheckpointIsTheCommittedExport) {
  testing::TempDir tmp;
  const fs::path out = tmp / "export";
  const testing::CommandResult r = run_cli({"convert", committed_checkpoint().string(), out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "wrote the Hugging Face GPT-2 directory " + out.string());

  const std::set<std::string> expected(kHuggingFaceExportFiles.begin(), kHuggingFaceExportFiles.end());
  EXPECT_EQ(file_names(out), expected);  // no optimizer, state or checksums
  EXPECT_EQ(file_names(committed_export()), expected);
  for (const std::string& name : expected) {
    if (name.ends_with(".safetensors"))
      expect_same_tensors(out / name, committed_export() / name);
    else
      EXPECT_EQ(json::parse(read_file(out / name)), json::parse(read_file(committed_export() / name)))
          << name;
  }
  const json config = json::parse(read_file(out / kModelConfigFile));
  EXPECT_FALSE(config.contains("inkstone"));
  EXPECT_EQ(config["model_type"], "gpt2");
  const SafetensorsFile weights = SafetensorsFile::read(out / kModelWeightsFile);
  for (const SafeTensorInfo& t : weights.tensors()) EXPECT_EQ(t.dtype, SafeDType::F32) << t.name;
  const json generation = json::parse(read_file(out / kGenerationConfigFile));
  const int eot = read_model_source(committed_checkpoint()).eos_token_id;
  EXPECT_EQ(generation["eos_token_id"], eot);
  EXPECT_EQ(generation["bos_token_id"], eot);
  EXPECT_EQ(generation["max_length"], 16);
  EXPECT_EQ(read_file(out / kTokenizerFile), read_file(committed_checkpoint() / kTokenizerFile));
}

// export_reference.*: what transformers computed from the committed export (see make_hf_parity.py).
TEST(ConvertCommand, TransformersLogitsOnTheExportAreInkstones) {
  const testing::ReferenceLogits ref =
      testing::read_reference_logits(hf_parity_dir() / "export_reference.safetensors");
  ASSERT_EQ(ref.vocab, 320);
  const double error =
      testing::max_relative_error(testing::inkstone_logits(committed_checkpoint(), ref.tokens), ref.logits);
  std::printf("inkstone_checkpoint: max |inkstone - transformers| / max |logit| = %.3g\n", error);
  EXPECT_LT(error, testing::kLogitTolerance);
  // The export read back as a Hugging Face source computes the very same numbers.
  EXPECT_TRUE(bit_equal(testing::inkstone_logits(committed_export(), ref.tokens),
                        testing::inkstone_logits(committed_checkpoint(), ref.tokens)));
}

TEST(ConvertCommand, AutoTokenizerIdsAreInkstones) {
  const json reference = json::parse(read_file(hf_parity_dir() / "export_reference.json"));
  const std::string text = reference["text"];
  const std::vector<int32_t> ids = reference["autotokenizer_ids"];
  EXPECT_EQ(reference["tokenizer_class"], "GPT2TokenizerFast");
  for (const fs::path& dir : {committed_checkpoint(), committed_export()}) {
    const ModelSource source = read_model_source(dir);
    EXPECT_EQ(source.tokenizer->encode(text), ids) << dir;
    EXPECT_EQ(source.tokenizer->decode(ids), text) << dir;
    EXPECT_EQ(reference["eos_token_id"], source.eos_token_id) << dir;
  }
  // Ids the byte tokenizer would give differ, so agreeing above says something.
  EXPECT_LT(ids.size(), text.size());
}

TEST(ConvertCommand, ExportImportsBackToTheSameModel) {
  testing::TempDir tmp;
  const fs::path imported = tmp / "imported";
  const testing::CommandResult r = run_cli({"convert", committed_export().string(), imported.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "wrote the inkstone checkpoint " + imported.string());
  EXPECT_EQ(file_names(imported), (std::set<std::string>{"checksums.sha256", "config.json",
                                                         "model.safetensors", "tokenizer.json"}));
  EXPECT_TRUE(verify_checkpoint_manifest(imported, {kModelWeightsFile, kModelConfigFile, kTokenizerFile}));

  const ModelCheckpointInfo info = read_model_checkpoint_info(imported);  // an inkstone checkpoint now
  const ModelCheckpointInfo original = read_model_checkpoint_info(committed_checkpoint());
  EXPECT_EQ(info.shape, original.shape);
  EXPECT_EQ(tokenizer_hash(info.tokenizer_json), tokenizer_hash(original.tokenizer_json));
  EXPECT_TRUE(bit_equal(parameters_of(imported), parameters_of(committed_checkpoint())));
  EXPECT_EQ(info.config.train.seq_len, 16);
  EXPECT_EQ(info.config.data.tokenizer, (fs::absolute(imported) / kTokenizerFile).string());
}

TEST(ConvertCommand, TransformersModelImportsAndRunsInEvalAndGenerate) {
  testing::TempDir tmp;
  const fs::path imported = tmp / "imported";
  ASSERT_EQ(run_cli({"convert", (hf_parity_dir() / "hf_bf16").string(), imported.string()}).exit_code, 0);
  const ModelCheckpointInfo info = read_model_checkpoint_info(imported);
  EXPECT_EQ(info.shape, (GPT2Shape{.n_layer = 2, .n_head = 2, .n_embd = 8, .context = 16, .vocab = 257}));
  EXPECT_EQ(info.config.data.tokenizer, "byte");
  EXPECT_EQ(tokenizer_hash(info.tokenizer_json), tokenizer_hash(ByteTokenizer().to_json()));
  const SafetensorsFile weights = SafetensorsFile::read(imported / kModelWeightsFile);
  for (const SafeTensorInfo& t : weights.tensors()) {
    EXPECT_EQ(t.dtype, SafeDType::F32) << t.name;  // widened from BF16
    EXPECT_FALSE(t.name.starts_with("transformer.")) << t.name;
  }
  EXPECT_TRUE(bit_equal(parameters_of(imported), parameters_of(hf_parity_dir() / "hf_bf16")));

  write_file(tmp / "text.txt", "It is a truth universally acknowledged, that a single man in possession.\n");
  const testing::CommandResult eval =
      run_cli({"eval", imported.string(), "--data", (tmp / "text.txt").string(), "--device", "cpu"});
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_CONTAINS(eval.out, "perplexity");
  const testing::CommandResult generate = run_cli(
      {"generate", imported.string(), "--prompt", "Once", "--max-new-tokens", "5", "--device", "cpu"});
  EXPECT_EQ(generate.exit_code, 0) << generate.err;
  EXPECT_TRUE(generate.out.starts_with("Once")) << generate.out;
}

// A run directory stands for its latest checkpoint, as for eval and generate.
TEST(ConvertCommand, RunDirectoryExportsItsLatestCheckpoint) {
  testing::TempDir tmp;
  const fs::path run = tmp / "run";
  fs::create_directories(run);
  fs::copy(committed_checkpoint(), run / "step_00000060");
  fs::create_directory_symlink("step_00000060", run / "latest");
  const testing::CommandResult r = run_cli({"convert", run.string(), (tmp / "export").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_tensors(tmp / "export" / kModelWeightsFile, committed_export() / kModelWeightsFile);
}

TEST(ConvertCommand, EmptyDestinationDirectoryIsFilled) {
  testing::TempDir tmp;
  fs::create_directory(tmp / "empty");
  const testing::CommandResult r =
      run_cli({"convert", committed_checkpoint().string(), (tmp / "empty").string() + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(file_names(tmp / "empty").size(), kHuggingFaceExportFiles.size());
  expect_no_staging_left(tmp / "empty");
}

TEST(ConvertCommand, DestinationIsNeverOverwritten) {
  testing::TempDir tmp;
  const fs::path full = tmp / "full";
  fs::create_directory(full);
  write_file(full / "keep.txt", "mine");
  std::string message = convert_error(committed_checkpoint(), full);
  EXPECT_CONTAINS(message, full.string() + ": exists and is not empty");
  EXPECT_CONTAINS(message, "never overwrites");
  EXPECT_EQ(file_names(full), std::set<std::string>{"keep.txt"});
  EXPECT_EQ(read_file(full / "keep.txt"), "mine");
  expect_no_staging_left(full);

  write_file(tmp / "file", "mine");
  EXPECT_CONTAINS(convert_error(committed_checkpoint(), tmp / "file"), "exists and is not a directory");
  EXPECT_EQ(read_file(tmp / "file"), "mine");

  EXPECT_CONTAINS(convert_error(committed_checkpoint(), tmp / "no" / "such"),
                  "does not exist; create it first");
  // Converting onto the source itself is just a non-empty destination.
  EXPECT_CONTAINS(convert_error(committed_checkpoint(), committed_checkpoint()), "exists and is not empty");
}

// A copy of the transformers-saved directory to break; every failure leaves DST absent.
class ConvertBadSource : public ::testing::Test {
 protected:
  ConvertBadSource() { fs::copy(hf_parity_dir() / "hf_bf16", src_, fs::copy_options::recursive); }
  void edit_config(const std::function<void(json&)>& edit) {
    json doc = json::parse(read_file(src_ / kModelConfigFile));
    edit(doc);
    write_file(src_ / kModelConfigFile, doc.dump(2));
  }
  std::string error() {
    const std::string message = convert_error(src_, dst_);
    EXPECT_FALSE(fs::exists(dst_));
    expect_no_staging_left(dst_);
    return message;
  }

  testing::TempDir tmp_;
  fs::path src_ = tmp_ / "src", dst_ = tmp_ / "dst";
};

TEST_F(ConvertBadSource, UnknownModelType) {
  edit_config([](json& d) { d["model_type"] = "llama"; });
  const std::string message = error();
  EXPECT_CONTAINS(message, (src_ / kModelConfigFile).string());
  EXPECT_CONTAINS(message, "model_type is \"llama\"; inkstone reads GPT-2 models");
}

TEST_F(ConvertBadSource, MissingTokenizer) {
  fs::remove(src_ / kTokenizerFile);
  EXPECT_CONTAINS(error(), src_.string() + ": has no tokenizer.json and no vocab.json + merges.txt");
}

TEST_F(ConvertBadSource, WeightsOfAnotherShape) {
  edit_config([](json& d) { d["n_embd"] = 16; });
  EXPECT_CONTAINS(error(),
                  "tensor \"transformer.wte.weight\" has shape [257, 8] but this model's is [257, 16]");
}

TEST_F(ConvertBadSource, TokenizerOfAnotherVocabulary) {
  edit_config([](json& d) { d["vocab_size"] = 300; });
  EXPECT_CONTAINS(error(), "vocab_size is 300 but the tokenizer");
}

TEST(ConvertCommand, HelpExplainsBothDirections) {
  const testing::CommandResult r = run_cli({"convert", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_CONTAINS(r.out, "checkpoint -> Hugging Face");
  EXPECT_CONTAINS(r.out, "Hugging Face -> checkpoint");
  EXPECT_CONTAINS(r.out, "nothing is overwritten");
  EXPECT_CONTAINS(run_cli({"--help"}).out, "convert");
}

}  // namespace
}  // namespace inkstone
