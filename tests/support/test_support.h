// Helpers shared by the test files: temporary directories, running the real inkstone binary,
// locating ../shared, and seeded random data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace inkstone::testing {

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The inkstone binary built with the tests, started with `args` in `cwd` (default: current dir),
// stdin from /dev/null, stdout and stderr captured. Killed (SIGKILL) on destruction if still running.
class CliProcess {
 public:
  CliProcess(const std::vector<std::string>& args, const std::filesystem::path& cwd = {});
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  void kill(int signal);
  CommandResult wait();  // waits for the exit, then reads the captured output

 private:
  TempDir io_;
  int pid_ = -1;
};

// The inkstone binary under test (INKSTONE_CLI in the environment overrides the build's path).
std::string cli_path();

// Runs the inkstone binary built with the tests, with `args`, in `cwd` (default: current dir).
CommandResult run_cli(const std::vector<std::string>& args, const std::filesystem::path& cwd = {});

// ../shared beside the source tree (corpora, tokenizers); empty path when absent.
std::filesystem::path shared_dir();
std::filesystem::path source_dir();

void write_file(const std::filesystem::path& path, const std::string& bytes);
std::string read_file(const std::filesystem::path& path);

// The message of the inkstone::Error that `f` throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// Uniform in [-scale, scale), deterministic for a seed.
std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f);
// Token ids uniform in [0, vocab), deterministic for a seed.
std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed);

// Root mean square of x, and of a - b (same sizes): the scale of a tensor and of an error.
double rms(const std::vector<float>& x);
double rms_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace inkstone::testing
