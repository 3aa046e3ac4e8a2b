#include "runtime/model_checkpoint.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/checkpoint_manifest.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/hf_gpt2_config.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"
#include "runtime/safetensors.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kWhatACheckpointHolds =
    "an inkstone checkpoint is a directory holding model.safetensors, config.json and tokenizer.json";

bool same_shape(const GPT2Shape& a, const GPT2Shape& b) {
  return a.n_layer == b.n_layer && a.n_head == b.n_head && a.n_embd == b.n_embd && a.context == b.context &&
         a.vocab == b.vocab;
}

std::string describe(const GPT2Shape& s) {
  return fmt::format("n_layer {}, n_head {}, n_embd {}, context {}, vocab {}", s.n_layer, s.n_head, s.n_embd,
                     s.context, s.vocab);
}

std::string shape_text(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// `dir`/`name`, which must exist: otherwise `dir` is not a checkpoint, and the message says so.
fs::path checkpoint_file(const fs::path& dir, const char* name) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fail("{}: {}; {}", dir.string(), fs::exists(dir, ec) ? "is not a directory" : "no such directory",
         kWhatACheckpointHolds);
  }
  fs::path path = dir / name;
  if (!fs::is_regular_file(path, ec)) {
    fail("{}: missing, so {} is not an inkstone checkpoint; {}", path.string(), dir.string(),
         kWhatACheckpointHolds);
  }
  return path;
}

// Hugging Face's attention buffers h.N.attn.bias (the causal mask) and h.N.attn.masked_bias: constants
// that older transformers versions saved with the weights. inkstone's attention needs neither.
bool is_attention_buffer(std::string_view name) {
  if (!name.starts_with("h.")) return false;
  name.remove_prefix(2);
  const size_t digits = name.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos) return false;
  name.remove_prefix(digits);
  return name == ".attn.bias" || name == ".attn.masked_bias";
}

// The file's tensors by the name inkstone gives them: without the "transformer." prefix that
// GPT2LMHeadModel's own state dict carries. Buffers are left out; lm_head.weight is kept for the tie check.
std::map<std::string, const SafeTensorInfo*> tensors_by_parameter_name(const SafetensorsFile& file) {
  constexpr std::string_view kPrefix = "transformer.";
  std::map<std::string, const SafeTensorInfo*> out;
  for (const SafeTensorInfo& t : file.tensors()) {
    std::string name = t.name.starts_with(kPrefix) ? t.name.substr(kPrefix.size()) : t.name;
    if (is_attention_buffer(name)) continue;
    const auto [it, added] = out.emplace(name, &t);
    if (!added) {
      fail("{}: holds both \"{}\" and \"{}\", the same parameter twice; re-export the checkpoint",
           file.name(), it->second->name, t.name);
    }
  }
  return out;
}

const SafeTensorInfo& checked_tensor(const SafetensorsFile& file,
                                     const std::map<std::string, const SafeTensorInfo*>& tensors,
                                     const ParamInfo& param, const GPT2Shape& shape) {
  const auto it = tensors.find(param.name);
  if (it == tensors.end()) {
    fail("{}: tensor \"{}\" is missing; the checkpoint is incomplete or not of this model ({})", file.name(),
         param.name, describe(shape));
  }
  const SafeTensorInfo& t = *it->second;
  if (t.shape != param.shape) {
    fail(
        "{}: tensor \"{}\" has shape {} but this model's is {}; the checkpoint is of another model shape "
        "(this one: {})",
        file.name(), t.name, shape_text(t.shape), shape_text(param.shape), describe(shape));
  }
  if (t.dtype != SafeDType::F32 && t.dtype != SafeDType::F16 && t.dtype != SafeDType::BF16) {
    fail("{}: tensor \"{}\" is {}; model weights must be F32, F16 or BF16", file.name(), t.name,
         safe_dtype_name(t.dtype));
  }
  return t;
}

// inkstone ties the lm head to wte, so a file's own lm_head.weight is only acceptable as a copy of it.
void check_tied_lm_head(const SafetensorsFile& file, const SafeTensorInfo& lm_head,
                        const SafeTensorInfo& wte) {
  const bool same = lm_head.shape == wte.shape &&
                    (lm_head.dtype == SafeDType::F32 || lm_head.dtype == SafeDType::F16 ||
                     lm_head.dtype == SafeDType::BF16) &&
                    file.read_floats(lm_head.name) == file.read_floats(wte.name);
  if (!same) {
    fail(
        "{}: \"{}\" differs from \"{}\"; inkstone ties the output layer to the token embeddings and cannot "
        "load an untied model",
        file.name(), lm_head.name, wte.name);
  }
}

}  // namespace

void write_model_files(const fs::path& dir, const GPT2& model, const RunConfig& config,
                       const std::string& tokenizer_json) {
  const std::unique_ptr<Tokenizer> tokenizer =
      tokenizer_from_json(tokenizer_json, "the tokenizer of the model");
  // Readers resolve the shape from the stored run config and tokenizer: it must come out as this model.
  const GPT2Shape resolved = resolve_shape(config.model, tokenizer->vocab_size());
  if (!same_shape(resolved, model.shape())) {
    fail("cannot write the model to {}: its run config and tokenizer describe {}, but the model is {}",
         dir.string(), describe(resolved), describe(model.shape()));
  }

  SafetensorsWriter weights;
  weights.set_metadata("format", "pt");  // transformers refuses a model.safetensors without it
  for (const ParamInfo& p : model.parameters())
    weights.add_floats(p.name, p.shape, model.read_parameter(p.name));
  write_file_durably(dir / kModelWeightsFile, weights.serialize());
  write_file_durably(dir / kTokenizerFile, tokenizer_json);
  write_file_durably(dir / kModelConfigFile,
                     hf_gpt2_config_json(model.shape(), tokenizer->eot_id(), to_yaml(config),
                                         tokenizer_hash(tokenizer_json), config.train.dropout));
}

ModelCheckpointInfo read_model_checkpoint_info(const fs::path& dir) {
  const fs::path config_path = checkpoint_file(dir, kModelConfigFile);
  const fs::path tokenizer_path = checkpoint_file(dir, kTokenizerFile);
  checkpoint_file(dir, kModelWeightsFile);  // read by load_model_weights, but a missing one is reported now
  const std::string config_name = config_path.string();
  // Training checkpoints carry checksums.sha256: a flipped bit is reported as damage here, before
  // parsing could misread it as another model. Directories from elsewhere have none and load as they are.
  verify_checkpoint_manifest(dir, {kModelWeightsFile, kModelConfigFile, kTokenizerFile});

  const HFGPT2Config hf =
      parse_hf_gpt2_config(read_whole_file(config_path, "the checkpoint's config.json"), config_name);
  if (!hf.has_inkstone) {
    fail(
        "{}: has no \"inkstone\" object, so {} is a Hugging Face export, not an inkstone checkpoint; import "
        "it "
        "with inkstone convert",
        config_name, dir.string());
  }

  ModelCheckpointInfo info;
  info.dir = dir;
  info.tokenizer_json = read_whole_file(tokenizer_path, "the checkpoint's tokenizer.json");
  info.tokenizer = tokenizer_from_json(info.tokenizer_json, tokenizer_path.string());
  const std::string sha = tokenizer_hash(info.tokenizer_json);
  if (sha != hf.tokenizer_sha256) {
    fail(
        "{}: does not match the one this model was trained with (its sha256 is {}, {} records {}); put back "
        "the "
        "original tokenizer.json",
        tokenizer_path.string(), sha, config_name, hf.tokenizer_sha256);
  }
  if (hf.eos_token_id >= 0 && hf.eos_token_id != info.tokenizer->eot_id()) {
    fail("{}: eos_token_id is {} but the tokenizer's <|endoftext|> is {}; restore the file", config_name,
         hf.eos_token_id, info.tokenizer->eot_id());
  }

  const std::string run_config_name = config_name + " run_config";
  info.config = parse_config(hf.run_config_yaml, run_config_name);
  GPT2Shape resolved;
  try {
    resolved = resolve_shape(info.config.model, info.tokenizer->vocab_size());
  } catch (const Error& e) {
    fail("{}: {}", run_config_name, e.what());
  }
  if (!same_shape(resolved, hf.shape)) {
    fail(
        "{}: its GPT-2 fields ({}) disagree with its run_config and tokenizer ({}); the file was edited, "
        "restore "
        "it",
        config_name, describe(hf.shape), describe(resolved));
  }
  info.shape = hf.shape;
  return info;
}

void load_model_weights(const fs::path& dir, GPT2& model) {
  const SafetensorsFile file = SafetensorsFile::read(checkpoint_file(dir, kModelWeightsFile));
  std::map<std::string, const SafeTensorInfo*> tensors = tensors_by_parameter_name(file);

  // Everything is checked before anything is written, so a bad file leaves the model as it was.
  std::vector<const SafeTensorInfo*> sources;
  for (const ParamInfo& p : model.parameters())
    sources.push_back(&checked_tensor(file, tensors, p, model.shape()));
  const SafeTensorInfo& wte = *tensors.at("wte.weight");
  for (const ParamInfo& p : model.parameters()) tensors.erase(p.name);
  if (const auto lm_head = tensors.find("lm_head.weight"); lm_head != tensors.end()) {
    check_tied_lm_head(file, *lm_head->second, wte);
    tensors.erase(lm_head);
  }
  if (!tensors.empty()) {
    fail(
        "{}: unexpected tensor \"{}\", which this model ({}) has no parameter for; the checkpoint is of "
        "another "
        "model",
        file.name(), tensors.begin()->second->name, describe(model.shape()));
  }

  for (size_t i = 0; i < sources.size(); ++i) {
    const ParamInfo& p = model.parameters()[i];
    model.write_parameter(p.name, file.read_floats(sources[i]->name, p.shape));
  }
}

std::unique_ptr<GPT2> load_model(const ModelCheckpointInfo& info, Backend& backend, int max_batch,
                                 int max_seq) {
  auto model = std::make_unique<GPT2>(backend, info.shape, max_batch, max_seq);
  load_model_weights(info.dir, *model);
  return model;
}

}  // namespace inkstone
