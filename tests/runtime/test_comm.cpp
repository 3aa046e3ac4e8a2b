// Launch detection from the launchers' environments, the single communicator, and even_parts (the
// ZeRO-1 shards and all-gather parts). The MPI and NCCL communicators run in
// tests/cli/test_train_distributed.cpp (mpirun) and tests/runtime/cuda/test_comm_nccl.cpp (GPU).
#include "runtime/comm.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "runtime/backend.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

// Sets the given variables (and clears every launcher variable not given) for one test's lifetime.
class LaunchEnv {
 public:
  explicit LaunchEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
    for (const char* name : kAll) {
      if (const char* value = std::getenv(name)) saved_.emplace_back(name, value);
      unsetenv(name);
    }
    for (const auto& [name, value] : vars) setenv(name.c_str(), value.c_str(), 1);
  }
  ~LaunchEnv() {
    for (const char* name : kAll) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  static constexpr const char* kAll[] = {"OMPI_COMM_WORLD_SIZE",
                                         "OMPI_COMM_WORLD_RANK",
                                         "OMPI_COMM_WORLD_LOCAL_RANK",
                                         "OMPI_COMM_WORLD_LOCAL_SIZE",
                                         "SLURM_STEP_NUM_TASKS",
                                         "SLURM_PROCID",
                                         "SLURM_LOCALID",
                                         "WORLD_SIZE",
                                         "RANK",
                                         "LOCAL_RANK",
                                         "LOCAL_WORLD_SIZE",
                                         "TORCHELASTIC_RUN_ID",
                                         "SLURM_JOB_ID",
                                         "MASTER_PORT"};
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(DetectLaunch, APlainProcessIsSingle) {
  LaunchEnv env({});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Single);
  EXPECT_EQ(info.world_size, 1);
}

TEST(DetectLaunch, OpenMpiVariables) {
  LaunchEnv env({{"OMPI_COMM_WORLD_SIZE", "4"},
                 {"OMPI_COMM_WORLD_RANK", "3"},
                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                 {"WORLD_SIZE", "9"}});  // mpirun's own variables win over torchrun-style ones
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 2);
}

TEST(DetectLaunch, SrunStepsOfSeveralTasks) {
  LaunchEnv env({{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
}

TEST(DetectLaunch, ABatchScriptsSingleTaskIsNotAJob) {
  LaunchEnv env({{"SLURM_STEP_NUM_TASKS", "1"}, {"SLURM_PROCID", "0"}, {"SLURM_JOB_ID", "77"}});
  EXPECT_EQ(detect_launch().launcher, LaunchInfo::Launcher::Single);
}

TEST(DetectLaunch, TorchrunStyleVariables) {
  LaunchEnv env({{"WORLD_SIZE", "2"},
                 {"RANK", "1"},
                 {"LOCAL_RANK", "1"},
                 {"LOCAL_WORLD_SIZE", "2"},
                 {"TORCHELASTIC_RUN_ID", "job7"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Env);
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.world_size, 2);
  EXPECT_EQ(info.local_world_size, 2);
  EXPECT_EQ(info.run_id, "job7");  // names the rendezvous file, so two jobs sharing a folder do not mix
}

TEST(DetectLaunch, BadValuesAreNamed) {
  {
    LaunchEnv env({{"WORLD_SIZE", "2"}, {"RANK", "2"}});
    EXPECT_NE(testing::error_of([] { detect_launch(); }).find("rank 2 of 2 (RANK / WORLD_SIZE)"),
              std::string::npos);
  }
  {
    LaunchEnv env({{"WORLD_SIZE", "two"}, {"RANK", "0"}});
    EXPECT_NE(testing::error_of([] { detect_launch(); }).find("WORLD_SIZE=two is not a non-negative integer"),
              std::string::npos);
  }
}

TEST(SingleCommunicator, EveryCollectiveIsTheIdentity) {
  const auto backend = make_backend("cpu");
  const auto comm = make_communicator(LaunchInfo{}, *backend, CommOptions{});
  EXPECT_TRUE(comm->single());
  EXPECT_EQ(comm->world_size(), 1);
  std::vector<double> values{1.5, -2.0};
  comm->all_reduce(values, ReduceOp::Sum);
  EXPECT_EQ(values, (std::vector<double>{1.5, -2.0}));
  std::vector<float> grads{1, 2, 3};
  comm->start_all_reduce_sum(Tensor(grads.data(), DType::F32, {3}));
  comm->wait_reductions();
  EXPECT_EQ(grads, (std::vector<float>{1, 2, 3}));
}

TEST(EvenParts, TileTheBufferOnAlignedBoundaries) {
  for (const auto& [elements, world, align] : std::vector<std::tuple<int64_t, int, int64_t>>{
           {1000, 2, 64}, {1000, 3, 64}, {7, 4, 64}, {0, 2, 64}, {124'439'808, 8, 64}, {130, 2, 1}}) {
    const std::vector<int64_t> parts = even_parts(elements, world, align);
    ASSERT_EQ(parts.size(), static_cast<size_t>(world) + 1);
    EXPECT_EQ(parts.front(), 0);
    EXPECT_EQ(parts.back(), elements);
    for (int r = 0; r < world; ++r) {
      EXPECT_LE(parts[r], parts[r + 1]);
      if (parts[r + 1] != elements) {
        EXPECT_EQ(parts[r + 1] % align, 0) << elements << " / " << world;
      }
    }
    // No rank holds more than one alignment unit beyond an even share.
    for (int r = 0; r < world; ++r)
      EXPECT_LE(parts[r + 1] - parts[r], (elements + world - 1) / world + align);
  }
}

}  // namespace
}  // namespace inkstone
