#include "support/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "runtime/error.h"

namespace inkstone::testing {
namespace fs = std::filesystem;

// A build carried to another machine (scripts/gpu_check.sh --prebuilt) runs its tests from another
// folder: the environment there says where the CLI and the sources are.
std::string cli_path() {
  const char* moved = std::getenv("INKSTONE_CLI");
  return moved && *moved ? moved : INKSTONE_CLI;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "inkstone-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CliProcess::CliProcess(const std::vector<std::string>& args, const fs::path& cwd) {
  const fs::path out_path = io_ / "stdout", err_path = io_ / "stderr";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    dup2(out, 1);
    dup2(err, 2);
    dup2(in, 0);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    std::vector<char*> argv;
    std::string exe = cli_path();
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
}

CliProcess::~CliProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void CliProcess::kill(int signal) {
  ::kill(pid_, signal);
}

CommandResult CliProcess::wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(io_ / "stdout");
  r.err = read_file(io_ / "stderr");
  return r;
}

CommandResult run_cli(const std::vector<std::string>& args, const fs::path& cwd) {
  return CliProcess(args, cwd).wait();
}

fs::path source_dir() {
  const char* moved = std::getenv("INKSTONE_SOURCE_DIR");
  return fs::path(moved && *moved ? moved : INKSTONE_SOURCE_DIR);
}

fs::path shared_dir() {
  fs::path p = source_dir().parent_path() / "shared";
  return fs::is_directory(p) ? p : fs::path{};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<float> random_floats(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = dist(rng);
  return tokens;
}

double rms(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += double{v} * v;
  return std::sqrt(s / static_cast<double>(std::max<size_t>(1, x.size())));
}

double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("rms_diff: sizes differ");
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
  return std::sqrt(s / static_cast<double>(std::max<size_t>(1, a.size())));
}

}  // namespace inkstone::testing
