#include "runtime/model_source.h"

#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/hf_gpt2_config.h"
#include "runtime/json_limits.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kWhatASourceHolds =
    "give an inkstone checkpoint or a Hugging Face GPT-2 directory (config.json, model.safetensors, "
    "tokenizer.json or vocab.json + merges.txt)";

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// What `data.tokenizer:` should say to prepare data with the tokenizer of the model in `dir`: the file
// read_model_source took it from, which `inkstone prepare` turns into the same tokenizer.json.
std::string tokenizer_spec(const fs::path& dir) {
  return (is_file(dir / kTokenizerFile) ? dir / kTokenizerFile : dir / "vocab.json").string();
}

// GPT2Config fields that change the computation and that parse_hf_gpt2_config does not look at,
// because inkstone never writes them: a model that sets them has weights or layers inkstone lacks.
void check_hugging_face_fields(const json& doc, const std::string& name) {
  if (const auto it = doc.find("add_cross_attention"); it != doc.end() && *it == true) {
    fail(
        "{}: \"add_cross_attention\" is true (an encoder-decoder GPT-2); inkstone computes decoder-only "
        "GPT-2 "
        "models",
        name);
  }
}

// model.safetensors of a Hugging Face directory, or a message saying what the directory has instead.
void check_weights_file(const fs::path& dir) {
  if (is_file(dir / kModelWeightsFile)) return;
  const std::string missing = (dir / kModelWeightsFile).string();
  if (is_file(dir / "model.safetensors.index.json")) {
    fail(
        "{}: missing; the weights are sharded (model.safetensors.index.json), which inkstone does not read: "
        "save them as one file with transformers' save_pretrained(dir, max_shard_size=\"100GB\")",
        missing);
  }
  if (is_file(dir / "pytorch_model.bin")) {
    fail(
        "{}: missing; {} holds pytorch_model.bin, which inkstone does not read: save the model as "
        "safetensors with transformers' save_pretrained(dir, safe_serialization=True)",
        missing, dir.string());
  }
  fail("{}: missing, so {} holds no weights; {}", missing, dir.string(), kWhatASourceHolds);
}

std::unique_ptr<Tokenizer> read_hugging_face_tokenizer(const fs::path& dir) {
  if (is_file(dir / kTokenizerFile)) return load_tokenizer((dir / kTokenizerFile).string());
  if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt"))
    return load_tokenizer((dir / "vocab.json").string());
  fail(
      "{}: has no tokenizer.json and no vocab.json + merges.txt; copy the tokenizer files of the model "
      "(from its Hugging Face repository) into it",
      dir.string());
}

ModelSource read_hugging_face(const fs::path& dir, const std::string& config_text, const HFGPT2Config& hf,
                              const std::string& config_name) {
  check_hugging_face_fields(parse_json_bounded(config_text), config_name);
  check_weights_file(dir);
  ModelSource source;
  source.dir = dir;
  source.shape = hf.shape;
  source.hugging_face = true;
  source.tokenizer = read_hugging_face_tokenizer(dir);
  const int32_t vocab = source.tokenizer->vocab_size();
  if (vocab != hf.shape.vocab) {
    fail(
        "{}: vocab_size is {} but the tokenizer ({}) has {} tokens; the model and its tokenizer must "
        "agree: use the tokenizer the model was trained with",
        config_name, hf.shape.vocab, tokenizer_spec(dir), vocab);
  }
  source.eos_token_id = source.tokenizer->eot_id();
  if (hf.eos_token_id >= 0 && hf.eos_token_id != source.eos_token_id) {
    fail(
        "{}: eos_token_id is {} but the tokenizer's <|endoftext|> is {}; inkstone separates documents "
        "with <|endoftext|>, so they must be the same token",
        config_name, hf.eos_token_id, source.eos_token_id);
  }
  source.tokenizer_json = source.tokenizer->to_json();
  source.tokenizer_sha256 = tokenizer_hash(source.tokenizer_json);
  return source;
}

ModelSource read_inkstone_checkpoint(const fs::path& dir) {
  ModelCheckpointInfo info = read_model_checkpoint_info(dir);
  ModelSource source;
  source.dir = info.dir;
  source.shape = info.shape;
  source.tokenizer_json = std::move(info.tokenizer_json);
  source.tokenizer_sha256 = tokenizer_hash(source.tokenizer_json);
  source.tokenizer = std::move(info.tokenizer);
  source.eos_token_id = source.tokenizer->eot_id();
  return source;
}

}  // namespace

ModelSource read_model_source(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fail("{}: {}; {}", dir.string(), fs::exists(dir, ec) ? "is not a directory" : "no such directory",
         kWhatASourceHolds);
  }
  const fs::path config_path = dir / kModelConfigFile;
  if (!is_file(config_path)) {
    fail("{}: missing, so {} is neither an inkstone checkpoint nor a Hugging Face GPT-2 directory; {}",
         config_path.string(), dir.string(), kWhatASourceHolds);
  }
  const std::string config_name = config_path.string();
  const std::string text = read_whole_file(config_path, "the model's config.json");
  const HFGPT2Config hf = parse_hf_gpt2_config(text, config_name);
  return hf.has_inkstone ? read_inkstone_checkpoint(dir) : read_hugging_face(dir, text, hf, config_name);
}

void check_compatible(const ModelSource& source, int data_vocab, const std::string& data_tokenizer_sha256,
                      const std::string& data_name) {
  if (data_tokenizer_sha256 == source.tokenizer_sha256 && data_vocab == source.shape.vocab) return;
  fail(
      "{}: prepared with another tokenizer than the model {} starts from (data: {} tokens, tokenizer sha256 "
      "{}; model: {} tokens, tokenizer sha256 {}); prepare the data with the model's tokenizer "
      "(data.tokenizer: {})",
      data_name, source.dir.string(), data_vocab, data_tokenizer_sha256, source.shape.vocab,
      source.tokenizer_sha256, tokenizer_spec(source.dir));
}

}  // namespace inkstone
