// GradientSync's buckets: they tile the gradient buffer, and each is started only once the backward
// pass has written its last gradient (checked on a real backward: what a bucket held when its sum
// started equals the final gradients).
#include "train/gradient_sync.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "runtime/backend.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

// Two ranks' worth of bookkeeping, no sums: records what was started, when, and with which contents.
class RecordingCommunicator final : public Communicator {
 public:
  struct Start {
    int64_t first = 0, count = 0;
    std::vector<float> contents;
  };
  explicit RecordingCommunicator(const float* base) : base_(base) {}
  std::string name() const override { return "recording"; }
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  int local_rank() const override { return 0; }
  void all_reduce(std::span<double>, ReduceOp) override {}
  void broadcast(std::span<std::byte>, int) override {}
  void start_all_reduce_sum(Tensor t) override {
    const float* p = t.as<float>();
    starts.push_back({p - base_, t.numel(), std::vector<float>(p, p + t.numel())});
  }
  void wait_reductions() override { ++waits; }
  void all_gather(Tensor, std::span<const int64_t>) override {}
  void set_timeout(double, const std::string&) override {}
  [[noreturn]] void abort(const std::string& message, int) override { throw std::runtime_error(message); }

  std::vector<Start> starts;
  int waits = 0;

 private:
  const float* base_;
};

constexpr GPT2Shape kShape{.n_layer = 3, .n_head = 2, .n_embd = 16, .context = 8, .vocab = 40};

TEST(GradientSync, BucketsTileTheBufferFromItsEnd) {
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, kShape, 2, 8);
  RecordingCommunicator comm(model.gradient_buffer().as<float>());
  const GradientSync sync(model, comm, /*bucket_mb=*/0.004);  // ~1k floats: several buckets
  const auto& buckets = sync.buckets();
  ASSERT_GT(buckets.size(), 3u);
  int64_t end = model.gradient_buffer().numel();
  int previous_ready = kShape.n_layer;
  for (const GradientSync::Bucket& b : buckets) {
    EXPECT_EQ(b.first + b.count, end);  // contiguous, walking down
    EXPECT_GT(b.count, 0);
    EXPECT_LE(b.ready_after, previous_ready);  // in the order the backward pass finishes them
    previous_ready = b.ready_after;
    end = b.first;
  }
  EXPECT_EQ(end, 0);
  EXPECT_EQ(buckets.back().ready_after, -1);  // wte and wpe: final only at the very end
}

TEST(GradientSync, EachBucketStartsOnlyWhenItsGradientsAreFinal) {
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, kShape, 2, 8);
  model.initialize(5);
  RecordingCommunicator comm(model.gradient_buffer().as<float>());
  GradientSync sync(model, comm, 0.004);
  const std::vector<int32_t> tokens = testing::random_tokens(16, kShape.vocab, 1);
  const std::vector<int32_t> targets = testing::random_tokens(16, kShape.vocab, 2);
  model.zero_grad();
  model.forward(tokens, targets, 2, 8);
  std::vector<int> started_after;  // per layer_done call, how many buckets were started by then
  model.backward(1.0f, [&](int layer) {
    sync.on_layer_done(layer);
    started_after.push_back(static_cast<int>(comm.starts.size()));
  });
  sync.finish();
  EXPECT_EQ(comm.waits, 1);
  ASSERT_EQ(comm.starts.size(), sync.buckets().size());  // every bucket, once
  // Overlap happened: some buckets started before the embeddings' backward finished.
  ASSERT_EQ(started_after.size(), static_cast<size_t>(kShape.n_layer) + 1);
  EXPECT_GT(started_after[0], 0);
  EXPECT_LT(started_after[kShape.n_layer - 1], static_cast<int>(sync.buckets().size()));
  const float* grads = model.gradient_buffer().as<float>();
  for (const RecordingCommunicator::Start& s : comm.starts) {
    EXPECT_EQ(0, std::memcmp(s.contents.data(), grads + s.first, s.contents.size() * sizeof(float)))
        << "bucket at " << s.first << " started before its gradients were final";
  }
}

}  // namespace
}  // namespace inkstone
