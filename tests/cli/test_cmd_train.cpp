// inkstone train end to end: the run directory, bit-exact resume, signals, retention and bad input.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone::testing {
namespace {
namespace fs = std::filesystem;

std::vector<nlohmann::json> metrics_of(const fs::path& run_dir) {
  std::vector<nlohmann::json> records;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

// Training loss by step, the last record of a step winning (as a resumed run re-logs steps).
std::map<int64_t, double> losses_of(const fs::path& run_dir) {
  std::map<int64_t, double> losses;
  for (const auto& r : metrics_of(run_dir)) {
    if (r.contains("loss")) losses[r["step"].get<int64_t>()] = r["loss"].get<double>();
  }
  return losses;
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// Every file under `dir` with its bytes: a snapshot to show that nothing was touched.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_file(e.path());
  }
  return files;
}

class TrainCommand : public ::testing::Test {
 protected:
  TempDir tmp;
  TinyRun run = make_tiny_run(tmp.path());
};

TEST_F(TrainCommand, WritesConfigMetricsAndCheckpointsAndLearns) {
  const CommandResult r = run_cli(train_args(run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path out = run.output_dir;
  EXPECT_TRUE(fs::is_regular_file(out / "config.yaml"));
  for (const char* step : {"step_00000004", "step_00000008"}) {
    for (const char* file :
         {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors", "state.json"}) {
      EXPECT_TRUE(fs::is_regular_file(out / step / file)) << step << "/" << file;
    }
  }
  EXPECT_EQ(fs::read_symlink(out / "latest"), "step_00000008");
  const auto losses = losses_of(out);
  ASSERT_EQ(losses.size(), 8u);
  EXPECT_EQ(losses.begin()->first, 1);
  // From ln(257) = 5.55 for an untrained byte model, eight steps at lr 3e-3 must bring the loss down.
  EXPECT_GT(losses.at(1), 5.0);
  EXPECT_LT(losses.at(8), losses.at(1) - 0.5);
  std::vector<int64_t> val_steps;
  for (const auto& record : metrics_of(out)) {
    if (record.contains("val_loss")) val_steps.push_back(record["step"].get<int64_t>());
    if (record.contains("loss")) {
      for (const char* key : {"lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s", "memory_bytes"}) {
        EXPECT_TRUE(record.contains(key)) << key;
      }
      EXPECT_EQ(record["tokens"].get<int64_t>(), record["step"].get<int64_t>() * 4 * 32);
    }
  }
  EXPECT_EQ(val_steps, (std::vector<int64_t>{0, 4, 8}));
}

TEST_F(TrainCommand, ResumedRunGivesBitIdenticalLossesAndWeights) {
  // Dropout masks and accumulated micro-batches are part of what a resume must replay exactly.
  const std::vector<std::string> with{"train.dropout=0.1", "train.grad_accum=2"};
  ASSERT_EQ(run_cli(train_args(run, with)).exit_code, 0);
  const fs::path resumed = tmp / "resumed";
  auto args = train_args(run, with);
  args.insert(args.end(), {"train.resume=" + (run.output_dir / "step_00000004").string(),
                           "output_dir=" + resumed.string()});
  const CommandResult r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos);
  const auto full = losses_of(run.output_dir), part = losses_of(resumed);
  ASSERT_EQ(part.size(), 4u);
  for (const auto& [step, loss] : part) {
    ASSERT_TRUE(full.contains(step));
    EXPECT_EQ(loss, full.at(step)) << "step " << step;  // bit for bit, not approximately
  }
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    EXPECT_EQ(read_file(resumed / "step_00000008" / file), read_file(run.output_dir / "step_00000008" / file))
        << file;
  }
}

TEST_F(TrainCommand, SigtermFinishesTheStepCheckpointsAndResumesExactly) {
  const std::vector<std::string> constant{"train.schedule=constant", "train.checkpoint_interval=100000",
                                          "train.eval_interval=100000"};
  auto args = train_args(run, constant);
  args.push_back("train.max_steps=1000000");
  CliProcess process(args);
  // Wait for a few steps to be logged, then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (losses_of(run.output_dir).size() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  process.kill(SIGTERM);
  const CommandResult r = process.wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resume with: inkstone train"), std::string::npos) << r.err;
  const std::string latest = fs::read_symlink(run.output_dir / "latest").string();
  const int64_t stopped_at = std::stoll(latest.substr(5));
  ASSERT_GE(stopped_at, 5);
  EXPECT_EQ(losses_of(run.output_dir).rbegin()->first, stopped_at);  // the checkpoint holds the last step

  const std::string end = "train.max_steps=" + std::to_string(stopped_at + 4);
  auto resume = train_args(run, constant);
  resume.insert(resume.end(), {end, "train.resume=auto"});
  ASSERT_EQ(run_cli(resume).exit_code, 0);
  auto straight = train_args(run, constant);
  straight.insert(straight.end(), {end, "output_dir=" + (tmp / "straight").string()});
  ASSERT_EQ(run_cli(straight).exit_code, 0);
  const auto resumed = losses_of(run.output_dir), reference = losses_of(tmp / "straight");
  ASSERT_EQ(resumed.size(), reference.size());
  for (const auto& [step, loss] : reference) EXPECT_EQ(resumed.at(step), loss) << "step " << step;
}

TEST_F(TrainCommand, SigintStopsGracefullyAndPrintsTheResumeCommand) {
  const std::string out = "output_dir=" + (tmp / "elsewhere").string();
  CliProcess process(train_args(run, {"train.max_steps=1000000", out}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (losses_of(tmp / "elsewhere").size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  process.kill(SIGINT);
  const CommandResult r = process.wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stopped by SIGINT"), std::string::npos) << r.err;
  // The printed command keeps the overrides, so it continues this run and not the config's default one.
  EXPECT_NE(r.err.find(out + " train.resume=auto"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_symlink(tmp / "elsewhere" / "latest"));
}

TEST_F(TrainCommand, RewindingIntoTheSameRunRewritesItsCheckpointsExactly) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const std::string first = read_file(run.output_dir / "step_00000008" / "model.safetensors");
  // Resuming from step 4 in the same folder writes step 8 again, the checkpoint `latest` names.
  const CommandResult r =
      run_cli(train_args(run, {"train.resume=" + (run.output_dir / "step_00000004").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::read_symlink(run.output_dir / "latest"), "step_00000008");
  EXPECT_EQ(read_file(run.output_dir / "step_00000008" / "model.safetensors"), first);
  for (const auto& e : fs::directory_iterator(run.output_dir)) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".step_")) << e.path();
  }
}

TEST_F(TrainCommand, RefusesASecondProcessOnTheSameRun) {
  CliProcess first(train_args(run, {"train.max_steps=1000000"}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (losses_of(run.output_dir).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const CommandResult second = run_cli(train_args(run, {"train.resume=auto"}));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(count_lines(second.err), 1) << second.err;
  EXPECT_NE(second.err.find("another `inkstone train` is using output_dir"), std::string::npos) << second.err;
}

TEST_F(TrainCommand, RefusesToResumeWithAnotherDataOrder) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const CommandResult r = run_cli(train_args(run, {"train.micro_batch=2", "train.resume=auto"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("train.micro_batch 4, the config says 2"), std::string::npos) << r.err;
}

TEST_F(TrainCommand, RefusesCheckpointsWithoutLatest) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  fs::remove(run.output_dir / "latest");
  const CommandResult r = run_cli(train_args(run, {"train.resume=auto"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("holds checkpoints but no `latest`"), std::string::npos) << r.err;
}

TEST_F(TrainCommand, KeepsTheLastNCheckpoints) {
  ASSERT_EQ(
      run_cli(train_args(run, {"train.checkpoint_interval=1", "train.keep_last=2", "train.max_steps=6"}))
          .exit_code,
      0);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(run.output_dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"config.yaml", "latest", "metrics.jsonl", "step_00000005",
                                             "step_00000006"}));
}

TEST_F(TrainCommand, CheckpointIntervalZeroIsAnError) {
  const CommandResult r = run_cli(train_args(run, {"train.checkpoint_interval=0"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("train.checkpoint_interval"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run.output_dir));
}

TEST_F(TrainCommand, RefusesAnOutputDirectoryHoldingAnotherRun) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const auto before = snapshot(run.output_dir);
  const CommandResult fresh = run_cli(train_args(run));  // resume: none into a used folder
  EXPECT_EQ(fresh.exit_code, 1);
  EXPECT_EQ(count_lines(fresh.err), 1) << fresh.err;
  EXPECT_NE(fresh.err.find("train.resume=auto"), std::string::npos) << fresh.err;
  const CommandResult other = run_cli(train_args(run, {"model.n_embd=64", "train.resume=auto"}));
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(count_lines(other.err), 1) << other.err;
  EXPECT_NE(other.err.find("another model"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("n_embd 32"), std::string::npos) << other.err;
  const fs::path stranger = tmp / "stranger";
  fs::create_directories(stranger);
  write_file(stranger / "notes.txt", "mine");
  const CommandResult foreign =
      run_cli(train_args(run, {"output_dir=" + stranger.string(), "train.resume=auto"}));
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.err.find("holds no inkstone run"), std::string::npos) << foreign.err;
  EXPECT_EQ(read_file(stranger / "notes.txt"), "mine");
  EXPECT_EQ(snapshot(run.output_dir), before);
}

TEST_F(TrainCommand, RefusesToResumeAModelOfAnotherShape) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const auto before = snapshot(run.output_dir);
  const CommandResult r =
      run_cli(train_args(run, {"model.n_layer=3", "train.resume=" + (run.output_dir / "latest").string(),
                               "output_dir=" + (tmp / "other").string()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("its model is n_layer 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("n_layer 3"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "other"));
  EXPECT_EQ(snapshot(run.output_dir), before);
}

// Damages a copy of the last checkpoint with `damage` and checks that resuming from it is one clear
// error naming `file`, and that the copy's other files are untouched.
void expect_resume_refused(const TinyRun& run, const fs::path& tmp, const std::string& file,
                           const std::function<void(const fs::path&)>& damage) {
  static int damaged = 0;
  const std::string n = std::to_string(++damaged);
  const fs::path copy = tmp / ("damaged_" + n), out = tmp / ("out_" + n);
  fs::copy(run.output_dir / "step_00000008", copy, fs::copy_options::recursive);
  damage(copy / file);
  const CommandResult r =
      run_cli(train_args(run, {"train.resume=" + copy.string(), "output_dir=" + out.string()}));
  EXPECT_EQ(r.exit_code, 1) << file;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "a refused resume leaves no folder behind";
}

TEST_F(TrainCommand, RefusesCorruptedCheckpoints) {
  ASSERT_EQ(run_cli(train_args(run)).exit_code, 0);
  const auto flip = [](const fs::path& p, double where) {
    std::string bytes = read_file(p);
    bytes[static_cast<size_t>(static_cast<double>(bytes.size()) * where)] ^= 0x5a;
    write_file(p, bytes);
  };
  const auto truncate = [](const fs::path& p) { fs::resize_file(p, fs::file_size(p) * 2 / 3); };
  expect_resume_refused(run, tmp.path(), "model.safetensors", [&](const fs::path& p) { flip(p, 0.7); });
  expect_resume_refused(run, tmp.path(), "optimizer.safetensors", [&](const fs::path& p) { flip(p, 0.9); });
  expect_resume_refused(run, tmp.path(), "model.safetensors", truncate);
  expect_resume_refused(run, tmp.path(), "optimizer.safetensors", truncate);
  expect_resume_refused(run, tmp.path(), "model.safetensors", [](const fs::path& p) {
    std::string bytes = read_file(p);
    bytes[7] = '\x7f';  // header length in the exabytes
    write_file(p, bytes);
  });
  expect_resume_refused(run, tmp.path(), "state.json",
                        [](const fs::path& p) { write_file(p, "{\"step\": "); });
  expect_resume_refused(run, tmp.path(), "config.json", [&](const fs::path& p) { flip(p, 0.01); });
}

TEST_F(TrainCommand, MissingPreparedDataNamesPrepare) {
  const CommandResult r = run_cli(train_args(run, {"data.dir=" + (tmp / "nowhere").string()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("inkstone prepare"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace inkstone::testing
