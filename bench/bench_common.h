// What every benchmark needs: a wall clock, the median of repeated timings, the JSON file they write,
// and a main() that turns an error into one line and exit status 1.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace inkstone::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median, not the mean: one descheduled repeat on a shared machine must not move the figure.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline void write_json(const std::string& path, const nlohmann::json& out) {
  std::ofstream f(path);
  f << out.dump(2) << "\n";
  if (!f) fail("--json {}: cannot write the file; check the directory exists and is writable", path);
}

template <typename Run>
int run_reporting_errors(const char* name, Run&& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", name, e.what());
    return 1;
  }
}

}  // namespace inkstone::bench
