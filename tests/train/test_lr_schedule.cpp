#include "train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

// lr 1e-3, floor 1e-4, 10 warmup steps, 110 total: decay runs over the 100 steps 10..110.
TrainConfig schedule(const std::string& name) {
  TrainConfig config;
  config.lr = 1e-3;
  config.min_lr_ratio = 0.1;
  config.warmup_steps = 10;
  config.schedule = name;
  return config;
}

constexpr int64_t kTotal = 110;
constexpr double kTol = 1e-15;

TEST(LearningRate, WarmsUpLinearlyFromLrOverWarmup) {
  for (const std::string name : {"cosine", "linear", "constant"}) {
    const TrainConfig config = schedule(name);
    EXPECT_NEAR(learning_rate(config, 0, kTotal), 1e-4, kTol) << name;
    EXPECT_NEAR(learning_rate(config, 4, kTotal), 5e-4, kTol) << name;
    EXPECT_NEAR(learning_rate(config, 9, kTotal), 1e-3, kTol) << name;
    EXPECT_NEAR(learning_rate(config, 10, kTotal), 1e-3, kTol) << name << ": the peak, where decay starts";
  }
}

TEST(LearningRate, CosineDecaysToTheFloor) {
  const TrainConfig config = schedule("cosine");
  EXPECT_NEAR(learning_rate(config, 60, kTotal), 5.5e-4, kTol);  // midpoint: (lr + min_lr) / 2
  // A quarter of the way: 1e-4 + 0.5 * (1 + cos(pi / 4)) * 9e-4.
  EXPECT_NEAR(learning_rate(config, 35, kTotal), 1e-4 + 0.5 * (1 + std::sqrt(0.5)) * 9e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 110, kTotal), 1e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 500, kTotal), 1e-4, kTol) << "past the end it stays at the floor";
}

TEST(LearningRate, LinearDecaysToTheFloor) {
  const TrainConfig config = schedule("linear");
  EXPECT_NEAR(learning_rate(config, 35, kTotal), 1e-3 - 0.25 * 9e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 60, kTotal), 5.5e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 110, kTotal), 1e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 111, kTotal), 1e-4, kTol);
}

TEST(LearningRate, ConstantStaysAtLr) {
  const TrainConfig config = schedule("constant");
  for (const int64_t step : {10, 60, 110, 1000}) EXPECT_EQ(learning_rate(config, step, kTotal), 1e-3);
}

TEST(LearningRate, DecayIsMonotoneAfterWarmup) {
  for (const std::string name : {"cosine", "linear"}) {
    const TrainConfig config = schedule(name);
    for (int64_t step = 11; step <= kTotal; ++step) {
      EXPECT_LT(learning_rate(config, step, kTotal), learning_rate(config, step - 1, kTotal))
          << name << " " << step;
    }
  }
}

TEST(LearningRate, NoWarmupStartsAtLr) {
  TrainConfig config = schedule("cosine");
  config.warmup_steps = 0;
  EXPECT_NEAR(learning_rate(config, 0, 100), 1e-3, kTol);
  EXPECT_NEAR(learning_rate(config, 50, 100), 5.5e-4, kTol);
}

TEST(LearningRate, ARunNoLongerThanItsWarmupSitsAtTheFloorAfterIt) {
  const TrainConfig config = schedule("cosine");
  EXPECT_NEAR(learning_rate(config, 3, 5), 4e-4, kTol);  // warmup is unaffected
  EXPECT_NEAR(learning_rate(config, 10, 10), 1e-4, kTol);
  EXPECT_NEAR(learning_rate(config, 12, 5), 1e-4, kTol);
  EXPECT_TRUE(std::isfinite(learning_rate(config, 10, 10)));
}

TEST(LearningRate, AnUnknownScheduleIsAnInternalError) {
  const TrainConfig config = schedule("step");
  EXPECT_NE(testing::error_of([&] { learning_rate(config, 50, kTotal); }), "");
}

}  // namespace
}  // namespace inkstone
