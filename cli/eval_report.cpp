#include "cli/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace inkstone::cli {
namespace {

std::string bits_per_byte_text(const PerplexityResult& r) {
  const double bpb = r.bits_per_byte();
  return std::isnan(bpb) ? std::string("n/a") : fmt::format("{:.4f}", bpb);
}

std::string or_dash(const std::optional<int64_t>& n) {
  return n ? std::to_string(*n) : std::string("-");
}

template <class T>
nlohmann::ordered_json optional_json(const std::optional<T>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

// The value every row has, or null when they differ.
template <class Field>
nlohmann::ordered_json common_json(const std::vector<EvalRow>& rows, Field field) {
  const bool same = std::all_of(rows.begin(), rows.end(),
                                [&](const EvalRow& row) { return field(row) == field(rows.front()); });
  return same && !rows.empty() ? nlohmann::ordered_json(field(rows.front()))
                               : nlohmann::ordered_json(nullptr);
}

}  // namespace

std::string eval_summary_line(const PerplexityResult& r) {
  return fmt::format("perplexity {:.4f}  mean NLL {:.4f} nats/token  bits/byte {}  ({} tokens scored)\n",
                     r.perplexity(), r.mean_nll(), bits_per_byte_text(r), r.scored_tokens);
}

EvalTable::EvalTable(const std::vector<std::filesystem::path>& checkpoints) {
  for (const std::filesystem::path& dir : checkpoints) labels_.push_back(dir.filename().string());
  if (std::set<std::string>(labels_.begin(), labels_.end()).size() < labels_.size()) {
    labels_.clear();  // two runs' step_00000100: their names alone would not tell them apart
    for (const std::filesystem::path& dir : checkpoints) labels_.push_back(dir.string());
  }
  width_ = std::string_view("checkpoint").size();
  for (const std::string& label : labels_) width_ = std::max(width_, label.size());
}

std::string EvalTable::header() const {
  return fmt::format("{:<{}}  {:>10}  {:>14}  {:>9}  {:>11}  {:>9}\n", "checkpoint", width_, "step", "tokens",
                     "mean NLL", "perplexity", "bits/byte");
}

std::string EvalTable::row(size_t index, const EvalRow& row) const {
  return fmt::format("{:<{}}  {:>10}  {:>14}  {:>9.4f}  {:>11.4f}  {:>9}\n", labels_.at(index), width_,
                     or_dash(row.step), or_dash(row.tokens), row.result.mean_nll(), row.result.perplexity(),
                     bits_per_byte_text(row.result));
}

std::string eval_json(const std::string& data, const std::vector<EvalRow>& rows) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const EvalRow& row : rows) {
    const double bpb = row.result.bits_per_byte();
    results.push_back({{"checkpoint", row.checkpoint.string()},
                       {"step", optional_json(row.step)},
                       {"tokens", optional_json(row.tokens)},
                       {"window", row.window},
                       {"stride", row.stride},
                       {"mean_nll", row.result.mean_nll()},
                       {"perplexity", row.result.perplexity()},
                       {"bits_per_byte", optional_json(std::isnan(bpb) ? std::optional<double>() : bpb)},
                       {"scored_tokens", row.result.scored_tokens}});
  }
  nlohmann::ordered_json j;
  j["data"] = data;
  j["window"] = common_json(rows, [](const EvalRow& row) { return row.window; });
  j["stride"] = common_json(rows, [](const EvalRow& row) { return row.stride; });
  j["results"] = std::move(results);
  // Paths need not be UTF-8; JSON strings must be.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace inkstone::cli
