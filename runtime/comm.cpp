#include "runtime/comm.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "runtime/backend.h"
#include "runtime/comm_backends.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int env_int(const char* name, const std::string& value) {
  int out = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc() || ptr != end || out < 0) {
    fail("environment variable {}={} is not a non-negative integer; check how the job was launched", name,
         value);
  }
  return out;
}

// rank, size and local rank from three variables of one launcher; the local rank defaults to 0.
LaunchInfo read_launch(LaunchInfo::Launcher launcher, const char* rank, const char* size, const char* local) {
  LaunchInfo info;
  info.launcher = launcher;
  info.rank = env_int(rank, env(rank).value_or("0"));
  info.world_size = env_int(size, *env(size));
  info.local_rank = env_int(local, env(local).value_or("0"));
  if (info.world_size < 1 || info.rank >= info.world_size) {
    fail("the launcher says rank {} of {} ({} / {}); a rank must lie in [0, world size)", info.rank,
         info.world_size, rank, size);
  }
  return info;
}

class SingleCommunicator final : public Communicator {
 public:
  std::string name() const override { return "single process"; }
  bool single() const override { return true; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce(std::span<double>, ReduceOp) override {}
  void broadcast(std::span<std::byte>, int) override {}
  void start_all_reduce_sum(Tensor) override {}
  void wait_reductions() override {}
  void all_gather(Tensor, std::span<const int64_t>) override {}
  void set_timeout(double, const std::string&) override {}
  [[noreturn]] void abort(const std::string& message, int exit_code) override {
    fmt::print(stderr, "inkstone: error: {}\n", message);
    std::fflush(stderr);
    std::_Exit(exit_code);
  }
};

}  // namespace

LaunchInfo detect_launch() {
  using L = LaunchInfo::Launcher;
  // mpirun (OpenMPI), then srun (a job step's tasks), then torchrun-style variables.
  if (env("OMPI_COMM_WORLD_SIZE")) {
    LaunchInfo info =
        read_launch(L::Mpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK");
    if (auto local = env("OMPI_COMM_WORLD_LOCAL_SIZE"))
      info.local_world_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", *local);
    return info;
  }
  if (env("SLURM_STEP_NUM_TASKS") && env("SLURM_PROCID") &&
      env_int("SLURM_STEP_NUM_TASKS", *env("SLURM_STEP_NUM_TASKS")) > 1) {
    LaunchInfo info = read_launch(L::Mpi, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID");
    info.local_world_size = 0;  // SLURM_STEP_TASKS_PER_NODE may differ per node ("2(x3),1")
    return info;
  }
  if (env("WORLD_SIZE")) {
    LaunchInfo info = read_launch(L::Env, "RANK", "WORLD_SIZE", "LOCAL_RANK");
    info.local_world_size =
        env("LOCAL_WORLD_SIZE") ? env_int("LOCAL_WORLD_SIZE", *env("LOCAL_WORLD_SIZE")) : 0;
    info.run_id = env("TORCHELASTIC_RUN_ID")
                      .value_or(env("SLURM_JOB_ID").value_or(env("MASTER_PORT").value_or("default")));
    return info;
  }
  return {};
}

std::unique_ptr<Communicator> make_single_communicator() {
  return std::make_unique<SingleCommunicator>();
}

std::unique_ptr<Communicator> make_communicator(const LaunchInfo& launch, Backend& backend,
                                                const CommOptions& options) {
  const bool gpu = backend.kind() == DeviceKind::CUDA;
  switch (launch.launcher) {
    case LaunchInfo::Launcher::Single:
      return make_single_communicator();
    case LaunchInfo::Launcher::Mpi: {
#if INKSTONE_HAVE_MPI
      auto mpi = make_mpi_communicator(launch, options);
#if INKSTONE_HAVE_CUDA
      if (gpu) return make_nccl_communicator(launch, options, std::move(mpi));
#endif
      return mpi;
#else
      (void)gpu;
      (void)options;
      fail(
          "launched by mpirun / srun as rank {} of {}, but this inkstone was built without MPI; install "
          "libopenmpi-dev and rebuild (-DINKSTONE_MPI=ON)",
          launch.rank, launch.world_size);
#endif
    }
    case LaunchInfo::Launcher::Env:
      if (!gpu) {
        if (launch.world_size == 1) return make_single_communicator();
        fail(
            "a torchrun-style launch (RANK / WORLD_SIZE) runs GPU ranks over NCCL, but this run computes on "
            "the "
            "CPU, and CPU ranks need MPI: launch them with `mpirun -np {} inkstone train ...`",
            launch.world_size);
      }
#if INKSTONE_HAVE_CUDA
      return make_nccl_communicator(launch, options, nullptr);
#endif
      break;
  }
  fail("internal: no communicator for this launch");
}

std::vector<int64_t> even_parts(int64_t elements, int world_size, int64_t align) {
  std::vector<int64_t> offsets(static_cast<size_t>(world_size) + 1, 0);
  const int64_t per_rank = (elements + world_size - 1) / world_size;
  const int64_t step = (per_rank + align - 1) / align * align;
  for (int r = 1; r <= world_size; ++r) offsets[r] = std::min(elements, step * r);
  return offsets;
}

}  // namespace inkstone
