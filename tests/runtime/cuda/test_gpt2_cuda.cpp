// The whole model on the CUDA backend (fp32 mode) against the CPU backend: logits, loss and every
// parameter gradient on a tiny GPT-2 (with and without dropout), bit-identical repeats, and KV-cache
// decoding on the GPU against the GPU's own full forward pass. Label gpu: skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cuda/require_gpu.h"
#include "runtime/backend.h"
#include "runtime/gpt2.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::random_tokens;
using testing::rms;
using testing::rms_diff;

// Both backends compute in fp32 and differ only in the order of their sums (GEMM tiling, tiled
// attention against the CPU's row loops, block reductions). Each sum of K terms is then off by about
// sqrt(K) * 2^-24 of its terms' scale; through ~20 ops of a 2-layer model with K <= 256 that stays
// well under 1e-5 of a tensor's largest value, the bound the CPU's own golden test uses against
// PyTorch. A defect (a wrong index, a missing accumulate, a stale buffer) shows at 1e-2 .. 1.
constexpr double kRelativeToMaxAbs = 1e-5;

GPT2Shape tiny_shape() {
  // hd = 16 (not a tensor-core size), vocab 97 (padded to 128): the general paths and the padding.
  return {.n_layer = 2, .n_head = 4, .n_embd = 64, .context = 64, .vocab = 97};
}

// hd = 64, GPT-2's: in bf16 the tensor-core attention runs, as in every real model.
GPT2Shape tensor_core_shape() {
  return {.n_layer = 2, .n_head = 2, .n_embd = 128, .context = 64, .vocab = 97};
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, std::abs(double{v}));
  return m;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(double{a[i]} - b[i]));
  return m;
}

// The same initial parameters in both models (initialize() draws on the host).
void copy_parameters(const GPT2& from, GPT2& to) {
  for (const ParamInfo& p : from.parameters()) to.write_parameter(p.name, from.read_parameter(p.name));
}

class GPT2Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_GPU();
    cpu_ = make_backend("cpu");
    gpu_ = make_backend("cuda");
    ASSERT_EQ(gpu_->kind(), DeviceKind::CUDA);
  }
  std::unique_ptr<Backend> cpu_, gpu_;
  static constexpr int B = 3, T = 40;  // T not a multiple of any tile
};

void expect_same_forward_and_backward(GPT2& cpu, GPT2& gpu, int B, int T) {
  const GPT2Shape& s = cpu.shape();
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, s.vocab, 5);
  std::vector<int32_t> targets = random_tokens(static_cast<size_t>(B) * T, s.vocab, 6);
  targets[7] = -1;  // an ignored target
  cpu.zero_grad();
  gpu.zero_grad();
  const float want = cpu.forward(tokens, targets, B, T);
  const float got = gpu.forward(tokens, targets, B, T);
  EXPECT_NEAR(got, want, 1e-6 * want);
  const std::vector<float> want_logits = cpu.read_logits(0, int64_t{B} * T);
  EXPECT_LE(max_abs_diff(gpu.read_logits(0, int64_t{B} * T), want_logits),
            kRelativeToMaxAbs * max_abs(want_logits));
  cpu.backward();
  gpu.backward();
  for (const ParamInfo& p : cpu.parameters()) {
    const std::vector<float> g = cpu.read_gradient(p.name);
    EXPECT_LE(max_abs_diff(gpu.read_gradient(p.name), g), kRelativeToMaxAbs * max_abs(g)) << p.name;
  }
}

TEST_F(GPT2Cuda, LossLogitsAndEveryGradientMatchTheCpu) {
  GPT2 cpu(*cpu_, tiny_shape(), B, T), gpu(*gpu_, tiny_shape(), B, T);
  cpu.initialize(11);
  copy_parameters(cpu, gpu);
  expect_same_forward_and_backward(cpu, gpu, B, T);
}

TEST_F(GPT2Cuda, DropoutDropsTheSameElementsAsTheCpu) {
  GPT2 cpu(*cpu_, tiny_shape(), B, T), gpu(*gpu_, tiny_shape(), B, T);
  cpu.initialize(12);
  copy_parameters(cpu, gpu);
  cpu.set_dropout(0.2f, 99);
  gpu.set_dropout(0.2f, 99);
  expect_same_forward_and_backward(cpu, gpu, B, T);
}

// All gradients of one forward + backward, flattened, and its loss.
std::pair<float, std::vector<float>> one_step(GPT2& model, uint64_t seed, int B, int T) {
  const int vocab = model.shape().vocab;
  model.zero_grad();
  const float loss = model.forward(random_tokens(static_cast<size_t>(B) * T, vocab, seed),
                                   random_tokens(static_cast<size_t>(B) * T, vocab, seed + 1), B, T);
  model.backward();
  std::vector<float> all;
  for (const ParamInfo& p : model.parameters()) {
    const std::vector<float> g = model.read_gradient(p.name);
    all.insert(all.end(), g.begin(), g.end());
  }
  return {loss, all};
}

// Determinism: no float atomics anywhere, so the same step twice gives the same bits, in fp32 and in
// bf16 (where the tensor-core attention runs).
TEST_F(GPT2Cuda, RepeatedStepsAreBitIdentical) {
  for (const auto& [shape, compute] :
       {std::pair{tiny_shape(), DType::F32}, std::pair{tensor_core_shape(), DType::BF16}}) {
    GPT2 model(*gpu_, shape, B, T, {.compute = compute});
    model.initialize(13);
    model.set_dropout(0.1f, 5);
    const auto first = one_step(model, 7, B, T), second = one_step(model, 7, B, T);
    EXPECT_EQ(first.first, second.first) << dtype_name(compute);
    EXPECT_TRUE(first.second == second.second) << dtype_name(compute) << ": gradients differ between runs";
  }
}

// Recomputing GELU and LayerNorm outputs in the backward pass runs the same kernels on the same inputs
// (the matmul's GELU epilogue and the GELU kernel share kernels/cuda/gelu.cuh): identical gradients.
TEST_F(GPT2Cuda, RecomputeGivesBitIdenticalGradients) {
  for (DType compute : {DType::F32, DType::BF16}) {
    GPT2 kept(*gpu_, tensor_core_shape(), B, T, {.compute = compute});
    kept.initialize(21);
    const auto want = one_step(kept, 9, B, T);
    GPT2 recomputed(*gpu_, tensor_core_shape(), B, T,
                    {.compute = compute, .recompute = Recompute::GeluAndLayerNorm});
    recomputed.initialize(21);
    const auto got = one_step(recomputed, 9, B, T);
    EXPECT_EQ(got.first, want.first) << dtype_name(compute);
    EXPECT_TRUE(got.second == want.second) << dtype_name(compute);
  }
}

// bf16 mixed precision on the GPU against the fp32 CPU: the bounds of
// tests/runtime/test_gpt2_mixed_precision.cpp (bf16 storage emulated on the CPU moved gradients by
// 0.3% .. 0.9% of their rms; the GPU rounds at the same points or fewer).
class GPT2CudaBf16 : public GPT2Cuda, public ::testing::WithParamInterface<int> {};

TEST_P(GPT2CudaBf16, LossAndGradientsTrackTheFp32Cpu) {
  const GPT2Shape shape = GetParam() == 16 ? tiny_shape() : tensor_core_shape();
  GPT2 cpu(*cpu_, shape, B, T), gpu(*gpu_, shape, B, T, {.compute = DType::BF16});
  cpu.initialize(15);
  gpu.initialize(15);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, 97, 10);
  const std::vector<int32_t> targets = random_tokens(static_cast<size_t>(B) * T, 97, 11);
  const float want = cpu.forward(tokens, targets, B, T);
  EXPECT_NEAR(gpu.forward(tokens, targets, B, T), want, 1e-2 * want);
  const std::vector<float> want_logits = cpu.read_logits(0, int64_t{B} * T);
  EXPECT_LE(rms_diff(gpu.read_logits(0, int64_t{B} * T), want_logits), 0.05 * rms(want_logits));
  cpu.backward();
  gpu.backward();
  for (const ParamInfo& p : cpu.parameters()) {
    const std::vector<float> g = cpu.read_gradient(p.name);
    EXPECT_LE(rms_diff(gpu.read_gradient(p.name), g), 0.03 * rms(g)) << p.name;
  }
}

// Head dim 16 runs the CUDA-core attention, 64 the tensor-core one.
INSTANTIATE_TEST_SUITE_P(HeadDims, GPT2CudaBf16, ::testing::Values(16, 64),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return "hd" + std::to_string(param.param);
                         });

// KV-cache decoding on the GPU: a prompt prefilled, then tokens decoded one at a time; each new token's
// logits against the GPU's full forward pass over the whole prefix.
class GPT2CudaKvCache : public GPT2Cuda, public ::testing::WithParamInterface<DType> {};

TEST_P(GPT2CudaKvCache, DecodingMatchesTheFullForward) {
  const DType dtype = GetParam();
  const GPT2Shape s = dtype == DType::BF16 ? tensor_core_shape() : tiny_shape();
  GPT2 model(*gpu_, s, 1, s.context, {.compute = dtype});
  model.initialize(14);
  const std::vector<int32_t> sequence = random_tokens(30, s.vocab, 9);
  constexpr int kPrompt = 12;
  model.allocate_kv_cache(1, s.context);
  const std::vector<int32_t> start0 = {0};
  model.forward_cached(std::span(sequence).first(kPrompt), start0, 1, kPrompt);
  std::vector<std::vector<float>> cached = {model.read_logits(kPrompt - 1, 1)};
  for (int p = kPrompt; p < static_cast<int>(sequence.size()); ++p) {
    const std::vector<int32_t> start = {p};
    model.forward_cached(std::span(sequence).subspan(p, 1), start, 1, 1);
    cached.push_back(model.read_logits(0, 1));
  }
  for (size_t i = 0; i < cached.size(); ++i) {
    const int len = kPrompt + static_cast<int>(i);
    model.forward(std::span(sequence).first(len), {}, 1, len);
    const std::vector<float> want = model.read_logits(len - 1, 1);
    // fp32: sum order only (as tests/runtime/test_gpt2_kv_cache.cpp). bf16: both paths round the same
    // activations to bf16, a different sum order can flip a rounding: 2 bf16 ulps of the logits' rms.
    if (dtype == DType::F32)
      EXPECT_LE(max_abs_diff(cached[i], want), 2e-5 * max_abs(want)) << "position " << len - 1;
    else
      EXPECT_LE(rms_diff(cached[i], want), std::ldexp(rms(want), -7)) << "position " << len - 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GPT2CudaKvCache, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& param) {
                           return dtype_name(param.param);
                         });

}  // namespace
}  // namespace inkstone
