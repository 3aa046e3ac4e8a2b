#include "support/mpi_run.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace inkstone::testing {
namespace fs = std::filesystem;

namespace {

[[maybe_unused]] bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  for (size_t start = 0; start <= dirs.size();) {
    const size_t colon = std::min(dirs.find(':', start), dirs.size());
    if (fs::exists(fs::path(dirs.substr(start, colon - start)) / program)) return true;
    start = colon + 1;
  }
  return false;
}

}  // namespace

std::string mpi_unavailable_reason() {
#if INKSTONE_HAVE_MPI
  return on_path("mpirun") ? "" : "mpirun is not on PATH (scripts/setup.sh installs openmpi-bin)";
#else
  return "this build has no MPI (-DINKSTONE_MPI=OFF, or libopenmpi-dev missing when it was configured)";
#endif
}

namespace {

// Runs mpirun with `argv` (after the program name), capturing the job's output.
CommandResult run_mpirun(std::vector<std::string> argv) {
  TempDir io;
  const fs::path out_path = io / "stdout", err_path = io / "stderr";
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // OpenMPI refuses root unless told twice; CI runs as root.
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = open("/dev/null", O_RDONLY);
    dup2(out, 1);
    dup2(err, 2);
    dup2(in, 0);
    std::vector<char*> c_argv;
    for (auto& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    execvp("mpirun", c_argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

// Oversubscribing the cores is fine for tests; shared memory between the ranks of one machine (vader)
// and loopback TCP are all they need.
const std::vector<std::string> kMpirun = {"mpirun", "--oversubscribe", "--bind-to", "none", "--mca",
                                          "btl",    "self,vader,tcp"};

}  // namespace

CommandResult run_mpi(int ranks, const std::vector<std::string>& args,
                      const std::vector<std::pair<std::string, std::string>>& env) {
  MpiApp app{.ranks = ranks, .args = args, .env = {}};
  for (const auto& [name, value] : env) app.env.push_back(name + "=" + value);
  return run_mpi(std::vector<MpiApp>{app});
}

CommandResult run_mpi(const std::vector<MpiApp>& apps) {
  std::vector<std::string> argv = kMpirun;
  for (size_t i = 0; i < apps.size(); ++i) {
    if (i > 0) argv.push_back(":");
    argv.insert(argv.end(), {"-np", std::to_string(apps[i].ranks)});
    for (const std::string& setting : apps[i].env) argv.insert(argv.end(), {"-x", setting});
    argv.push_back(cli_path());
    argv.insert(argv.end(), apps[i].args.begin(), apps[i].args.end());
  }
  return run_mpirun(std::move(argv));
}

}  // namespace inkstone::testing
