#include "runtime/config_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "runtime/model_config.h"

namespace inkstone {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Bounds at_least(double lo) {
  return {lo, kInf};
}
constexpr Bounds within(double lo, double hi) {
  return {lo, hi};
}  // [lo, hi]
constexpr Bounds from_up_to(double lo, double hi) {
  return {lo, hi, false, true};
}  // [lo, hi)
constexpr Bounds between(double lo, double hi) {
  return {lo, hi, true, true};
}  // (lo, hi)

// ref<&TrainConfig::lr> reads and writes config.train.lr: the section follows from the member's class.
template <class Section>
Section& section_of(RunConfig& config);
template <>
RunConfig& section_of<RunConfig>(RunConfig& config) {
  return config;
}
template <>
ModelConfig& section_of<ModelConfig>(RunConfig& config) {
  return config.model;
}
template <>
DataConfig& section_of<DataConfig>(RunConfig& config) {
  return config.data;
}
template <>
TrainConfig& section_of<TrainConfig>(RunConfig& config) {
  return config.train;
}

template <>
DistributedConfig& section_of<DistributedConfig>(RunConfig& config) {
  return config.distributed;
}

template <class T, class Section>
Section class_of(T Section::*);

template <auto Member>
constexpr auto ref = +[](RunConfig& config) -> auto& {
  return section_of<decltype(class_of(Member))>(config).*Member;
};

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const ModelPreset& p : model_presets()) names.emplace_back(p.name);
  return names;
}

constexpr std::string_view kFromPreset = "0 takes it from the preset";
constexpr std::string_view kFromTokenizer = "0 takes it from the tokenizer";
constexpr std::string_view kStepsBetween = "it counts steps between checkpoints";

bool in_section(std::string_view name, std::string_view section) {
  if (section.empty()) return true;
  return name.size() > section.size() && name.starts_with(section) && name[section.size()] == '.';
}

std::string_view last_part(std::string_view name) {
  return name.substr(name.rfind('.') + 1);
}

std::string lowercase(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower;
}

// Optimal string alignment distance: Levenshtein plus swaps of neighbours ("trian" is 1 from "train").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string Bounds::describe() const {
  std::vector<std::string> parts;
  if (lo != -kInf) parts.push_back(fmt::format("{} {}", lo_open ? ">" : ">=", lo));
  if (hi != kInf) parts.push_back(fmt::format("{} {}", hi_open ? "<" : "<=", hi));
  return fmt::format("{}", fmt::join(parts, " and "));
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = {
      {"model.preset", ref<&ModelConfig::preset>, preset_names()},
      {"model.n_layer", ref<&ModelConfig::n_layer>, within(0, 1024), kFromPreset},
      {"model.n_head", ref<&ModelConfig::n_head>, within(0, 1024), kFromPreset},
      {"model.n_embd", ref<&ModelConfig::n_embd>, within(0, 65536), kFromPreset},
      {"model.context", ref<&ModelConfig::context>, within(0, 1 << 20), kFromPreset},
      {"model.vocab", ref<&ModelConfig::vocab>, within(0, 1 << 24), kFromTokenizer},

      {"data.corpus", ref<&DataConfig::corpus>},
      {"data.tokenizer", ref<&DataConfig::tokenizer>},
      {"data.vocab_size", ref<&DataConfig::vocab_size>, within(0, 1 << 24),
       "0 unless data.tokenizer is train"},
      {"data.pre_tokenizer", ref<&DataConfig::pre_tokenizer>, {"gpt2", "gpt2-cjk"}},
      {"data.val_fraction", ref<&DataConfig::val_fraction>, within(0, 0.5)},
      {"data.train_only", ref<&DataConfig::train_only>},
      {"data.decontaminate_chars", ref<&DataConfig::decontaminate_chars>, at_least(0),
       "0 keeps every data.train_only document"},
      {"data.corpus_repeat", ref<&DataConfig::corpus_repeat>, within(1, 1000)},
      {"data.invalid_utf8", ref<&DataConfig::invalid_utf8>, {"error", "replace"}},
      {"data.document_separator", ref<&DataConfig::document_separator>, EmptyText::kAllowed},
      {"data.dir", ref<&DataConfig::dir>},
      {"data.shard_tokens", ref<&DataConfig::shard_tokens>, at_least(1)},

      {"train.micro_batch", ref<&TrainConfig::micro_batch>, at_least(1)},
      {"train.seq_len", ref<&TrainConfig::seq_len>, at_least(1)},
      {"train.grad_accum", ref<&TrainConfig::grad_accum>, at_least(1)},
      {"train.max_steps", ref<&TrainConfig::max_steps>, at_least(1)},
      {"train.max_tokens", ref<&TrainConfig::max_tokens>, at_least(0), "0 means no token limit"},
      {"train.lr", ref<&TrainConfig::lr>, between(0, 1)},
      {"train.min_lr_ratio", ref<&TrainConfig::min_lr_ratio>, within(0, 1)},
      {"train.warmup_steps", ref<&TrainConfig::warmup_steps>, at_least(0)},
      {"train.schedule", ref<&TrainConfig::schedule>, {"cosine", "linear", "constant"}},
      {"train.weight_decay", ref<&TrainConfig::weight_decay>, within(0, 1)},
      {"train.beta1", ref<&TrainConfig::beta1>, from_up_to(0, 1)},
      {"train.beta2", ref<&TrainConfig::beta2>, from_up_to(0, 1)},
      {"train.eps", ref<&TrainConfig::eps>, between(0, 1)},
      {"train.grad_clip", ref<&TrainConfig::grad_clip>, at_least(0), "0 disables clipping"},
      {"train.dropout", ref<&TrainConfig::dropout>, from_up_to(0, 1)},
      {"train.recompute", ref<&TrainConfig::recompute>, {"none", "gelu", "gelu+layernorm"}},
      {"train.seed", ref<&TrainConfig::seed>},
      {"train.eval_interval", ref<&TrainConfig::eval_interval>, at_least(1),
       "it counts steps between evaluations"},
      {"train.eval_steps", ref<&TrainConfig::eval_steps>, at_least(1)},
      {"train.checkpoint_interval", ref<&TrainConfig::checkpoint_interval>, at_least(1), kStepsBetween},
      {"train.keep_last", ref<&TrainConfig::keep_last>, at_least(1), "the number of checkpoints kept"},
      {"train.resume", ref<&TrainConfig::resume>},
      {"train.max_bad_steps", ref<&TrainConfig::max_bad_steps>, at_least(1)},

      {"distributed.hold_fixed", ref<&DistributedConfig::hold_fixed>, {"global_batch", "grad_accum"}},
      {"distributed.zero_stage", ref<&DistributedConfig::zero_stage>, within(0, 1)},
      {"distributed.bucket_mb", ref<&DistributedConfig::bucket_mb>, between(0, 1 << 16)},
      {"distributed.timeout_s", ref<&DistributedConfig::timeout_s>, between(0, 1e6)},
      {"distributed.checkpoint_timeout_s", ref<&DistributedConfig::checkpoint_timeout_s>, between(0, 1e6)},
      {"distributed.rendezvous", ref<&DistributedConfig::rendezvous>, EmptyText::kAllowed},

      {"init_from", ref<&RunConfig::init_from>, EmptyText::kAllowed},
      {"device", ref<&RunConfig::device>, {"cpu", "cuda", "auto"}},
      {"precision", ref<&RunConfig::precision>, {"auto", "fp32", "bf16"}},
      {"output_dir", ref<&RunConfig::output_dir>},
  };
  return fields;
}

const ConfigField* find_config_field(std::string_view name) {
  for (const ConfigField& field : config_fields()) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

bool is_config_section(std::string_view path) {
  if (path.empty()) return true;
  const auto& fields = config_fields();
  return std::any_of(fields.begin(), fields.end(),
                     [&](const ConfigField& f) { return in_section(f.name, path); });
}

std::string config_section_keys(std::string_view section) {
  std::vector<std::string_view> keys;
  const size_t skip = section.empty() ? 0 : section.size() + 1;
  for (const ConfigField& field : config_fields()) {
    if (!in_section(field.name, section)) continue;
    const std::string_view rest = field.name.substr(skip);
    const std::string_view key = rest.substr(0, rest.find('.'));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  return fmt::format("{}", fmt::join(keys, ", "));
}

// Compared by last parts, so "lr" at the top level finds "train.lr" and "train.vocab" finds
// "model.vocab"; among equally close names the one in the same section wins.
std::string closest_name(std::string_view name, const std::vector<std::string>& known) {
  const std::string wanted = lowercase(name);
  const std::string_view leaf = last_part(wanted);
  const std::string_view section = std::string_view(wanted).substr(0, wanted.size() - leaf.size());
  std::string best;
  size_t best_score = std::numeric_limits<size_t>::max();
  for (const std::string& entry : known) {
    const std::string candidate = lowercase(entry);
    const std::string_view candidate_leaf = last_part(candidate);
    const size_t distance = edit_distance(leaf, candidate_leaf);
    const bool contains = leaf.size() >= 4 && (candidate_leaf.find(leaf) != std::string_view::npos ||
                                               leaf.find(candidate_leaf) != std::string_view::npos);
    if (distance > std::max<size_t>(1, leaf.size() / 3) && !contains) continue;
    const bool same_section =
        std::string_view(candidate).substr(0, candidate.size() - candidate_leaf.size()) == section;
    const size_t score = 2 * distance + (same_section ? 0 : 1);
    if (score < best_score) {
      best_score = score;
      best = entry;
    }
  }
  return best;
}

std::string unknown_key_message(std::string_view path) {
  std::vector<std::string> known;
  for (const ConfigField& field : config_fields()) {
    known.emplace_back(field.name);
    for (size_t dot = field.name.find('.'); dot != std::string_view::npos;
         dot = field.name.find('.', dot + 1)) {
      known.emplace_back(field.name.substr(0, dot));  // sections too, so "trian" finds "train"
    }
  }
  const std::string suggestion = closest_name(path, known);
  if (!suggestion.empty() && suggestion != path)
    return fmt::format("unknown key; did you mean {}?", suggestion);
  std::string_view section = path.substr(0, path.size() - last_part(path).size());
  if (!section.empty()) section.remove_suffix(1);
  if (!is_config_section(section)) return "unknown key";
  return fmt::format("unknown key; {} takes {} (configs/example.yaml documents each)",
                     section.empty() ? "the top level" : section, config_section_keys(section));
}

}  // namespace inkstone
