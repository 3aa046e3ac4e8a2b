// The tensor-core attention (kernels/cuda/attention_{forward,backward}_mma.cu), called directly (not
// through the dispatcher), against a float64 causal attention computed here on the same bf16-rounded
// inputs. Judged by gpu_test_util.h's rule: the kernel's error may be at most twice that of a plain
// bf16 implementation (cpu::attention_* in fp32 on the rounded inputs, outputs rounded to bf16),
// plus a floor of 2^-6 of the output's rms. lse is fp32 in both and gets a stated bound instead.
// Shapes: B=2, NH=3, T in {1, 63, 64, 200, 1024} (one row, one ragged tile, one exact tile, ragged
// multi-tile, GPT-2's context), head dims 64 and 128. Also: the += contract on a non-zero dqkv,
// no write past the end of any output, bit-identical repeated runs, and the launchers' checks.
// Label gpu: skips without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::expect_bf16_error_within;
using testing::GpuBuffer;
using testing::random_floats;
using testing::round_to_bf16;

constexpr int64_t kB = 2, kNH = 3;
// q and k of scale 2 give peaked softmax rows (scaled scores of a few units), not near-uniform ones.
constexpr float kInputScale = 2.0f;
// Elements past the end of every output, holding a sentinel that must survive each call.
constexpr int64_t kGuard = 256;
constexpr float kSentinel = 12288.0f;  // 1.5 * 2^13: exact in bf16

struct Dims {
  int64_t T, hd;
  int64_t C() const { return kNH * hd; }
  int64_t qkv_numel() const { return kB * T * 3 * C(); }
  int64_t out_numel() const { return kB * T * C(); }
  int64_t lse_numel() const { return kB * kNH * T; }
};

std::string describe(const Dims& d) {
  return "T=" + std::to_string(d.T) + " hd=" + std::to_string(d.hd);
}

// ---- float64 reference ------------------------------------------------------------------------------

struct Reference {
  std::vector<double> out, lse, grad;  // grad: d(sum out * dout) / d qkv, [B,T,3C]
};

// Causal softmax(Q K^T / sqrt(hd)) V per (batch, head), and its gradient through the full P matrix
// with the exact D_i = sum_j P_ij dP_ij.
Reference reference(const std::vector<float>& qkv, const std::vector<float>& dout, const Dims& d) {
  const int64_t T = d.T, hd = d.hd, C = d.C();
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Reference r{std::vector<double>(d.out_numel()), std::vector<double>(d.lse_numel()),
              std::vector<double>(d.qkv_numel(), 0.0)};
  std::vector<double> q(T * hd), k(T * hd), v(T * hd), g(T * hd), P(T * T), dq(T * hd), dk(T * hd),
      dv(T * hd);
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t h = 0; h < kNH; ++h) {
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < hd; ++c) {
          const int64_t row = (b * T + t) * 3 * C + h * hd + c;
          q[t * hd + c] = qkv[row];
          k[t * hd + c] = qkv[row + C];
          v[t * hd + c] = qkv[row + 2 * C];
          g[t * hd + c] = dout[(b * T + t) * C + h * hd + c];
        }
      std::fill(dq.begin(), dq.end(), 0.0);
      std::fill(dk.begin(), dk.end(), 0.0);
      std::fill(dv.begin(), dv.end(), 0.0);
      for (int64_t i = 0; i < T; ++i) {
        double* p = &P[i * T];
        double max = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0;
          for (int64_t c = 0; c < hd; ++c) s += q[i * hd + c] * k[j * hd + c];
          p[j] = s * scale;
          max = std::max(max, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(p[j] - max);
        const double lse = max + std::log(sum);
        r.lse[(b * kNH + h) * T + i] = lse;
        double* o = &r.out[(b * T + i) * C + h * hd];
        std::fill(o, o + hd, 0.0);
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = std::exp(p[j] - lse);
          for (int64_t c = 0; c < hd; ++c) o[c] += p[j] * v[j * hd + c];
        }
        // Backward for row i: dP_ij = g_i . v_j, dS_ij = P_ij (dP_ij - D_i).
        std::vector<double> dp(i + 1);
        double D = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0;
          for (int64_t c = 0; c < hd; ++c) s += g[i * hd + c] * v[j * hd + c];
          dp[j] = s;
          D += p[j] * s;
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - D) * scale;
          for (int64_t c = 0; c < hd; ++c) {
            dq[i * hd + c] += ds * k[j * hd + c];
            dk[j * hd + c] += ds * q[i * hd + c];
            dv[j * hd + c] += p[j] * g[i * hd + c];
          }
        }
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < hd; ++c) {
          const int64_t row = (b * T + t) * 3 * C + h * hd + c;
          r.grad[row] = dq[t * hd + c];
          r.grad[row + C] = dk[t * hd + c];
          r.grad[row + 2 * C] = dv[t * hd + c];
        }
    }
  return r;
}

// ---- The plain bf16 implementation: cpu::attention_* on the rounded inputs ------------------------------

struct Plain {
  std::vector<float> out, lse;  // out rounded to bf16 (what the GPU backward is given), lse fp32
};

Plain plain_forward(std::vector<float> qkv, const Dims& d) {
  Plain p{std::vector<float>(d.out_numel()), std::vector<float>(d.lse_numel())};
  cpu::attention_forward({.out = Tensor(p.out.data(), DType::F32, {kB, d.T, d.C()}),
                          .lse = Tensor(p.lse.data(), DType::F32, {kB, kNH, d.T}),
                          .qkv = Tensor(qkv.data(), DType::F32, {kB, d.T, 3 * d.C()}),
                          .n_head = static_cast<int>(kNH)});
  p.out = round_to_bf16(p.out);
  return p;
}

// bf16(dqkv0 + the fp32 CPU gradient).
std::vector<float> plain_backward(std::vector<float> qkv, std::vector<float> dout, Plain fwd,
                                  std::vector<float> dqkv0, const Dims& d) {
  cpu::attention_backward({.dqkv = Tensor(dqkv0.data(), DType::F32, {kB, d.T, 3 * d.C()}),
                           .dout = Tensor(dout.data(), DType::F32, {kB, d.T, d.C()}),
                           .qkv = Tensor(qkv.data(), DType::F32, {kB, d.T, 3 * d.C()}),
                           .out = Tensor(fwd.out.data(), DType::F32, {kB, d.T, d.C()}),
                           .lse = Tensor(fwd.lse.data(), DType::F32, {kB, kNH, d.T}),
                           .n_head = static_cast<int>(kNH)});
  return round_to_bf16(dqkv0);
}

// ---- Device side -----------------------------------------------------------------------------------------

// A device tensor of `shape` followed by kGuard sentinel elements that no op may touch.
class Guarded {
 public:
  Guarded(DType dtype, std::initializer_list<int64_t> shape)
      : view_(nullptr, dtype, shape), buffer_(dtype, {view_.numel() + kGuard}) {
    view_.data = buffer_.view().data;
  }
  const Tensor& view() const { return view_; }
  void upload(std::vector<float> values) {
    values.resize(view_.numel() + kGuard, kSentinel);
    buffer_.upload(values);
  }
  // The tensor's values; counts the guard elements that lost their sentinel.
  std::vector<float> download(int* clobbered) const {
    std::vector<float> all = buffer_.download();
    *clobbered = static_cast<int>(
        std::count_if(all.begin() + view_.numel(), all.end(), [](float x) { return x != kSentinel; }));
    all.resize(view_.numel());
    return all;
  }
  std::vector<uint16_t> raw_bf16() const {
    std::vector<uint16_t> bits(view_.numel());
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(bits.data(), view_.data, bits.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    return bits;
  }

 private:
  Tensor view_;
  GpuBuffer buffer_;
};

struct GpuForward {
  std::vector<float> out, lse;
};

GpuForward gpu_forward(const std::vector<float>& qkv, const Dims& d) {
  Guarded g_qkv(DType::BF16, {kB, d.T, 3 * d.C()}), out(DType::BF16, {kB, d.T, d.C()}),
      lse(DType::F32, {kB, kNH, d.T});
  g_qkv.upload(qkv);
  out.upload(std::vector<float>(d.out_numel(), -7.0f));  // overwritten
  lse.upload(std::vector<float>(d.lse_numel(), -7.0f));
  cuda::attention_forward_tensor_core(
      {.out = out.view(), .lse = lse.view(), .qkv = g_qkv.view(), .n_head = static_cast<int>(kNH)});
  int clobbered_out = 0, clobbered_lse = 0;
  GpuForward f{out.download(&clobbered_out), lse.download(&clobbered_lse)};
  EXPECT_EQ(clobbered_out, 0) << "out written past its end";
  EXPECT_EQ(clobbered_lse, 0) << "lse written past its end";
  return f;
}

// dqkv0 + the kernel's gradient, given the plain forward's (rounded) out and lse.
std::vector<float> gpu_backward(const std::vector<float>& qkv, const std::vector<float>& dout,
                                const Plain& fwd, const std::vector<float>& dqkv0, const Dims& d) {
  Guarded g_qkv(DType::BF16, {kB, d.T, 3 * d.C()}), g_dout(DType::BF16, {kB, d.T, d.C()}),
      out(DType::BF16, {kB, d.T, d.C()}), lse(DType::F32, {kB, kNH, d.T}),
      dqkv(DType::BF16, {kB, d.T, 3 * d.C()});
  g_qkv.upload(qkv);
  g_dout.upload(dout);
  out.upload(fwd.out);
  lse.upload(fwd.lse);
  dqkv.upload(dqkv0);
  cuda::attention_backward_tensor_core({.dqkv = dqkv.view(),
                                        .dout = g_dout.view(),
                                        .qkv = g_qkv.view(),
                                        .out = out.view(),
                                        .lse = lse.view(),
                                        .n_head = static_cast<int>(kNH)});
  int clobbered = 0;
  std::vector<float> result = dqkv.download(&clobbered);
  EXPECT_EQ(clobbered, 0) << "dqkv written past its end";
  return result;
}

// The q, k or v third (part 0, 1, 2) of a [B,T,3C] tensor.
template <class V>
V part_of(const V& x, int part, const Dims& d) {
  V out;
  out.reserve(x.size() / 3);
  for (int64_t bt = 0; bt < kB * d.T; ++bt) {
    const auto row = x.begin() + bt * 3 * d.C() + part * d.C();
    out.insert(out.end(), row, row + d.C());
  }
  return out;
}

// Compares dq, dk and dv separately: their scales differ, and one rule over all three would let the
// largest hide errors in the others. A part that is exactly 0 in exact math (dq and dk when T = 1: a
// lone token's softmax has no gradient) has no scale for the rule; what both implementations produce
// there is the fp32 rounding of dP - D, two dot products of hd terms each below |dO| |v| <= 1 * 2, so
// |dS| <= 2 * hd * 2^-24 * 2 hd, times scale * |k or q| <= 2 / sqrt(hd).
void expect_gradients_within(const std::vector<float>& kernel, const std::vector<float>& plain,
                             const std::vector<double>& want, const Dims& d) {
  const char* names[] = {"dq", "dk", "dv"};
  for (int part = 0; part < 3; ++part) {
    const std::vector<float> k = part_of(kernel, part, d);
    const std::vector<double> w = part_of(want, part, d);
    if (testing::error_against(k, w).scale == 0) {
      const double hd = static_cast<double>(d.hd);
      const double bound = 2 * hd * std::ldexp(1.0, -24) * 2 * hd * kInputScale / std::sqrt(hd);
      for (float x : k) ASSERT_LE(std::abs(x), bound) << names[part] << " of a lone token must be ~0";
      continue;
    }
    expect_bf16_error_within(k, part_of(plain, part, d), w, names[part]);
  }
}

struct Inputs {
  std::vector<float> qkv, dout;
};

Inputs inputs(const Dims& d) {
  const uint64_t seed = static_cast<uint64_t>(d.T * 1000 + d.hd);
  return {round_to_bf16(random_floats(d.qkv_numel(), seed, kInputScale)),
          round_to_bf16(random_floats(d.out_numel(), seed + 1))};
}

// ---- Tests -----------------------------------------------------------------------------------------------

class AttentionTensorCore : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {
 protected:
  Dims dims() const { return {std::get<0>(GetParam()), std::get<1>(GetParam())}; }
};

TEST_P(AttentionTensorCore, ForwardAndBackwardMatchFloat64) {
  REQUIRE_GPU();
  const Dims d = dims();
  SCOPED_TRACE(describe(d));
  const Inputs in = inputs(d);
  const Reference want = reference(in.qkv, in.dout, d);
  const Plain plain = plain_forward(in.qkv, d);

  const GpuForward got = gpu_forward(in.qkv, d);
  expect_bf16_error_within(got.out, plain.out, want.out, "out");
  // lse: fp32 sums of exp over exact bf16 products in both implementations; 2^-14 relative (far
  // above ex2.approx's 2^-22 and fp32 rounding, far below any error of a wrong tile or mask).
  double worst = 0;
  for (size_t i = 0; i < want.lse.size(); ++i)
    worst = std::max(worst, std::abs(got.lse[i] - want.lse[i]) / (1.0 + std::abs(want.lse[i])));
  EXPECT_LE(worst, std::ldexp(1.0, -14)) << "lse";

  // Backward into zeros, on the plain forward's out and lse (so only the backward's error is measured).
  const std::vector<float> zeros(d.qkv_numel(), 0.0f);
  const std::vector<float> grad = gpu_backward(in.qkv, in.dout, plain, zeros, d);
  expect_gradients_within(grad, plain_backward(in.qkv, in.dout, plain, zeros, d), want.grad, d);
}

std::string shape_name(const ::testing::TestParamInfo<std::tuple<int64_t, int64_t>>& param) {
  return "T" + std::to_string(std::get<0>(param.param)) + "_hd" + std::to_string(std::get<1>(param.param));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTensorCore,
                         ::testing::Combine(::testing::Values<int64_t>(1, 63, 64, 200, 1024),
                                            ::testing::Values<int64_t>(64, 128)),
                         shape_name);

TEST(AttentionTensorCoreContract, BackwardAccumulatesIntoDqkv) {
  REQUIRE_GPU();
  for (const Dims d : {Dims{63, 64}, Dims{200, 128}}) {
    SCOPED_TRACE(describe(d));
    const Inputs in = inputs(d);
    const Reference want = reference(in.qkv, in.dout, d);
    const Plain plain = plain_forward(in.qkv, d);
    // Of the gradients' own size, so that an overwrite (or a lost +=) is far outside the tolerance.
    const std::vector<float> dqkv0 = round_to_bf16(random_floats(d.qkv_numel(), 99, 0.5f));
    std::vector<double> expected(want.grad.size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = dqkv0[i] + want.grad[i];
    expect_gradients_within(gpu_backward(in.qkv, in.dout, plain, dqkv0, d),
                            plain_backward(in.qkv, in.dout, plain, dqkv0, d), expected, d);
  }
}

TEST(AttentionTensorCoreContract, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  for (const Dims d : {Dims{1024, 64}, Dims{1024, 128}, Dims{200, 128}}) {
    SCOPED_TRACE(describe(d));
    const Inputs in = inputs(d);
    Guarded qkv(DType::BF16, {kB, d.T, 3 * d.C()}), dout(DType::BF16, {kB, d.T, d.C()});
    qkv.upload(in.qkv);
    dout.upload(in.dout);
    std::vector<uint16_t> outs[2], grads[2];
    std::vector<float> lses[2];
    for (int run = 0; run < 2; ++run) {
      Guarded out(DType::BF16, {kB, d.T, d.C()}), lse(DType::F32, {kB, kNH, d.T}),
          dqkv(DType::BF16, {kB, d.T, 3 * d.C()});
      out.upload(std::vector<float>(d.out_numel(), 0.0f));
      lse.upload(std::vector<float>(d.lse_numel(), 0.0f));
      dqkv.upload(round_to_bf16(random_floats(d.qkv_numel(), 5, 0.5f)));
      cuda::attention_forward_tensor_core(
          {.out = out.view(), .lse = lse.view(), .qkv = qkv.view(), .n_head = static_cast<int>(kNH)});
      cuda::attention_backward_tensor_core({.dqkv = dqkv.view(),
                                            .dout = dout.view(),
                                            .qkv = qkv.view(),
                                            .out = out.view(),
                                            .lse = lse.view(),
                                            .n_head = static_cast<int>(kNH)});
      int clobbered = 0;
      outs[run] = out.raw_bf16();
      lses[run] = lse.download(&clobbered);
      grads[run] = dqkv.raw_bf16();
    }
    EXPECT_TRUE(outs[0] == outs[1]) << "out differs between runs";
    EXPECT_EQ(std::memcmp(lses[0].data(), lses[1].data(), lses[0].size() * sizeof(float)), 0)
        << "lse differs between runs";
    EXPECT_TRUE(grads[0] == grads[1]) << "dqkv differs between runs";
  }
}

TEST(AttentionTensorCoreContract, SupportsExactlyBf16HeadDims64And128) {
  REQUIRE_GPU();
  EXPECT_TRUE(cuda::attention_tensor_core_supports(DType::BF16, 64));
  EXPECT_TRUE(cuda::attention_tensor_core_supports(DType::BF16, 128));
  EXPECT_FALSE(cuda::attention_tensor_core_supports(DType::BF16, 32));
  EXPECT_FALSE(cuda::attention_tensor_core_supports(DType::BF16, 96));
  EXPECT_FALSE(cuda::attention_tensor_core_supports(DType::F32, 64));
}

TEST(AttentionTensorCoreContract, RejectsWhatItDoesNotSupport) {
  REQUIRE_GPU();
  // Head dim 32 (C = 96, 3 heads), then F32 tensors of head dim 64: invalid_argument, nothing launched.
  const int64_t T = 8;
  GpuBuffer qkv(DType::BF16, {1, T, 3 * 96}), out(DType::BF16, {1, T, 96}), lse(DType::F32, {1, 3, T});
  EXPECT_THROW(cuda::attention_forward_tensor_core({.out = out, .lse = lse, .qkv = qkv, .n_head = 3}),
               std::invalid_argument);
  GpuBuffer qkv32(DType::F32, {1, T, 3 * 64}), out32(DType::F32, {1, T, 64}), lse1(DType::F32, {1, 1, T}),
      dqkv32(DType::F32, {1, T, 3 * 64});
  EXPECT_THROW(cuda::attention_forward_tensor_core({.out = out32, .lse = lse1, .qkv = qkv32, .n_head = 1}),
               std::invalid_argument);
  EXPECT_THROW(cuda::attention_backward_tensor_core(
                   {.dqkv = dqkv32, .dout = out32, .qkv = qkv32, .out = out32, .lse = lse1, .n_head = 1}),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
