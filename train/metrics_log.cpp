// metrics.jsonl, written one flushed line per record so that `tail -f` and `inkstone plot` see a
// running job's progress, and read back for plotting.
#include "train/metrics_log.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/read_file.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keys in the order written, for people reading the file

Json number(double value) {
  return std::isfinite(value) ? Json(value) : Json(nullptr);  // JSON has no NaN or Infinity
}

// A crash in the middle of a write leaves a last line without its newline. The record was never
// complete, so drop it: otherwise the next run's first record would be glued onto it, turning one
// lost record into a corrupt line in the middle of the file.
void drop_partial_last_line(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size == 0) return;  // absent or empty: nothing to repair
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // opening for append below reports the problem
  constexpr uintmax_t kChunk = 4096;
  uintmax_t end = size;
  while (end > 0) {
    const uintmax_t begin = end > kChunk ? end - kChunk : 0;
    std::string chunk(end - begin, '\0');
    in.seekg(static_cast<std::streamoff>(begin));
    if (!in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()))) return;
    const size_t newline = chunk.rfind('\n');
    if (newline != std::string::npos) {
      end = begin + newline + 1;
      break;
    }
    end = begin;
  }
  if (end == size) return;
  fs::resize_file(path, end, ec);
  if (ec)
    fail("{}: cannot remove the partial last line ({}); check that the file is writable", path.string(),
         ec.message());
}

// std::nullopt for a null number (a non-finite value when written); an error for anything else that
// is not a number.
std::optional<double> optional_number(const Json& record, const char* key, const fs::path& path, int line) {
  const Json& value = record.at(key);
  if (value.is_null()) return std::nullopt;
  if (!value.is_number()) fail("{}:{}: \"{}\" is not a number", path.string(), line, key);
  return value.get<double>();
}

int64_t step_of(const Json& record, const fs::path& path, int line) {
  const auto it = record.find("step");
  if (it == record.end() || !it->is_number_integer())
    fail("{}:{}: the record has no integer \"step\"", path.string(), line);
  return it->get<int64_t>();
}

}  // namespace

MetricsLog::MetricsLog(const fs::path& path) : path_(path) {
  drop_partial_last_line(path_);
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_)
    fail(
        "{}: cannot open the metrics log for appending ({}); check that the run directory exists and is "
        "writable",
        path_.string(), std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const TrainRecord& r) {
  Json j;
  j["step"] = r.step;
  j["loss"] = number(r.loss);
  j["lr"] = number(r.lr);
  j["grad_norm"] = number(r.grad_norm);
  j["tokens"] = r.tokens;
  j["tokens_per_s"] = number(r.tokens_per_s);
  j["elapsed_s"] = number(r.elapsed_s);
  j["skipped"] = r.skipped;
  if (r.mfu) j["mfu"] = number(*r.mfu);
  if (r.memory_bytes) j["memory_bytes"] = *r.memory_bytes;
  write_line(j.dump());
}

void MetricsLog::write(const ValRecord& r) {
  Json j;
  j["step"] = r.step;
  j["val_loss"] = number(r.val_loss);
  if (r.val_bpb) j["val_bpb"] = number(*r.val_bpb);
  j["elapsed_s"] = number(r.elapsed_s);
  write_line(j.dump());
}

void MetricsLog::write_line(const std::string& line) {
  const bool written = std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
                       std::fputc('\n', file_) != EOF && std::fflush(file_) == 0;
  if (!written)
    fail("{}: cannot write a metrics record ({}); is the disk full?", path_.string(), std::strerror(errno));
}

LossCurves read_loss_curves(const fs::path& path) {
  const std::string text =
      read_whole_file(path, "the metrics log", "is this a run directory written by inkstone train?");

  std::map<int64_t, double> train, val;  // the last record of a step replaces earlier ones
  int line_number = 0;
  for (size_t begin = 0; begin < text.size();) {
    const size_t newline = text.find('\n', begin);
    const bool complete = newline != std::string::npos;
    const std::string_view line(text.data() + begin, (complete ? newline : text.size()) - begin);
    begin = complete ? newline + 1 : text.size();
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;

    Json record;
    try {
      record = parse_json_bounded<Json>(line);
    } catch (const std::exception&) {  // invalid or absurdly nested JSON: not a record either way
      record = Json(nlohmann::json::value_t::discarded);
    }
    if (record.is_discarded() || !record.is_object()) {
      if (!complete) break;  // the last record of a run that crashed while writing it
      fail("{}:{}: not a JSON object; the metrics log is damaged (delete or fix that line)", path.string(),
           line_number);
    }
    if (record.contains("loss")) {
      const int64_t step = step_of(record, path, line_number);
      const std::optional<double> loss = optional_number(record, "loss", path, line_number);
      const auto skipped = record.find("skipped");
      const bool was_skipped = skipped != record.end() && skipped->is_boolean() && skipped->get<bool>();
      if (loss && !was_skipped) {
        train[step] = *loss;
      } else {
        train.erase(step);
      }
    }
    if (record.contains("val_loss")) {
      const int64_t step = step_of(record, path, line_number);
      const std::optional<double> loss = optional_number(record, "val_loss", path, line_number);
      if (loss) {
        val[step] = *loss;
      } else {
        val.erase(step);
      }
    }
  }
  return {{train.begin(), train.end()}, {val.begin(), val.end()}};
}

}  // namespace inkstone
