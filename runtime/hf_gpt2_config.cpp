#include "runtime/hf_gpt2_config.h"

#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "runtime/json_limits.h"

namespace inkstone {
namespace {

using nlohmann::json;

// The values inkstone's GPT-2 computes with; a config.json asking for anything else describes
// another model, which would load without error and then produce wrong logits.
constexpr double kLayerNormEpsilon = 1e-5;
static_assert(GPT2::kLayerNormEps == static_cast<float>(kLayerNormEpsilon));

constexpr std::string_view kCannotLoad = "inkstone's GPT-2 cannot compute this model";

class ConfigReader {
 public:
  ConfigReader(const json& doc, const std::string& name) : doc_(doc), name_(name) {}

  int dimension(const char* key) const {
    const json& value = required(key);
    if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > INT_MAX) {
      fail("{}: \"{}\" is {}, not a positive integer; restore the file", name_, key, json_excerpt(value));
    }
    return value.get<int>();
  }

  int64_t token_id(const char* key) const {
    const json* value = optional(key);
    if (!value || value->is_null()) return -1;
    if (!value->is_number_integer() || value->get<int64_t>() < 0) {
      fail("{}: \"{}\" is {}, not a token id; restore the file", name_, key, json_excerpt(*value));
    }
    return value->get<int64_t>();
  }

  // A field inkstone does not vary: when present it must hold `expected` (its Hugging Face default
  // when absent), or `also` where two spellings mean the same computation.
  void require_value(const char* key, const json& expected, const json& also = json()) const {
    const json* value = optional(key);
    if (!value || *value == expected || (!also.is_null() && *value == also)) return;
    fail("{}: \"{}\" is {} but must be {}; {}", name_, key, json_excerpt(*value), expected.dump(),
         kCannotLoad);
  }

  void require_layer_norm_epsilon() const {
    const json* value = optional("layer_norm_epsilon");
    if (!value) return;
    // Written as 1e-05 by Python and by us; a relative 1e-9 tolerates any decimal rendering of it.
    if (!value->is_number() ||
        std::abs(value->get<double>() - kLayerNormEpsilon) > 1e-9 * kLayerNormEpsilon) {
      fail("{}: \"layer_norm_epsilon\" is {} but must be 1e-05; {}", name_, json_excerpt(*value),
           kCannotLoad);
    }
  }

  const json& required(const char* key) const {
    const json* value = optional(key);
    if (!value) fail("{}: has no \"{}\"; a GPT-2 config.json needs it, restore the file", name_, key);
    return *value;
  }

  const json* optional(const char* key) const {
    const auto it = doc_.find(key);
    return it == doc_.end() ? nullptr : &*it;
  }

 private:
  const json& doc_;
  const std::string& name_;
};

void read_inkstone_object(const json& value, const std::string& name, HFGPT2Config& out) {
  if (!value.is_object())
    fail("{}: \"inkstone\" is {}, not an object; restore the file", name, value.type_name());
  const ConfigReader fields(value, name);
  const json& format = fields.required("format");
  if (!format.is_number_integer() || format.get<int64_t>() < 1) {
    fail("{}: inkstone.format is {}, not a format number; restore the file", name, json_excerpt(format));
  }
  if (format.get<int64_t>() != kCheckpointFormat) {
    fail(
        "{}: written in checkpoint format {} by a newer inkstone; this build reads format {}, upgrade "
        "inkstone",
        name, format.get<int64_t>(), kCheckpointFormat);
  }
  const json& run_config = fields.required("run_config");
  const json& sha = fields.required("tokenizer_sha256");
  if (!run_config.is_string())
    fail("{}: inkstone.run_config is {}, not YAML text; restore the file", name, run_config.type_name());
  const bool hex =
      sha.is_string() && sha.get_ref<const std::string&>().size() == 64 &&
      sha.get_ref<const std::string&>().find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex)
    fail("{}: inkstone.tokenizer_sha256 is {}, not 64 hex digits; restore the file", name, json_excerpt(sha));
  out.has_inkstone = true;
  out.run_config_yaml = run_config.get<std::string>();
  out.tokenizer_sha256 = sha.get<std::string>();
}

}  // namespace

std::string hf_gpt2_config_json(const GPT2Shape& shape, int32_t eot_id, const std::string& run_config_yaml,
                                const std::string& tokenizer_sha256, double dropout) {
  // Every GPT2Config field, so transformers needs no defaults. The dropout is the one the model was
  // trained with (train.dropout), on embeddings and residual branches; attention probabilities had none.
  const json doc = {
      {"activation_function", "gelu_new"},
      {"architectures", {"GPT2LMHeadModel"}},
      {"attn_pdrop", 0.0},
      {"bos_token_id", eot_id},
      {"embd_pdrop", dropout},
      {"eos_token_id", eot_id},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", kLayerNormEpsilon},
      {"model_type", "gpt2"},
      {"n_ctx", shape.context},  // what transformers before v4 read instead of n_positions
      {"n_embd", shape.n_embd},
      {"n_head", shape.n_head},
      {"n_inner", nullptr},  // 4 * n_embd
      {"n_layer", shape.n_layer},
      {"n_positions", shape.context},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", dropout},
      {"scale_attn_by_inverse_layer_idx", false},
      {"scale_attn_weights", true},
      {"summary_activation", nullptr},
      {"summary_first_dropout", 0.0},
      {"summary_proj_to_labels", true},
      {"summary_type", "cls_index"},
      {"summary_use_proj", true},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
      {"use_cache", true},
      {"vocab_size", shape.vocab},
      {"inkstone",
       {{"format", kCheckpointFormat},
        {"run_config", run_config_yaml},
        {"tokenizer_sha256", tokenizer_sha256}}},
  };
  return doc.dump(2) + "\n";
}

HFGPT2Config parse_hf_gpt2_config(std::string_view text, const std::string& name) {
  json doc;
  try {
    doc = parse_json_bounded(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); restore the file", name, e.what());
  } catch (const JsonTooDeep& e) {
    fail("{}: not a GPT-2 config.json ({}); restore the file", name, e.what());
  }
  if (!doc.is_object()) fail("{}: is {}, not a JSON object; restore the file", name, doc.type_name());
  const ConfigReader fields(doc, name);
  const json& model_type = fields.required("model_type");
  if (model_type != "gpt2") {
    fail("{}: model_type is {}; inkstone reads GPT-2 models (model_type \"gpt2\") only", name,
         json_excerpt(model_type));
  }

  HFGPT2Config config;
  config.shape = {.n_layer = fields.dimension("n_layer"),
                  .n_head = fields.dimension("n_head"),
                  .n_embd = fields.dimension("n_embd"),
                  .context = fields.dimension("n_positions"),
                  .vocab = fields.dimension("vocab_size")};
  if (config.shape.n_embd % config.shape.n_head != 0) {
    fail("{}: n_embd {} is not divisible by n_head {}; restore the file", name, config.shape.n_embd,
         config.shape.n_head);
  }
  fields.require_value("activation_function", "gelu_new", "gelu_pytorch_tanh");  // both: GELU, tanh form
  fields.require_layer_norm_epsilon();
  fields.require_value("n_inner", nullptr, int64_t{4} * config.shape.n_embd);
  fields.require_value("tie_word_embeddings", true);
  fields.require_value("scale_attn_weights", true);
  fields.require_value("scale_attn_by_inverse_layer_idx", false);
  config.bos_token_id = fields.token_id("bos_token_id");
  config.eos_token_id = fields.token_id("eos_token_id");
  if (const json* inkstone = fields.optional("inkstone")) read_inkstone_object(*inkstone, name, config);
  return config;
}

}  // namespace inkstone
