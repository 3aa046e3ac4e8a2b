// Data-parallel training end to end: `mpirun -np 2 inkstone train` on the CPU against one process.
//
// Two ranks see the same windows per step as one process with twice the batch (rank r takes every
// second window of the epoch's order), and their summed gradients are that batch's gradient; only
// the order of the floating-point sums differs. Tolerance: after 8 AdamW steps at lr 3e-3 the
// parameters agree within 2e-5 absolute (|weights| ~ 0.02-1; measured worst 2.9e-6), and
// the logged losses within 1e-5 relative.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/safetensors.h"
#include "support/expect_contains.h"
#include "support/mpi_run.h"
#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;
using testing::CommandResult;
using testing::TempDir;
using testing::TinyRun;

#define SKIP_WITHOUT_MPI()                                                        \
  do {                                                                            \
    const std::string reason = testing::mpi_unavailable_reason();                 \
    if (!reason.empty()) GTEST_SKIP() << "multi-rank tests need MPI: " << reason; \
  } while (0)

std::map<std::string, std::vector<float>> weights_of(const fs::path& checkpoint, const std::string& file) {
  const SafetensorsFile f = SafetensorsFile::read(checkpoint / file);
  std::map<std::string, std::vector<float>> out;
  for (const SafeTensorInfo& t : f.tensors()) out[t.name] = f.read_floats(t.name, t.shape);
  return out;
}

double max_abs_diff(const std::map<std::string, std::vector<float>>& a,
                    const std::map<std::string, std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, x] : a) {
    const std::vector<float>& y = b.at(name);
    EXPECT_EQ(x.size(), y.size()) << name;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      worst = std::max(worst, std::abs(double(x[i]) - double(y[i])));
    }
  }
  return worst;
}

// The "loss" of every training line of metrics.jsonl, in order.
std::vector<double> losses_of(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("\"loss\":");
    if (at == std::string::npos || line.find("\"val_loss\"") != std::string::npos) continue;
    const std::string value = line.substr(at + 7);
    // A skipped step's loss is not a JSON number (null): NaN here.
    losses.push_back(value.starts_with("null") ? std::nan("") : std::stod(value));
  }
  return losses;
}

class DistributedTrain : public ::testing::Test {
 protected:
  void SetUp() override { run_ = testing::make_tiny_run(dir_.path()); }

  // One process with `overrides` into output folder `name`.
  fs::path single(const std::string& name, std::vector<std::string> overrides) {
    overrides.push_back("output_dir=" + (dir_ / name).string());
    const CommandResult r = testing::run_cli(testing::train_args(run_, overrides));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir_ / name;
  }
  // `ranks` processes under mpirun.
  CommandResult job(int ranks, const std::string& name, std::vector<std::string> overrides,
                    const std::vector<std::pair<std::string, std::string>>& env = {}) {
    overrides.push_back("output_dir=" + (dir_ / name).string());
    return testing::run_mpi(ranks, testing::train_args(run_, overrides), env);
  }
  CommandResult signal_while_training(const std::string& name, std::vector<std::string> extra,
                                      const std::function<pid_t(const std::string&)>& target, int signal);
  fs::path two_ranks(const std::string& name, std::vector<std::string> overrides) {
    const CommandResult r = job(2, name, std::move(overrides));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir_ / name;
  }

  TempDir dir_;
  TinyRun run_;
};

TEST_F(DistributedTrain, TwoRanksMatchOneProcessAccumulatingTwoMicroBatches) {
  SKIP_WITHOUT_MPI();
  // The same config: grad_accum 2 of one process becomes 1 per rank (hold_fixed: global_batch).
  const fs::path one = single("one", {"train.grad_accum=2"});
  const CommandResult r = job(2, "two", {"train.grad_accum=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path two = dir_ / "two";
  // The log states the three factors of the global batch.
  EXPECT_NE(r.err.find("global batch 4 x 1 x 2 ranks = 8 sequences, 256 tokens per step"), std::string::npos)
      << r.err;
  const double diff = max_abs_diff(weights_of(one / "latest", "model.safetensors"),
                                   weights_of(two / "latest", "model.safetensors"));
  EXPECT_LT(diff, 2e-5);
  EXPECT_GT(diff, 0.0) << "bit-identical: the sums' order should differ; is the second rank idle?";
  const std::vector<double> a = losses_of(one), b = losses_of(two);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * a[i]) << "step " << i + 1;
  std::printf("2 ranks vs 1 process accumulating 2: max |weight difference| %.3g after 8 steps\n", diff);
}

// mpirun -np 1 runs every collective of the data-parallel path (one rank's sums are the identity):
// the training must be the plain process's, bit for bit, with and without ZeRO-1.
TEST_F(DistributedTrain, OneMpiRankTrainsBitIdenticallyToThePlainProcess) {
  SKIP_WITHOUT_MPI();
  const fs::path plain = single("plain", {"train.grad_accum=2"});
  for (const std::string zero : {"0", "1"}) {
    const CommandResult r = job(1, "mpi" + zero, {"train.grad_accum=2", "distributed.zero_stage=" + zero});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("data parallel: 1 rank (mpi"), std::string::npos) << r.err;
    const fs::path out = dir_ / ("mpi" + zero);
    EXPECT_EQ(losses_of(out), losses_of(plain)) << "zero_stage " << zero;
    for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
      EXPECT_EQ(max_abs_diff(weights_of(plain / "latest", file), weights_of(out / "latest", file)), 0.0)
          << file << ", zero_stage " << zero;
    }
  }
}

TEST_F(DistributedTrain, TwoRanksMatchOneProcessWithTwiceTheMicroBatch) {
  SKIP_WITHOUT_MPI();
  const fs::path one = single("one", {"train.micro_batch=8"});
  const fs::path two = two_ranks("two", {"distributed.hold_fixed=grad_accum"});  // micro_batch 4 each
  EXPECT_LT(max_abs_diff(weights_of(one / "latest", "model.safetensors"),
                         weights_of(two / "latest", "model.safetensors")),
            2e-5);
}

TEST_F(DistributedTrain, ZeroOneGivesTheSameWeightsAndMomentsBitForBit) {
  SKIP_WITHOUT_MPI();
  // Every rank holds the same summed gradients; ZeRO-1 only changes who applies AdamW to which element.
  const fs::path plain = two_ranks("plain", {"train.grad_accum=2"});
  const fs::path zero = two_ranks("zero", {"train.grad_accum=2", "distributed.zero_stage=1"});
  EXPECT_EQ(max_abs_diff(weights_of(plain / "latest", "model.safetensors"),
                         weights_of(zero / "latest", "model.safetensors")),
            0.0);
  EXPECT_EQ(max_abs_diff(weights_of(plain / "latest", "optimizer.safetensors"),
                         weights_of(zero / "latest", "optimizer.safetensors")),
            0.0);
  EXPECT_EQ(losses_of(plain), losses_of(zero));
}

TEST_F(DistributedTrain, AnInterruptedTwoRankRunResumesBitExactly) {
  SKIP_WITHOUT_MPI();
  for (const std::string zero : {"0", "1"}) {
    const std::vector<std::string> config = {"train.grad_accum=2", "distributed.zero_stage=" + zero};
    const fs::path whole = two_ranks("whole" + zero, config);
    // Rank 1 fails before step 6 (0-based 5), after the checkpoint of step 4: the job ends, then resumes.
    const CommandResult broken = job(2, "broken" + zero, config, {{"INKSTONE_TEST_FAIL", "1:5:exit"}});
    ASSERT_NE(broken.exit_code, 0) << broken.err;
    EXPECT_EQ(fs::read_symlink(dir_ / ("broken" + zero) / "latest"), "step_00000004");
    std::vector<std::string> resume = config;
    resume.push_back("train.resume=auto");
    const fs::path resumed = two_ranks("broken" + zero, resume);
    EXPECT_EQ(max_abs_diff(weights_of(whole / "latest", "model.safetensors"),
                           weights_of(resumed / "latest", "model.safetensors")),
              0.0)
        << "zero_stage " << zero;
    EXPECT_EQ(max_abs_diff(weights_of(whole / "latest", "optimizer.safetensors"),
                           weights_of(resumed / "latest", "optimizer.safetensors")),
              0.0)
        << "zero_stage " << zero;
    // The resumed losses (steps 5-8) are the uninterrupted run's.
    const std::vector<double> a = losses_of(whole), b = losses_of(resumed);
    ASSERT_GE(b.size(), 4u);
    EXPECT_EQ(std::vector<double>(b.end() - 4, b.end()), std::vector<double>(a.end() - 4, a.end()));
  }
}

TEST_F(DistributedTrain, ARankThatFailsEndsTheJobWithItsMessage) {
  SKIP_WITHOUT_MPI();
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = job(2, "fail", {"train.grad_accum=2", "distributed.timeout_s=60"},
                              {{"INKSTONE_TEST_FAIL", "1:3:exit"}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("inkstone: error: rank 1: a failure planted by INKSTONE_TEST_FAIL at step 3"),
            std::string::npos)
      << r.err;
  EXPECT_LT(seconds, 30.0) << "the job should end at once, not wait for the 60 s timeout";
}

TEST_F(DistributedTrain, ARankThatHangsEndsTheJobAfterTheTimeout) {
  SKIP_WITHOUT_MPI();
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r =
      job(2, "hang", {"train.grad_accum=2", "distributed.timeout_s=3"}, {{"INKSTONE_TEST_FAIL", "1:3:hang"}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("inkstone: error: rank 0:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did not complete within 3 s (distributed.timeout_s)"), std::string::npos) << r.err;
  EXPECT_LT(seconds, 40.0);
}

// Ranks whose thread counts differ (uneven nodes) split their reductions differently: the job's start
// and end checks must compare the weights' bytes (a sum of squares would differ in its last bits and
// refuse to start), and every rank applies rank 0's gradient norm.
TEST_F(DistributedTrain, RanksWithDifferentThreadCountsStayIdentical) {
  SKIP_WITHOUT_MPI();
  const std::vector<std::string> args = testing::train_args(
      run_, {"train.grad_accum=2", "train.grad_clip=1e-3", "output_dir=" + (dir_ / "threads").string()});
  const CommandResult r = testing::run_mpi({{.ranks = 1, .args = args, .env = {"OMP_NUM_THREADS=1"}},
                                            {.ranks = 1, .args = args, .env = {"OMP_NUM_THREADS=2"}}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses_of(dir_ / "threads").size(), 8u);
}

TEST_F(DistributedTrain, ANaNOnOneRankSkipsTheStepOnEveryRank) {
  SKIP_WITHOUT_MPI();
  const CommandResult r = job(2, "nan", {"train.grad_accum=2"}, {{"INKSTONE_TEST_FAIL", "1:2:nan"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;  // the run ends, and the ranks' final weights agree (checked by it)
  EXPECT_NE(r.err.find("step 3: the loss is nan; step skipped (1 in a row, 1 in this run)"),
            std::string::npos)
      << r.err;
  const std::vector<double> losses = losses_of(dir_ / "nan");
  ASSERT_EQ(losses.size(), 8u);
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(std::isnan(losses[i]), i == 2) << "step " << i + 1;
}

// The pid of a process whose command line mentions `marker` and that `wanted(cmdline, environ)`
// accepts, or -1.
pid_t find_pid(const std::string& marker,
               const std::function<bool(const std::string&, const std::string&)>& wanted) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = testing::read_file(entry.path() / "cmdline");
    if (cmdline.find(marker) == std::string::npos) continue;
    if (wanted(cmdline, testing::read_file(entry.path() / "environ")))
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

bool is_mpirun(const std::string& cmdline) {
  return cmdline.starts_with(std::string("mpirun") + '\0');
}

pid_t rank_pid(const std::string& marker, int rank) {
  return find_pid(marker, [rank](const std::string& cmdline, const std::string& environ) {
    return !is_mpirun(cmdline) &&
           environ.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos;
  });
}

pid_t mpirun_pid(const std::string& marker) {
  return find_pid(marker, [](const std::string& cmdline, const std::string&) { return is_mpirun(cmdline); });
}

// A 2-rank job that would train for ever: once it has logged 3 steps, `signal` goes to the process
// `target` finds (given the run folder); returns the job's result.
CommandResult DistributedTrain::signal_while_training(const std::string& name, std::vector<std::string> extra,
                                                      const std::function<pid_t(const std::string&)>& target,
                                                      int signal) {
  const fs::path out = dir_ / name;
  extra.insert(extra.end(), {"train.grad_accum=2", "train.max_steps=1000000", "train.eval_interval=1000000",
                             "train.checkpoint_interval=1000000"});
  CommandResult r;
  std::thread job_thread([&] { r = job(2, name, extra); });
  pid_t pid = -1;
  for (int i = 0; i < 600 && (pid < 0 || losses_of(out).size() < 3); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (pid < 0) pid = target(out.string());
  }
  if (pid > 0) ::kill(pid, signal);
  job_thread.join();
  EXPECT_GT(pid, 0) << "the process to signal never appeared";
  return r;
}

TEST_F(DistributedTrain, ASignalToOneRankStopsEveryRankAtTheSameStepWithACheckpoint) {
  SKIP_WITHOUT_MPI();
  // SIGTERM to rank 1 only: its decision must become every rank's.
  const CommandResult r = signal_while_training(
      "signal", {}, [](const std::string& out) { return rank_pid(out, 1); }, SIGTERM);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stopped by SIGTERM after step"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("resume with: mpirun -np 2 inkstone train"), std::string::npos) << r.err;
  const size_t steps = losses_of(dir_ / "signal").size();
  EXPECT_EQ(fs::read_symlink(dir_ / "signal" / "latest"), fmt::format("step_{:08d}", steps));
  EXPECT_LT(steps, 1000000u);
}

TEST_F(DistributedTrain, SigUsr1ToMpirunStopsTheJobCleanly) {
  SKIP_WITHOUT_MPI();
  const CommandResult r = signal_while_training("usr1", {}, mpirun_pid, SIGUSR1);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stopped by SIGUSR1 after step"), std::string::npos) << r.err;
  EXPECT_EQ(fs::read_symlink(dir_ / "usr1" / "latest"),
            fmt::format("step_{:08d}", losses_of(dir_ / "usr1").size()));
}

TEST_F(DistributedTrain, ARankKilledMidRunEndsTheJob) {
  SKIP_WITHOUT_MPI();
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = signal_while_training(
      "killed", {"distributed.timeout_s=20"}, [](const std::string& out) { return rank_pid(out, 1); },
      SIGKILL);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_LT(seconds, 40.0) << "the job must end, within the 20 s timeout at the latest";
}

TEST_F(DistributedTrain, CpuRanksUnderATorchrunStyleLaunchAreToldToUseMpirun) {
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "2", 1);
  const CommandResult r = testing::run_cli(testing::train_args(run_, {"train.grad_accum=2"}));
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("CPU ranks need MPI"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mpirun -np 2 inkstone train"), std::string::npos) << r.err;
}

TEST_F(DistributedTrain, ResumingWithAnotherNumberOfRanksIsRefused) {
  SKIP_WITHOUT_MPI();
  const fs::path two = two_ranks("two", {"train.grad_accum=2"});
  const CommandResult r = testing::run_cli(testing::train_args(
      run_, {"train.grad_accum=2", "output_dir=" + two.string(), "train.resume=auto", "train.max_steps=12"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("it was trained by 2 processes, this run has 1; resume with the same number"),
            std::string::npos)
      << r.err;
}

TEST_F(DistributedTrain, AnAccumulationTheRanksCannotShareIsRefused) {
  SKIP_WITHOUT_MPI();
  const CommandResult r = job(2, "odd", {"train.grad_accum=3"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("train.grad_accum 3 cannot be shared by 2 ranks"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "odd" / "metrics.jsonl"));
}

}  // namespace
}  // namespace inkstone
