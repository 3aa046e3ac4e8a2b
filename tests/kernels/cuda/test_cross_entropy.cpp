// cuda::cross_entropy against cpu::cross_entropy and the float64 reference: losses and dlogits
// (OVERWRITTEN, scaled by dloss), ignored targets (-1, -100), junk in the padding columns, vocabularies
// that take the 16-byte path and ragged ones that do not (67, 50257 unpadded, a misaligned view),
// dlogits aliasing logits, losses only, a target in the padding (NaN loss), bit-identical repeats,
// rejected arguments. Label gpu: skips without a device.
//
// Tolerances. F32: loss and gradient come from exp(x - max) in fp32 with an argument error of at
// most 2 |x - max| u relative (one FFMA forms x log2 e - max log2 e), a few u per exp, log and divide,
// and a sum over V terms: within ref::fp32_tolerance(V) + 2 * range * u of the exact values as
// max_scaled_error (range = max - min logit, u = 2^-24). The CPU is within the same bound, so the two
// are within twice it. BF16: gpu_test_util.h's rule for dlogits; the losses stay fp32 (computed in
// fp32 from the bf16 logits), so they must meet the F32 bound against float64 on the rounded logits.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::GpuBuffer;
using testing::random_floats;
using testing::round_to_bf16;
namespace ref = testing::ref;

constexpr double kRoundoff = 0x1p-24;
constexpr float kScale = 8.0f;  // logits uniform in [-8, 8)

struct Shape {
  int64_t N, Vp, V;
};
// 1 and 67 (and 50257 unpadded): no 16-byte pitch in either dtype; 16, 384, 128, 50304: both, 128 and
// 50304 with the last real vector partly padding.
const Shape kShapes[] = {{1, 1, 1},    {5, 16, 13},       {8, 384, 300},    {6, 67, 67},
                         {4, 128, 67}, {4, 50304, 50257}, {3, 50257, 50257}};

double f32_bound(int64_t V) {
  return ref::fp32_tolerance(static_cast<double>(V)) + 2 * (2 * kScale) * kRoundoff;
}

std::vector<int32_t> random_targets(int64_t N, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(N);
  for (auto& x : t) x = dist(rng);
  if (N > 2) t[1] = -1, t[2] = -100;  // both ignored
  return t;
}

// Logits with huge values in the padding: they would dominate the softmax if they entered it.
std::vector<float> padded_logits(const Shape& s, uint64_t seed, DType dtype) {
  std::vector<float> logits = random_floats(s.N * s.Vp, seed, kScale);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t v = s.V; v < s.Vp; ++v) logits[n * s.Vp + v] = 1e30f;
  return dtype == DType::BF16 ? round_to_bf16(logits) : logits;
}

struct Result {
  std::vector<float> losses, dlogits;
};

Result cpu_cross_entropy(std::vector<float> logits, std::vector<int32_t> targets, const Shape& s,
                         float dloss) {
  Result r{std::vector<float>(s.N), std::vector<float>(logits.size())};
  cpu::cross_entropy({.losses = Tensor(r.losses.data(), DType::F32, {s.N}),
                      .dlogits = Tensor(r.dlogits.data(), DType::F32, {s.N, s.Vp}),
                      .logits = Tensor(logits.data(), DType::F32, {s.N, s.Vp}),
                      .targets = Tensor(targets.data(), DType::I32, {s.N}),
                      .vocab_size = static_cast<int>(s.V),
                      .dloss = dloss});
  return r;
}

// Runs the kernel with dlogits in its own buffer pre-filled with junk (it must be overwritten), in
// the logits buffer itself (alias), or absent.
enum class Grad { Separate, Alias, None };

Result gpu_cross_entropy(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                         const Shape& s, float dloss, DType dtype, Grad grad) {
  GpuBuffer d_logits(dtype, {s.N, s.Vp}), d_dlogits(dtype, {s.N, s.Vp}), losses(DType::F32, {s.N}),
      d_targets(DType::I32, {s.N});
  d_logits.upload(logits);
  d_dlogits.upload(std::vector<float>(logits.size(), 123.0f));
  losses.upload(std::vector<float>(s.N, -5.0f));
  d_targets.upload_ints(targets);
  const Tensor dlogits = grad == Grad::Separate ? d_dlogits.view()
                         : grad == Grad::Alias  ? d_logits.view()
                                                : Tensor();
  cuda::cross_entropy({.losses = losses,
                       .dlogits = dlogits,
                       .logits = d_logits,
                       .targets = d_targets,
                       .vocab_size = static_cast<int>(s.V),
                       .dloss = dloss});
  Result r{losses.download(), {}};
  if (grad == Grad::Separate) r.dlogits = d_dlogits.download();
  if (grad == Grad::Alias) r.dlogits = d_logits.download();
  if (grad == Grad::None) {
    EXPECT_EQ(d_logits.download(), logits) << "logits must be left alone";
  }
  return r;
}

// Padding columns and ignored rows are exactly zero; ignored rows have loss 0.
void expect_zeros(const Result& r, const std::vector<int32_t>& targets, const Shape& s) {
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t v = s.V; v < s.Vp; ++v) ASSERT_EQ(r.dlogits[n * s.Vp + v], 0.0f) << "padding n=" << n;
    if (targets[n] >= 0) continue;
    EXPECT_EQ(r.losses[n], 0.0f);
    for (int64_t v = 0; v < s.Vp; ++v) ASSERT_EQ(r.dlogits[n * s.Vp + v], 0.0f) << "ignored row n=" << n;
  }
}

void check(const Shape& s, DType dtype, Grad grad, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " N=" << s.N << " Vp=" << s.Vp << " V=" << s.V
                                    << (grad == Grad::Alias ? " aliased" : ""));
  const std::vector<float> logits = padded_logits(s, seed, dtype);
  const std::vector<int32_t> targets = random_targets(s.N, s.V, static_cast<uint32_t>(seed + 1));
  const float dloss = 1.0f / static_cast<float>(s.N);
  const Result got = gpu_cross_entropy(logits, targets, s, dloss, dtype, grad);
  const Result cpu = cpu_cross_entropy(logits, targets, s, dloss);
  const ref::CrossEntropyResult want = ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, dloss);
  const double bound = f32_bound(s.V);
  EXPECT_LT(ref::max_scaled_error(got.losses, want.losses), bound);
  EXPECT_LT(ref::max_scaled_error(got.losses, ref::to_double(cpu.losses)), 2 * bound);
  if (dtype == DType::F32) {
    EXPECT_LT(ref::max_scaled_error(got.dlogits, want.dlogits), bound);
    EXPECT_LT(ref::max_scaled_error(got.dlogits, ref::to_double(cpu.dlogits)), 2 * bound);
  } else {
    testing::expect_bf16_error_within(got.dlogits, round_to_bf16(cpu.dlogits), want.dlogits, "dlogits");
  }
  expect_zeros(got, targets, s);
}

TEST(CudaCrossEntropy, F32MatchesReferenceAndCpu) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) check(s, DType::F32, Grad::Separate, 1);
}

TEST(CudaCrossEntropy, BF16WithinTwicePlainBF16Error) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) check(s, DType::BF16, Grad::Separate, 3);
}

TEST(CudaCrossEntropy, DlogitsMayAliasLogits) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16})
    for (const Shape& s : {Shape{5, 1024, 1000}, Shape{6, 67, 67}, Shape{4, 50304, 50257}})
      check(s, dtype, Grad::Alias, 5);
}

TEST(CudaCrossEntropy, LossesOnlyLeaveLogitsAlone) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape s{6, 50304, 50257};
    const std::vector<float> logits = padded_logits(s, 7, dtype);
    const std::vector<int32_t> targets = random_targets(s.N, s.V, 8);
    const Result got = gpu_cross_entropy(logits, targets, s, 1.0f, dtype, Grad::None);
    const ref::CrossEntropyResult want = ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, 1.0);
    EXPECT_LT(ref::max_scaled_error(got.losses, want.losses), f32_bound(s.V)) << dtype_name(dtype);
    EXPECT_EQ(got.losses[1], 0.0f);
  }
}

// A view one element into its allocation: the 16-byte path must not be taken (misaligned loads fault).
TEST(CudaCrossEntropy, MisalignedViewsTakeTheElementwisePath) {
  REQUIRE_GPU();
  const Shape s{4, 512, 500};
  const std::vector<float> logits = padded_logits(s, 9, DType::F32);
  const std::vector<int32_t> targets = random_targets(s.N, s.V, 10);
  GpuBuffer buf(DType::F32, {s.N * s.Vp + 1}), losses(DType::F32, {s.N}), d_targets(DType::I32, {s.N});
  std::vector<float> shifted(logits);
  shifted.insert(shifted.begin(), 0.0f);
  buf.upload(shifted);
  d_targets.upload_ints(targets);
  const Tensor view(static_cast<float*>(buf.view().data) + 1, DType::F32, {s.N, s.Vp});
  cuda::cross_entropy({.losses = losses,
                       .dlogits = view,
                       .logits = view,
                       .targets = d_targets,
                       .vocab_size = static_cast<int>(s.V),
                       .dloss = 0.5f});
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> dlogits = buf.download();
  dlogits.erase(dlogits.begin());
  const ref::CrossEntropyResult want = ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, 0.5);
  EXPECT_LT(ref::max_scaled_error(losses.download(), want.losses), f32_bound(s.V));
  EXPECT_LT(ref::max_scaled_error(dlogits, want.dlogits), f32_bound(s.V));
}

// Targets live on the device, so the op cannot throw for an id in the padding: the loss is NaN (the
// trainer's bad-step check sees it) and the row's gradient has no one-hot term.
TEST(CudaCrossEntropy, TargetInThePaddingGivesNaNLoss) {
  REQUIRE_GPU();
  const Shape s{2, 128, 100};
  const std::vector<float> logits = padded_logits(s, 11, DType::F32);
  const std::vector<int32_t> targets = {5, 110};
  const Result got = gpu_cross_entropy(logits, targets, s, 1.0f, DType::F32, Grad::Separate);
  EXPECT_FALSE(std::isnan(got.losses[0]));
  EXPECT_TRUE(std::isnan(got.losses[1]));
  for (int64_t v = 0; v < s.V; ++v) ASSERT_GE(got.dlogits[s.Vp + v], 0.0f);  // softmax only
}

TEST(CudaCrossEntropy, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape s{16, 50304, 50257};
    const std::vector<float> logits = padded_logits(s, 12, dtype);
    const std::vector<int32_t> targets = random_targets(s.N, s.V, 13);
    GpuBuffer d_logits(dtype, {s.N, s.Vp}), dlogits(dtype, {s.N, s.Vp}), losses(DType::F32, {s.N}),
        d_targets(DType::I32, {s.N});
    d_logits.upload(logits);
    d_targets.upload_ints(targets);
    std::vector<char> grad[2], loss[2];
    for (int run = 0; run < 2; ++run) {
      cuda::cross_entropy({.losses = losses,
                           .dlogits = dlogits,
                           .logits = d_logits,
                           .targets = d_targets,
                           .vocab_size = static_cast<int>(s.V),
                           .dloss = 0.25f});
      grad[run].resize(dlogits.view().nbytes());
      loss[run].resize(losses.view().nbytes());
      dlogits.download_bytes(grad[run].data());
      losses.download_bytes(loss[run].data());
    }
    EXPECT_EQ(grad[0], grad[1]) << dtype_name(dtype);
    EXPECT_EQ(loss[0], loss[1]) << dtype_name(dtype);
  }
}

TEST(CudaCrossEntropy, RejectsBadArguments) {
  REQUIRE_GPU();
  const Shape s{2, 8, 6};
  GpuBuffer logits(DType::F32, {s.N, s.Vp}), bf16(DType::BF16, {s.N, s.Vp}), losses(DType::F32, {s.N}),
      bf16_losses(DType::BF16, {s.N}), targets(DType::I32, {s.N}), float_targets(DType::F32, {s.N}),
      short_losses(DType::F32, {s.N - 1});
  targets.upload_ints({0, 1});
  auto params = [&] {
    return CrossEntropy{
        .losses = losses, .dlogits = logits, .logits = logits, .targets = targets, .vocab_size = 6};
  };
  EXPECT_NO_THROW(cuda::cross_entropy(params()));
  auto rejects = [&](auto&& mutate) {
    CrossEntropy p = params();
    mutate(p);
    EXPECT_THROW(cuda::cross_entropy(p), std::invalid_argument);
  };
  rejects([](CrossEntropy& p) { p.vocab_size = 9; });
  rejects([](CrossEntropy& p) { p.vocab_size = 0; });
  rejects([&](CrossEntropy& p) { p.dlogits = bf16; });
  rejects([&](CrossEntropy& p) { p.losses = bf16_losses; });
  rejects([&](CrossEntropy& p) { p.losses = short_losses; });
  rejects([&](CrossEntropy& p) { p.targets = float_targets; });
  rejects([&](CrossEntropy& p) { p.logits = Tensor(); });
}

}  // namespace
}  // namespace inkstone
