// The NCCL communicator with one rank on one GPU: every collective is then the identity, so the tests
// check that each one runs to completion and leaves the buffers as they were (a wrong count, type or
// stream would corrupt or hang them). The rendezvous errors run without a GPU: they come before any
// CUDA call. Label gpu: the rest skips without a device.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/comm_backends.h"
#include "runtime/error.h"
#include "support/expect_contains.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::GpuBuffer;

const LaunchInfo kOneRank{.launcher = LaunchInfo::Launcher::Env,
                          .rank = 0,
                          .world_size = 1,
                          .local_rank = 0,
                          .local_world_size = 1,
                          .run_id = "test"};

CommOptions quick_options() {
  CommOptions options;
  options.timeout_s = 60;  // a hung collective ends the test binary (non-zero) within a minute
  return options;
}

class NcclOneRank : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_GPU();
    backend_ = make_backend("cuda");
    ASSERT_EQ(backend_->kind(), DeviceKind::CUDA);
    comm_ = make_communicator(kOneRank, *backend_, quick_options());
  }
  void TearDown() override { comm_.reset(); }  // before the backend's stream goes

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Communicator> comm_;
};

TEST_F(NcclOneRank, IsTheNcclCommunicatorOfRankZeroOfOne) {
  EXPECT_CONTAINS(comm_->name(), "nccl ");
  EXPECT_CONTAINS(comm_->name(), "one rank");
  EXPECT_EQ(comm_->rank(), 0);
  EXPECT_EQ(comm_->world_size(), 1);
  EXPECT_EQ(comm_->local_rank(), 0);
}

TEST_F(NcclOneRank, SumOfF32AndBf16BuffersLeavesThemUnchanged) {
  // Ragged sizes; the values reach the buffers by a copy queued on the compute stream, which the
  // reduction on the side stream must wait for.
  const std::vector<float> f = testing::random_floats(4099, 1), b = testing::random_floats(1031, 2);
  GpuBuffer f_src(DType::F32, {4099}), f_buf(DType::F32, {4099});
  GpuBuffer b_src(DType::BF16, {1031}), b_buf(DType::BF16, {1031});
  f_src.upload(f);
  b_src.upload(b);
  backend_->fill_zero(f_buf);
  backend_->fill_zero(b_buf);
  backend_->copy(f_buf, f_src);
  backend_->copy(b_buf, b_src);
  comm_->start_all_reduce_sum(f_buf);
  comm_->start_all_reduce_sum(b_buf);
  comm_->wait_reductions();
  backend_->synchronize();
  EXPECT_EQ(f_buf.download(), f);
  EXPECT_EQ(b_buf.download(), testing::round_to_bf16(b));
}

TEST_F(NcclOneRank, WaitWithoutStartedSumsReturnsAndCanRepeat) {
  comm_->wait_reductions();
  GpuBuffer buf(DType::F32, {16});
  buf.upload(testing::random_floats(16, 3));
  comm_->start_all_reduce_sum(buf);
  comm_->wait_reductions();
  comm_->wait_reductions();
  backend_->synchronize();
}

TEST_F(NcclOneRank, SumRejectsIntegerBuffers) {
  GpuBuffer ints(DType::I32, {8});
  EXPECT_THROW(comm_->start_all_reduce_sum(ints), Error);
}

TEST_F(NcclOneRank, AllGatherOfTheOnlyPartIsANoOp) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    const std::vector<float> x = testing::round_to_bf16(testing::random_floats(1000, 4));
    GpuBuffer buf(dtype, {1000});
    buf.upload(x);
    comm_->all_gather(buf, even_parts(1000, 1, 64));
    const std::vector<int64_t> prefix = {0, 999};  // a part need not reach the buffer's end
    comm_->all_gather(buf, prefix);
    backend_->synchronize();
    EXPECT_EQ(buf.download(), x) << dtype_name(dtype);
  }
}

TEST_F(NcclOneRank, AllGatherRejectsOffsetsThatDoNotFit) {
  GpuBuffer buf(DType::F32, {100});
  const std::vector<int64_t> too_few = {0}, past_end = {0, 101}, decreasing = {50, 10};
  EXPECT_THROW(comm_->all_gather(buf, too_few), Error);
  EXPECT_THROW(comm_->all_gather(buf, past_end), Error);
  EXPECT_THROW(comm_->all_gather(buf, decreasing), Error);
}

TEST_F(NcclOneRank, HostValuesKeepTheOnlyRanksValues) {
  const std::vector<double> values = {1.5, -2.25, 1e300, 0.0};
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    std::vector<double> v = values;
    comm_->all_reduce(v, op);
    EXPECT_EQ(v, values);
  }
  // Past the first staging buffer's size (it grows), then small again.
  for (size_t n : {size_t{10000}, size_t{3}}) {
    std::vector<std::byte> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>(i * 7 + 1);
    const std::vector<std::byte> want = bytes;
    comm_->broadcast(bytes, 0);
    EXPECT_EQ(bytes, want);
  }
  std::vector<std::byte> one(1);
  EXPECT_THROW(comm_->broadcast(one, 1), Error);  // there is no rank 1
}

TEST_F(NcclOneRank, ASecondCommunicatorWorksAfterTheFirstIsGone) {
  comm_.reset();
  comm_ = make_communicator(kOneRank, *backend_, quick_options());
  std::vector<double> v = {42.0};
  comm_->all_reduce(v, ReduceOp::Sum);
  EXPECT_EQ(v[0], 42.0);
  const std::vector<float> x = testing::random_floats(333, 5);
  GpuBuffer buf(DType::F32, {333});
  buf.upload(x);
  comm_->start_all_reduce_sum(buf);
  comm_->wait_reductions();
  backend_->synchronize();
  EXPECT_EQ(buf.download(), x);
}

// ---- Rendezvous errors of a torchrun-style launch: thrown before any CUDA call, no GPU needed ----

const LaunchInfo kSecondOfTwo{.launcher = LaunchInfo::Launcher::Env,
                              .rank = 1,
                              .world_size = 2,
                              .local_rank = 1,
                              .local_world_size = 2,
                              .run_id = "test"};

TEST(NcclRendezvous, TwoRanksWithoutARendezvousFolderNameTheConfigKey) {
  const std::string message =
      testing::error_of([] { make_nccl_communicator(kSecondOfTwo, quick_options(), nullptr); });
  EXPECT_CONTAINS(message, "distributed.rendezvous");
}

TEST(NcclRendezvous, AMissingIdFileEndsTheWaitNamingThePathAndTheTimeout) {
  testing::TempDir dir;
  CommOptions options;
  options.timeout_s = 0.25;
  options.rendezvous = dir.path();
  const std::string message =
      testing::error_of([&] { make_nccl_communicator(kSecondOfTwo, options, nullptr); });
  EXPECT_CONTAINS(message, (dir / "nccl_id.test").string());
  EXPECT_CONTAINS(message, "0.25 s");
}

TEST(NcclRendezvous, AnIdFileOfTheWrongSizeIsNamed) {
  testing::TempDir dir;
  testing::write_file(dir / "nccl_id.test", "short");
  CommOptions options;
  options.timeout_s = 5;
  options.rendezvous = dir.path();
  const std::string message =
      testing::error_of([&] { make_nccl_communicator(kSecondOfTwo, options, nullptr); });
  EXPECT_CONTAINS(message, (dir / "nccl_id.test").string());
  EXPECT_CONTAINS(message, "5 bytes");
}

}  // namespace
}  // namespace inkstone
