// cuda::matmul_forward / matmul_backward (cuBLASLt) against cpu::matmul_* for both weight layouts:
// ragged shapes, with and without bias, the GELU epilogue (out and pre_gelu), the += contract on
// non-zero gradients, absent optional gradients, misaligned views, bit-identical repeats, and the
// benchmark's bare BF16 GEMM. Label gpu: skips without a device.
//
// Tolerances. F32: an output that sums k products (plus a bias, plus the old value when accumulating)
// is within (k + 3) u sum|terms| of the exact value in any summation order (u = 2^-24, the worst-case
// bound of recursive or blocked fp32 summation); the GPU and the CPU both are, so they are within twice
// that of each other. sum|terms| is computed exactly the same way on |inputs|. TF32 (u = 2^-11) or a
// wrong operand would miss this by orders of magnitude. BF16: gpu_test_util.h's rule against float64.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/matmul_bf16.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
using testing::round_to_bf16;
namespace ref = testing::ref;

constexpr double kRoundoff = 0x1p-24;

struct Shape {
  int64_t N, C, OC;
};

std::string describe(const Shape& s) {
  return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " OC=" + std::to_string(s.OC);
}

// Every combination of ragged sizes: N = 1 (decoding), 7, 129 (not multiples of any tile); C = 33
// (odd leading dimension) and 768; OC = 50 and 2304 (GPT-2's c_attn).
std::vector<Shape> ragged_shapes() {
  std::vector<Shape> shapes;
  for (int64_t N : {1, 7, 129})
    for (int64_t C : {33, 768})
      for (int64_t OC : {50, 2304}) shapes.push_back({N, C, OC});
  return shapes;
}

bool is_out_in(WeightLayout layout) {
  return layout == WeightLayout::OutIn;
}

Tensor weight_tensor(void* data, DType dtype, const Shape& s, WeightLayout layout) {
  return is_out_in(layout) ? Tensor(data, dtype, {s.OC, s.C}) : Tensor(data, dtype, {s.C, s.OC});
}

// A device tensor placed `offset` elements into its own allocation: offset 1 gives a view that is only
// element-aligned, as a slice of a larger buffer can be.
class DeviceTensor {
 public:
  explicit DeviceTensor(const Tensor& like, int64_t offset = 0) : view_(like) {
    const size_t element = dtype_size(like.dtype);
    EXPECT_EQ(cudaMalloc(&base_, like.nbytes() + (offset + 1) * element), cudaSuccess);
    view_.data = static_cast<char*>(base_) + offset * element;
  }
  ~DeviceTensor() { cudaFree(base_); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  operator Tensor() const { return view_; }  // NOLINT: usable wherever an op takes a tensor

  void upload(const std::vector<float>& values) {
    const int64_t n = view_.numel();
    EXPECT_EQ(static_cast<int64_t>(values.size()), n);
    if (view_.dtype == DType::F32) return copy_in(values.data());
    std::vector<uint16_t> b(n);
    cpu::cast(
        {Tensor(b.data(), DType::BF16, {n}), Tensor(const_cast<float*>(values.data()), DType::F32, {n})});
    copy_in(b.data());
  }
  std::vector<float> download() const {
    const int64_t n = view_.numel();
    std::vector<float> out(n);
    if (view_.dtype == DType::F32) {
      copy_out(out.data());
      return out;
    }
    std::vector<uint16_t> b(n);
    copy_out(b.data());
    cpu::cast({Tensor(out.data(), DType::F32, {n}), Tensor(b.data(), DType::BF16, {n})});
    return out;
  }
  // All-ones bytes: NaN in both F32 and BF16, so an element an op should overwrite and does not shows.
  void poison() { EXPECT_EQ(cudaMemset(view_.data, 0xFF, view_.nbytes()), cudaSuccess); }

 private:
  void copy_in(const void* host) {
    EXPECT_EQ(cudaMemcpy(view_.data, host, view_.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  }
  void copy_out(void* host) const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host, view_.data, view_.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  }

  void* base_ = nullptr;
  Tensor view_;
};

// The values a BF16 run actually sees (an absent tensor stays empty).
std::vector<float> bf16_values(const std::vector<float>& x) {
  return x.empty() ? x : round_to_bf16(x);
}

std::vector<float> absolute(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = std::abs(x[i]);
  return out;
}

// ---- One problem, on the CPU and on the GPU --------------------------------------------------------

struct Inputs {
  Shape s;
  WeightLayout layout;
  std::vector<float> inp, weight, bias, dout;  // bias empty: no bias
};

Inputs make_inputs(const Shape& s, WeightLayout layout, bool with_bias, uint64_t seed, bool bf16) {
  Inputs in{s,
            layout,
            random_floats(s.N * s.C, seed),
            random_floats(s.C * s.OC, seed + 1),
            with_bias ? random_floats(s.OC, seed + 2) : std::vector<float>{},
            random_floats(s.N * s.OC, seed + 3)};
  if (bf16) {  // every reference starts from the values the device sees
    in.inp = bf16_values(in.inp);
    in.weight = bf16_values(in.weight);
    in.bias = bf16_values(in.bias);
    in.dout = bf16_values(in.dout);
  }
  return in;
}

struct Forward {
  std::vector<float> out, pre;  // pre empty without the GELU epilogue
};

Forward cpu_forward(Inputs in, bool gelu) {  // by value: the CPU op takes non-const views
  const Shape& s = in.s;
  Forward r{std::vector<float>(s.N * s.OC), gelu ? std::vector<float>(s.N * s.OC) : std::vector<float>{}};
  cpu::matmul_forward({.out = Tensor(r.out.data(), DType::F32, {s.N, s.OC}),
                       .inp = Tensor(in.inp.data(), DType::F32, {s.N, s.C}),
                       .weight = weight_tensor(in.weight.data(), DType::F32, s, in.layout),
                       .bias = in.bias.empty() ? Tensor() : Tensor(in.bias.data(), DType::F32, {s.OC}),
                       .pre_gelu = gelu ? Tensor(r.pre.data(), DType::F32, {s.N, s.OC}) : Tensor(),
                       .layout = in.layout,
                       .epilogue = gelu ? Epilogue::Gelu : Epilogue::None});
  return r;
}

Forward gpu_forward(DType dtype, const Inputs& in, bool gelu, int64_t offset = 0) {
  const Shape& s = in.s;
  DeviceTensor inp(Tensor(nullptr, dtype, {s.N, s.C}), offset);
  DeviceTensor weight(weight_tensor(nullptr, dtype, s, in.layout), offset);
  DeviceTensor bias(Tensor(nullptr, dtype, {s.OC}), offset);
  DeviceTensor out(Tensor(nullptr, dtype, {s.N, s.OC}), offset);
  DeviceTensor pre(Tensor(nullptr, dtype, {s.N, s.OC}), offset);
  inp.upload(in.inp);
  weight.upload(in.weight);
  if (!in.bias.empty()) bias.upload(in.bias);
  out.poison();
  pre.poison();
  cuda::matmul_forward({.out = out,
                        .inp = inp,
                        .weight = weight,
                        .bias = in.bias.empty() ? Tensor() : Tensor(bias),
                        .pre_gelu = gelu ? Tensor(pre) : Tensor(),
                        .layout = in.layout,
                        .epilogue = gelu ? Epilogue::Gelu : Epilogue::None});
  return {out.download(), gelu ? pre.download() : std::vector<float>{}};
}

struct Grads {
  std::vector<float> dinp, dweight, dbias;  // dinp / dbias empty: absent
};

// Non-zero starting gradients, so the += contract is what is checked.
Grads initial_grads(const Shape& s, bool with_dinp, bool with_dbias, uint64_t seed, bool bf16) {
  Grads g{with_dinp ? random_floats(s.N * s.C, seed) : std::vector<float>{},
          random_floats(s.C * s.OC, seed + 1),
          with_dbias ? random_floats(s.OC, seed + 2) : std::vector<float>{}};
  if (bf16) {
    g.dinp = bf16_values(g.dinp);
    g.dweight = bf16_values(g.dweight);
    g.dbias = bf16_values(g.dbias);
  }
  return g;
}

Grads cpu_backward(Inputs in, Grads g) {
  const Shape& s = in.s;
  cpu::matmul_backward({.dinp = g.dinp.empty() ? Tensor() : Tensor(g.dinp.data(), DType::F32, {s.N, s.C}),
                        .dweight = weight_tensor(g.dweight.data(), DType::F32, s, in.layout),
                        .dbias = g.dbias.empty() ? Tensor() : Tensor(g.dbias.data(), DType::F32, {s.OC}),
                        .dout = Tensor(in.dout.data(), DType::F32, {s.N, s.OC}),
                        .inp = Tensor(in.inp.data(), DType::F32, {s.N, s.C}),
                        .weight = weight_tensor(in.weight.data(), DType::F32, s, in.layout),
                        .layout = in.layout});
  return g;
}

// inp, dinp and dout are 3-D here ([1, N, *]): the op reads any leading dims as rows.
Grads gpu_backward(DType dtype, const Inputs& in, const Grads& initial, int64_t offset = 0) {
  const Shape& s = in.s;
  DeviceTensor inp(Tensor(nullptr, dtype, {1, s.N, s.C}), offset);
  DeviceTensor weight(weight_tensor(nullptr, dtype, s, in.layout), offset);
  DeviceTensor dout(Tensor(nullptr, dtype, {1, s.N, s.OC}), offset);
  DeviceTensor dinp(Tensor(nullptr, dtype, {1, s.N, s.C}), offset);
  DeviceTensor dweight(weight_tensor(nullptr, dtype, s, in.layout), offset);
  DeviceTensor dbias(Tensor(nullptr, dtype, {s.OC}), offset);
  inp.upload(in.inp);
  weight.upload(in.weight);
  dout.upload(in.dout);
  dweight.upload(initial.dweight);
  if (!initial.dinp.empty()) dinp.upload(initial.dinp);
  if (!initial.dbias.empty()) dbias.upload(initial.dbias);
  cuda::matmul_backward({.dinp = initial.dinp.empty() ? Tensor() : Tensor(dinp),
                         .dweight = dweight,
                         .dbias = initial.dbias.empty() ? Tensor() : Tensor(dbias),
                         .dout = dout,
                         .inp = inp,
                         .weight = weight,
                         .layout = in.layout});
  return {initial.dinp.empty() ? std::vector<float>{} : dinp.download(), dweight.download(),
          initial.dbias.empty() ? std::vector<float>{} : dbias.download()};
}

// ---- F32: against the CPU within the stated bound --------------------------------------------------

// |gpu - cpu| <= 2 (k + 3) u magnitude, elementwise (the file header's bound).
void expect_f32_close(const std::vector<float>& gpu, const std::vector<float>& cpu,
                      const std::vector<float>& magnitude, int64_t k, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  ASSERT_EQ(magnitude.size(), cpu.size()) << what;
  const double factor = 2.0 * static_cast<double>(k + 3) * kRoundoff;
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double diff = std::abs(static_cast<double>(gpu[i]) - cpu[i]);
    if (!(diff <= factor * magnitude[i])) {  // NaN fails too
      if (bad++ == 0) first = static_cast<int64_t>(i);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << gpu.size()
                    << " elements outside 2(k+3)u sum|terms|, k=" << k << "; first at " << first << ": gpu "
                    << (first >= 0 ? gpu[first] : 0.0f) << ", cpu " << (first >= 0 ? cpu[first] : 0.0f)
                    << ", bound " << (first >= 0 ? factor * magnitude[first] : 0.0);
}

class CudaMatmul : public ::testing::TestWithParam<WeightLayout> {};

TEST_P(CudaMatmul, F32ForwardMatchesCpuWithBiasAndGelu) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (const Shape& s : ragged_shapes()) {
    for (bool with_bias : {false, true}) {
      const Inputs in = make_inputs(s, GetParam(), with_bias, seed += 10, /*bf16=*/false);
      Inputs abs_in = in;  // sum|terms| of every output: the same product on |inputs|
      abs_in.inp = absolute(in.inp);
      abs_in.weight = absolute(in.weight);
      abs_in.bias = absolute(in.bias);
      const std::vector<float> magnitude = cpu_forward(abs_in, /*gelu=*/false).out;
      for (bool gelu : {false, true}) {
        const std::string what = describe(s) + (with_bias ? " bias" : " no bias") + (gelu ? " gelu" : "");
        const Forward cpu = cpu_forward(in, gelu), gpu = gpu_forward(DType::F32, in, gelu);
        if (!gelu) {
          expect_f32_close(gpu.out, cpu.out, magnitude, s.C, what + ": out");
          continue;
        }
        expect_f32_close(gpu.pre, cpu.pre, magnitude, s.C, what + ": pre_gelu");
        // out = gelu(pre): |gelu'| <= 1.13 carries pre's difference over; each side's own evaluation
        // (an fp32 exp, add, divide; the CPU's exp is within 2 ulps of expf) adds at most ~16 u |pre|.
        std::vector<float> out_magnitude(magnitude.size());
        for (size_t i = 0; i < magnitude.size(); ++i)
          out_magnitude[i] =
              static_cast<float>(1.2 * magnitude[i] + 32.0 * std::abs(cpu.pre[i]) / (2.0 * (s.C + 3)));
        expect_f32_close(gpu.out, cpu.out, out_magnitude, s.C, what + ": out");
      }
    }
  }
}

TEST_P(CudaMatmul, F32BackwardAccumulatesLikeCpu) {
  REQUIRE_GPU();
  uint64_t seed = 500;
  for (const Shape& s : ragged_shapes()) {
    const std::string what = describe(s);
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/false, seed += 10, /*bf16=*/false);
    const Grads initial = initial_grads(s, /*with_dinp=*/true, /*with_dbias=*/true, seed + 5, /*bf16=*/false);
    const Grads cpu = cpu_backward(in, initial), gpu = gpu_backward(DType::F32, in, initial);
    // Magnitudes: the same gradients of |inputs| from zero, plus |the starting values|.
    Inputs abs_in = in;
    abs_in.inp = absolute(in.inp);
    abs_in.weight = absolute(in.weight);
    abs_in.dout = absolute(in.dout);
    Grads mag = cpu_backward(
        abs_in, {std::vector<float>(initial.dinp.size()), std::vector<float>(initial.dweight.size()),
                 std::vector<float>(initial.dbias.size())});
    for (size_t i = 0; i < mag.dinp.size(); ++i) mag.dinp[i] += std::abs(initial.dinp[i]);
    for (size_t i = 0; i < mag.dweight.size(); ++i) mag.dweight[i] += std::abs(initial.dweight[i]);
    for (size_t i = 0; i < mag.dbias.size(); ++i) mag.dbias[i] += std::abs(initial.dbias[i]);
    expect_f32_close(gpu.dinp, cpu.dinp, mag.dinp, s.OC, what + ": dinp");
    expect_f32_close(gpu.dweight, cpu.dweight, mag.dweight, s.N, what + ": dweight");
    expect_f32_close(gpu.dbias, cpu.dbias, mag.dbias, s.N, what + ": dbias");
  }
}

TEST_P(CudaMatmul, F32BackwardWithoutInputAndBiasGradients) {
  REQUIRE_GPU();
  for (const Shape& s : {Shape{7, 33, 50}, Shape{129, 768, 2304}}) {
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/false, 900 + s.N, /*bf16=*/false);
    const Grads initial = initial_grads(s, /*with_dinp=*/false, /*with_dbias=*/false, 950 + s.N, false);
    const Grads cpu = cpu_backward(in, initial), gpu = gpu_backward(DType::F32, in, initial);
    Inputs abs_in = in;
    abs_in.inp = absolute(in.inp);
    abs_in.dout = absolute(in.dout);
    Grads mag = cpu_backward(abs_in, {{}, std::vector<float>(initial.dweight.size()), {}});
    for (size_t i = 0; i < mag.dweight.size(); ++i) mag.dweight[i] += std::abs(initial.dweight[i]);
    expect_f32_close(gpu.dweight, cpu.dweight, mag.dweight, s.N, describe(s) + ": dweight");
  }
}

// ---- BF16: the error against float64 within 2x a plain bf16 implementation's -----------------------

// A plain bf16 implementation: the fp32 CPU op on the same bf16 values, each stored tensor rounded to
// bf16 (with GELU, the bf16 pre-activation is what the GELU reads, as in an unfused bf16 model).
std::vector<float> plain_bf16_gelu(const std::vector<float>& plain_pre) {
  const int64_t n = static_cast<int64_t>(plain_pre.size());
  std::vector<float> out(n);
  cpu::gelu_forward(
      {Tensor(out.data(), DType::F32, {n}), Tensor(const_cast<float*>(plain_pre.data()), DType::F32, {n})});
  return round_to_bf16(out);
}

TEST_P(CudaMatmul, BF16ForwardWithinPlainBf16Error) {
  REQUIRE_GPU();
  uint64_t seed = 1000;
  for (const Shape& s : ragged_shapes()) {
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/true, seed += 10, /*bf16=*/true);
    Inputs no_bias = in;
    no_bias.bias.clear();
    const ref::Vec product = ref::matmul_forward(ref::to_double(in.inp), ref::to_double(in.weight), nullptr,
                                                 s.N, s.C, s.OC, is_out_in(GetParam()));
    for (bool with_bias : {false, true}) {
      const Inputs& problem = with_bias ? in : no_bias;
      ref::Vec want = product;
      if (with_bias)
        for (int64_t i = 0; i < s.N * s.OC; ++i) want[i] += in.bias[i % s.OC];
      ref::Vec want_gelu(want.size());
      for (size_t i = 0; i < want.size(); ++i) want_gelu[i] = ref::gelu(want[i]);

      const std::string what = describe(s) + (with_bias ? " bias" : " no bias");
      const std::vector<float> plain = round_to_bf16(cpu_forward(problem, /*gelu=*/false).out);
      const std::vector<float> plain_gelu = plain_bf16_gelu(plain);

      const Forward gpu = gpu_forward(DType::BF16, problem, /*gelu=*/false);
      testing::expect_bf16_error_within(gpu.out, plain, want, (what + ": out").c_str());
      const Forward gpu_gelu = gpu_forward(DType::BF16, problem, /*gelu=*/true);
      testing::expect_bf16_error_within(gpu_gelu.pre, plain, want, (what + " gelu: pre_gelu").c_str());
      testing::expect_bf16_error_within(gpu_gelu.out, plain_gelu, want_gelu, (what + " gelu: out").c_str());
    }
  }
}

TEST_P(CudaMatmul, BF16BackwardAccumulatesWithinPlainBf16Error) {
  REQUIRE_GPU();
  uint64_t seed = 2000;
  for (const Shape& s : ragged_shapes()) {
    const std::string what = describe(s);
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/false, seed += 10, /*bf16=*/true);
    const Grads initial = initial_grads(s, /*with_dinp=*/true, /*with_dbias=*/true, seed + 5, /*bf16=*/true);
    const ref::MatmulGrads exact =
        ref::matmul_backward(ref::to_double(in.dout), ref::to_double(in.inp), ref::to_double(in.weight), s.N,
                             s.C, s.OC, is_out_in(GetParam()));
    const Grads cpu = cpu_backward(in, initial), gpu = gpu_backward(DType::BF16, in, initial);
    testing::expect_bf16_error_within(gpu.dinp, round_to_bf16(cpu.dinp),
                                      ref::add(ref::to_double(initial.dinp), exact.dinp),
                                      (what + ": dinp").c_str());
    testing::expect_bf16_error_within(gpu.dweight, round_to_bf16(cpu.dweight),
                                      ref::add(ref::to_double(initial.dweight), exact.dweight),
                                      (what + ": dweight").c_str());
    testing::expect_bf16_error_within(gpu.dbias, round_to_bf16(cpu.dbias),
                                      ref::add(ref::to_double(initial.dbias), exact.dbias),
                                      (what + ": dbias").c_str());
  }
}

// ---- Alignment, determinism, the benchmark GEMM, contract checks ------------------------------------

// Views one element past an aligned address (4 bytes for F32, 2 for BF16), after the aligned shape has
// been planned: the plan cache must not reuse an algorithm chosen for 256-byte-aligned operands.
TEST_P(CudaMatmul, ElementAlignedViews) {
  REQUIRE_GPU();
  const Shape s{7, 33, 50};
  for (DType dtype : {DType::F32, DType::BF16}) {
    const bool bf16 = dtype == DType::BF16;
    const std::string what = std::string(dtype_name(dtype)) + " offset by one element";
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/true, 3000, bf16);
    const Grads initial = initial_grads(s, true, true, 3005, bf16);
    gpu_forward(dtype, in, /*gelu=*/true);  // plans for aligned pointers first
    gpu_backward(dtype, in, initial);
    const Forward gpu = gpu_forward(dtype, in, /*gelu=*/true, /*offset=*/1);
    const Grads grads = gpu_backward(dtype, in, initial, /*offset=*/1);
    const Forward cpu = cpu_forward(in, /*gelu=*/true);
    const Grads cpu_grads = cpu_backward(in, initial);
    if (!bf16) {
      // Coarse magnitudes suffice here: every |input| is below 1, so sum|terms| <= k (+ 1 + |old|).
      const auto bound = [](const std::vector<float>& old, size_t n, int64_t k) {
        std::vector<float> m(n, static_cast<float>(k + 1));
        for (size_t i = 0; i < old.size(); ++i) m[i] += std::abs(old[i]);
        return m;
      };
      expect_f32_close(gpu.pre, cpu.pre, bound({}, cpu.pre.size(), s.C), s.C, what + ": pre_gelu");
      expect_f32_close(gpu.out, cpu.out, bound({}, cpu.out.size(), 2 * s.C), s.C, what + ": out");
      expect_f32_close(grads.dinp, cpu_grads.dinp, bound(initial.dinp, initial.dinp.size(), s.OC), s.OC,
                       what + ": dinp");
      expect_f32_close(grads.dweight, cpu_grads.dweight, bound(initial.dweight, initial.dweight.size(), s.N),
                       s.N, what + ": dweight");
      expect_f32_close(grads.dbias, cpu_grads.dbias, bound(initial.dbias, initial.dbias.size(), s.N), s.N,
                       what + ": dbias");
    } else {
      ref::Vec want = ref::matmul_forward(ref::to_double(in.inp), ref::to_double(in.weight), nullptr, s.N,
                                          s.C, s.OC, is_out_in(GetParam()));
      for (int64_t i = 0; i < s.N * s.OC; ++i) want[i] += in.bias[i % s.OC];
      ref::Vec want_gelu(want.size());
      for (size_t i = 0; i < want.size(); ++i) want_gelu[i] = ref::gelu(want[i]);
      testing::expect_bf16_error_within(gpu.pre, round_to_bf16(cpu.pre), want, (what + ": pre_gelu").c_str());
      testing::expect_bf16_error_within(gpu.out, plain_bf16_gelu(round_to_bf16(cpu.pre)), want_gelu,
                                        (what + ": out").c_str());
      const ref::MatmulGrads exact =
          ref::matmul_backward(ref::to_double(in.dout), ref::to_double(in.inp), ref::to_double(in.weight),
                               s.N, s.C, s.OC, is_out_in(GetParam()));
      testing::expect_bf16_error_within(grads.dinp, round_to_bf16(cpu_grads.dinp),
                                        ref::add(ref::to_double(initial.dinp), exact.dinp),
                                        (what + ": dinp").c_str());
      testing::expect_bf16_error_within(grads.dweight, round_to_bf16(cpu_grads.dweight),
                                        ref::add(ref::to_double(initial.dweight), exact.dweight),
                                        (what + ": dweight").c_str());
      testing::expect_bf16_error_within(grads.dbias, round_to_bf16(cpu_grads.dbias),
                                        ref::add(ref::to_double(initial.dbias), exact.dbias),
                                        (what + ": dbias").c_str());
    }
  }
}

TEST_P(CudaMatmul, RepeatsAreBitIdentical) {
  REQUIRE_GPU();
  const Shape s{129, 768, 2304};
  for (DType dtype : {DType::F32, DType::BF16}) {
    const bool bf16 = dtype == DType::BF16;
    const Inputs in = make_inputs(s, GetParam(), /*with_bias=*/true, 4000, bf16);
    const Grads initial = initial_grads(s, true, true, 4005, bf16);
    const Forward a = gpu_forward(dtype, in, /*gelu=*/true), b = gpu_forward(dtype, in, /*gelu=*/true);
    const Grads ga = gpu_backward(dtype, in, initial), gb = gpu_backward(dtype, in, initial);
    const auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
      return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    EXPECT_TRUE(same(a.out, b.out)) << dtype_name(dtype) << " out";
    EXPECT_TRUE(same(a.pre, b.pre)) << dtype_name(dtype) << " pre_gelu";
    EXPECT_TRUE(same(ga.dinp, gb.dinp)) << dtype_name(dtype) << " dinp";
    EXPECT_TRUE(same(ga.dweight, gb.dweight)) << dtype_name(dtype) << " dweight";
    EXPECT_TRUE(same(ga.dbias, gb.dbias)) << dtype_name(dtype) << " dbias";
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CudaMatmul, ::testing::Values(WeightLayout::InOut, WeightLayout::OutIn),
                         [](const ::testing::TestParamInfo<WeightLayout>& param) {
                           return param.param == WeightLayout::InOut ? "InOut" : "OutIn";
                         });

// Row-major C[m,n] = A[m,k] . B[k,n]: the InOut matmul without bias, as a bare BF16 GEMM.
TEST(CudaMatmulBenchmarkGemm, MatchesTheBf16Rule) {
  REQUIRE_GPU();
  for (const Shape& s : {Shape{129, 33, 50}, Shape{7, 768, 2304}, Shape{64, 256, 128}}) {
    const Inputs in = make_inputs(s, WeightLayout::InOut, /*with_bias=*/false, 5000 + s.N, /*bf16=*/true);
    DeviceTensor a(Tensor(nullptr, DType::BF16, {s.N, s.C})), b(Tensor(nullptr, DType::BF16, {s.C, s.OC})),
        c(Tensor(nullptr, DType::BF16, {s.N, s.OC}));
    a.upload(in.inp);
    b.upload(in.weight);
    c.poison();
    cuda::gemm_bf16_for_benchmark(static_cast<int>(s.N), static_cast<int>(s.OC), static_cast<int>(s.C),
                                  static_cast<Tensor>(a).data, static_cast<Tensor>(b).data,
                                  static_cast<Tensor>(c).data);
    const ref::Vec want = ref::matmul_forward(ref::to_double(in.inp), ref::to_double(in.weight), nullptr, s.N,
                                              s.C, s.OC, /*out_in=*/false);
    testing::expect_bf16_error_within(c.download(), round_to_bf16(cpu_forward(in, false).out), want,
                                      describe(s).c_str());
  }
  EXPECT_THROW(cuda::gemm_bf16_for_benchmark(0, 1, 1, nullptr, nullptr, nullptr), std::invalid_argument);
}

TEST(CudaMatmulContract, RejectsMismatchedShapesAndDtypes) {
  REQUIRE_GPU();
  DeviceTensor inp(Tensor(nullptr, DType::F32, {6, 4})), w(Tensor(nullptr, DType::F32, {4, 3})),
      w_bad(Tensor(nullptr, DType::F32, {5, 3})), w_bf16(Tensor(nullptr, DType::BF16, {4, 3})),
      out(Tensor(nullptr, DType::F32, {6, 3})), out_short(Tensor(nullptr, DType::F32, {6, 2})),
      ints(Tensor(nullptr, DType::I32, {6, 4}));
  const MatmulForward good{.out = out, .inp = inp, .weight = w, .bias = {}, .pre_gelu = {}};
  MatmulForward p = good;
  p.weight = w_bad;  // C = 4 but weight has 5 rows
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  p = good;
  p.weight = w_bf16;  // mixed dtypes
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  p = good;
  p.out = out_short;
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  p = good;
  p.epilogue = Epilogue::Gelu;  // no pre_gelu
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  p.pre_gelu = out;  // pre_gelu aliasing out
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  p = good;
  p.inp = ints;
  EXPECT_THROW(cuda::matmul_forward(p), std::invalid_argument);
  MatmulBackward b{.dinp = {}, .dweight = w_bad, .dbias = {}, .dout = out, .inp = inp, .weight = w};
  EXPECT_THROW(cuda::matmul_backward(b), std::invalid_argument);
  b.dweight = w;
  b.dbias = out;  // [6,3], not [3]
  EXPECT_THROW(cuda::matmul_backward(b), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
