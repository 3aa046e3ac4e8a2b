#include "runtime/hf_export.h"

#include <nlohmann/json.hpp>

#include "runtime/durable_file.h"
#include "runtime/hf_gpt2_config.h"
#include "runtime/safetensors.h"
#include "runtime/tokenizer.h"

namespace inkstone {
namespace {

using nlohmann::json;

// The checkpoint's config.json fields, less the "inkstone" object (see hf_export.h).
std::string export_config_json(const GPT2Shape& shape, int32_t eot_id, double dropout) {
  json doc = json::parse(hf_gpt2_config_json(shape, eot_id, "", "", dropout));
  doc.erase("inkstone");
  return doc.dump(2) + "\n";
}

std::string generation_config_json(const GPT2Shape& shape, int32_t eot_id) {
  const json doc = {{"bos_token_id", eot_id},
                    {"eos_token_id", eot_id},
                    {"pad_token_id", eot_id},
                    {"max_length", shape.context}};
  return doc.dump(2) + "\n";
}

// GPT2TokenizerFast rather than the slow GPT2Tokenizer, which would need vocab.json + merges.txt and
// knows only GPT-2's own pre-tokenizer: tokenizer.json says everything, gpt2-cjk's split included.
std::string tokenizer_config_json(const GPT2Shape& shape) {
  const std::string eot(kEndOfText);
  const json doc = {{"tokenizer_class", "GPT2TokenizerFast"},
                    {"bos_token", eot},
                    {"eos_token", eot},
                    {"unk_token", eot},
                    {"add_bos_token", false},
                    {"add_prefix_space", false},
                    {"clean_up_tokenization_spaces", false},
                    {"model_max_length", shape.context}};
  return doc.dump(2) + "\n";
}

}  // namespace

std::string hugging_face_weights(const GPT2& model) {
  SafetensorsWriter weights;
  weights.set_metadata("format", "pt");  // transformers refuses a model.safetensors without it
  for (const ParamInfo& p : model.parameters())
    weights.add_floats(p.name, p.shape, model.read_parameter(p.name));
  return weights.serialize();
}

void write_hugging_face_export(const std::filesystem::path& dir, const GPT2& model,
                               const std::string& tokenizer_json, double dropout) {
  const std::unique_ptr<Tokenizer> tokenizer =
      tokenizer_from_json(tokenizer_json, "the checkpoint's tokenizer");
  const GPT2Shape& shape = model.shape();
  write_file_durably(dir / kModelWeightsFile, hugging_face_weights(model));
  write_file_durably(dir / kModelConfigFile, export_config_json(shape, tokenizer->eot_id(), dropout));
  write_file_durably(dir / kGenerationConfigFile, generation_config_json(shape, tokenizer->eot_id()));
  write_file_durably(dir / kTokenizerFile, tokenizer_json);
  write_file_durably(dir / kTokenizerConfigFile, tokenizer_config_json(shape));
}

}  // namespace inkstone
