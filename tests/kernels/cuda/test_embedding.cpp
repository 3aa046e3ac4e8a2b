// cuda::embedding_forward / embedding_backward against cpu:: and the float64 reference, F32 and BF16.
// Forward is one fp32 addition per element: bit for bit the CPU's (rounded to bf16 for BF16), with the
// shared pos_offset and with per-sequence positions. Backward: token sets that produce long runs of equal
// tokens after the sort (a 3-token vocabulary, every token the same: runs longer than the kernel's
// 32-row window) as well as spread ones, the += contract on non-zero gradients, bit-identical repeats.
// Ragged C (33, 771: the scalar path) and aligned C (64, 768: 16-byte vectors).
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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
namespace ref = testing::ref;

struct Shape {
  int64_t B, T, C, V, ctx;
  int pos_offset;
  int64_t token_range;  // tokens are drawn from [0, token_range): small ranges give long runs
};
const Shape kShapes[] = {
    {3, 43, 33, 97, 64, 5, 97},       // ragged C, scalar path
    {4, 129, 768, 500, 256, 100, 3},  // 516 rows over 3 tokens: runs of ~170 rows
    {2, 65, 771, 3000, 65, 0, 3000},  // ragged C, spread tokens, wpe exactly T long
    {1, 1, 64, 10, 4, 3, 10},         // a single row
    {2, 200, 64, 10, 300, 7, 1},      // every token the same: one run of 400 rows
};

std::vector<int32_t> random_tokens(int64_t n, int64_t range, uint64_t seed) {
  const std::vector<float> u = random_floats(n, seed, 1.0f);  // [-1, 1)
  std::vector<int32_t> tokens(n);
  for (int64_t i = 0; i < n; ++i)
    tokens[i] = static_cast<int32_t>(
        std::min<int64_t>(range - 1, static_cast<int64_t>((u[i] + 1.0f) * 0.5f * range)));
  return tokens;
}

struct Case {
  std::vector<int32_t> tokens;
  std::vector<float> wte, wpe, dout, dwte0, dwpe0;
};

Case make_case(const Shape& s, uint64_t seed, bool bf16) {
  Case c{random_tokens(s.B * s.T, s.token_range, seed),
         random_floats(s.V * s.C, seed + 1),
         random_floats(s.ctx * s.C, seed + 2),
         random_floats(s.B * s.T * s.C, seed + 3),
         random_floats(s.V * s.C, seed + 4),  // non-zero: the backward pass must add to them
         random_floats(s.ctx * s.C, seed + 5)};
  if (bf16)
    for (auto* v : {&c.wte, &c.wpe, &c.dout, &c.dwte0, &c.dwpe0}) *v = testing::round_to_bf16(*v);
  return c;
}

struct Result {
  std::vector<float> out, dwte, dwpe;
};

Result run_gpu(const Case& c, const Shape& s, DType dtype) {
  GpuBuffer tokens(DType::I32, {s.B, s.T}), wte(dtype, {s.V, s.C}), wpe(dtype, {s.ctx, s.C}),
      out(dtype, {s.B, s.T, s.C}), dout(dtype, {s.B, s.T, s.C}), dwte(dtype, {s.V, s.C}),
      dwpe(dtype, {s.ctx, s.C});
  tokens.upload_ints(c.tokens);
  wte.upload(c.wte);
  wpe.upload(c.wpe);
  dout.upload(c.dout);
  dwte.upload(c.dwte0);
  dwpe.upload(c.dwpe0);
  cuda::embedding_forward({.out = out, .tokens = tokens, .wte = wte, .wpe = wpe, .pos_offset = s.pos_offset});
  cuda::embedding_backward(
      {.dwte = dwte, .dwpe = dwpe, .dout = dout, .tokens = tokens, .pos_offset = s.pos_offset});
  return {out.download(), dwte.download(), dwpe.download()};
}

Result run_cpu(Case c, const Shape& s) {
  Result r{std::vector<float>(s.B * s.T * s.C), c.dwte0, c.dwpe0};
  const Tensor tokens(c.tokens.data(), DType::I32, {s.B, s.T});
  cpu::embedding_forward({.out = Tensor(r.out.data(), DType::F32, {s.B, s.T, s.C}),
                          .tokens = tokens,
                          .wte = Tensor(c.wte.data(), DType::F32, {s.V, s.C}),
                          .wpe = Tensor(c.wpe.data(), DType::F32, {s.ctx, s.C}),
                          .pos_offset = s.pos_offset});
  cpu::embedding_backward({.dwte = Tensor(r.dwte.data(), DType::F32, {s.V, s.C}),
                           .dwpe = Tensor(r.dwpe.data(), DType::F32, {s.ctx, s.C}),
                           .dout = Tensor(c.dout.data(), DType::F32, {s.B, s.T, s.C}),
                           .tokens = tokens,
                           .pos_offset = s.pos_offset});
  return r;
}

// Initial gradients plus the exact ones, in double.
struct WantGrads {
  ref::Vec dwte, dwpe;
};

WantGrads reference_grads(const Case& c, const Shape& s) {
  const ref::EmbeddingGrads g =
      ref::embedding_backward(ref::to_double(c.dout), c.tokens, s.T, s.C, s.V, s.ctx, s.pos_offset);
  return {ref::add(ref::to_double(c.dwte0), g.dwte), ref::add(ref::to_double(c.dwpe0), g.dwpe)};
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << what;
}

TEST(CudaEmbedding, ForwardEqualsTheCpuBitForBit) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " B=" << s.B << " T=" << s.T << " C=" << s.C);
      const Case c = make_case(s, 10, dtype == DType::BF16);
      const Result gpu = run_gpu(c, s, dtype), cpu = run_cpu(c, s);
      expect_same_bits(gpu.out, dtype == DType::BF16 ? testing::round_to_bf16(cpu.out) : cpu.out, "out");
    }
  }
}

// F32: each dwte row is a sum over its token's rows, each dwpe row a sum over the batch, in an order
// other than the CPU's: the fp32 bound of a sum of up to B*T terms, against float64 and against cpu::.
TEST(CudaEmbedding, BackwardF32AccumulatesReferenceGradients) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " tokens<" << s.token_range);
    const Case c = make_case(s, 20, false);
    const Result gpu = run_gpu(c, s, DType::F32), cpu = run_cpu(c, s);
    const WantGrads want = reference_grads(c, s);
    const double tolerance = ref::fp32_tolerance(s.B * s.T);
    EXPECT_LT(ref::max_scaled_error(gpu.dwte, want.dwte), tolerance);
    EXPECT_LT(ref::max_scaled_error(gpu.dwpe, want.dwpe), ref::fp32_tolerance(s.B));
    EXPECT_LT(ref::max_scaled_error(gpu.dwte, testing::widen(cpu.dwte)), 2 * tolerance);
    EXPECT_LT(ref::max_scaled_error(gpu.dwpe, testing::widen(cpu.dwpe)), 2 * ref::fp32_tolerance(s.B));
  }
}

TEST(CudaEmbedding, BackwardBF16WithinTwiceThePlainBf16Error) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " tokens<" << s.token_range);
    const Case c = make_case(s, 30, true);
    const Result gpu = run_gpu(c, s, DType::BF16), cpu = run_cpu(c, s);
    const WantGrads want = reference_grads(c, s);
    testing::expect_bf16_error_within(gpu.dwte, testing::round_to_bf16(cpu.dwte), want.dwte, "dwte");
    testing::expect_bf16_error_within(gpu.dwpe, testing::round_to_bf16(cpu.dwpe), want.dwpe, "dwpe");
  }
}

// The += contract, isolated: onto non-zero gradients the result is (result onto zero) + initial value,
// rounded once.
TEST(CudaEmbedding, BackwardAddsToExistingGradients) {
  REQUIRE_GPU();
  const Shape s = kShapes[1];
  Case c = make_case(s, 40, false);
  const Result onto_initial = run_gpu(c, s, DType::F32);
  const Case initial = c;
  std::fill(c.dwte0.begin(), c.dwte0.end(), 0.0f);
  std::fill(c.dwpe0.begin(), c.dwpe0.end(), 0.0f);
  const Result onto_zero = run_gpu(c, s, DType::F32);
  auto sum = [](const std::vector<float>& a, const std::vector<float>& b) {
    ref::Vec out(a.size());
    for (size_t i = 0; i < a.size(); ++i) out[i] = double{a[i]} + b[i];
    return out;
  };
  EXPECT_LT(ref::max_scaled_error(onto_initial.dwte, sum(onto_zero.dwte, initial.dwte0)),
            2 * ref::kFp32Roundoff);
  EXPECT_LT(ref::max_scaled_error(onto_initial.dwpe, sum(onto_zero.dwpe, initial.dwpe0)),
            2 * ref::kFp32Roundoff);
}

TEST(CudaEmbedding, BackwardIsBitIdenticalAcrossRuns) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Shape& s : {kShapes[1], kShapes[2], kShapes[4]}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " C=" << s.C << " tokens<" << s.token_range);
      const Case c = make_case(s, 50, dtype == DType::BF16);
      const Result first = run_gpu(c, s, dtype), second = run_gpu(c, s, dtype);
      expect_same_bits(first.dwte, second.dwte, "dwte");
      expect_same_bits(first.dwpe, second.dwpe, "dwpe");
    }
  }
}

// Per-sequence first positions (KV-cache decoding) replace pos_offset: row (b, t) reads wpe[positions[b] +
// t].
TEST(CudaEmbedding, ForwardWithPerSequencePositions) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t C : {33, 768}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " C=" << C);
      const Shape s{4, 7, C, 50, 64, 0, 50};
      Case c = make_case(s, 60, dtype == DType::BF16);
      std::vector<int32_t> positions{0, 3, 20, 57};  // the last sequence ends exactly at ctx
      GpuBuffer tokens(DType::I32, {s.B, s.T}), pos(DType::I32, {s.B}), wte(dtype, {s.V, s.C}),
          wpe(dtype, {s.ctx, s.C}), out(dtype, {s.B, s.T, s.C});
      tokens.upload_ints(c.tokens);
      pos.upload_ints(positions);
      wte.upload(c.wte);
      wpe.upload(c.wpe);
      cuda::embedding_forward({.out = out, .tokens = tokens, .wte = wte, .wpe = wpe, .positions = pos});
      std::vector<float> want(s.B * s.T * s.C);
      cpu::embedding_forward({.out = Tensor(want.data(), DType::F32, {s.B, s.T, s.C}),
                              .tokens = Tensor(c.tokens.data(), DType::I32, {s.B, s.T}),
                              .wte = Tensor(c.wte.data(), DType::F32, {s.V, s.C}),
                              .wpe = Tensor(c.wpe.data(), DType::F32, {s.ctx, s.C}),
                              .positions = Tensor(positions.data(), DType::I32, {s.B})});
      expect_same_bits(out.download(), dtype == DType::BF16 ? testing::round_to_bf16(want) : want, "out");
    }
  }
}

// Token ids live on the device, so the launcher cannot check them: a token outside [0, V) yields a NaN
// row in the forward pass (the loss shows it) and is skipped by the backward pass; no access leaves wte.
TEST(CudaEmbedding, TokensOutsideTheVocabularyPoisonTheirRowsOnly) {
  REQUIRE_GPU();
  const Shape s{2, 5, 64, 10, 8, 0, 10};
  Case c = make_case(s, 70, false);
  c.tokens[3] = -1;
  c.tokens[7] = 10;
  const Result gpu = run_gpu(c, s, DType::F32);
  for (int64_t bt = 0; bt < s.B * s.T; ++bt)
    for (int64_t k = 0; k < s.C; ++k)
      EXPECT_EQ(std::isnan(gpu.out[bt * s.C + k]), bt == 3 || bt == 7) << "bt=" << bt;
  // dwte: the valid rows only; dwpe: every row (positions are valid).
  Case valid = c;
  for (int64_t bt : {3, 7}) {
    valid.tokens[bt] = 0;
    std::fill(valid.dout.begin() + bt * s.C, valid.dout.begin() + (bt + 1) * s.C, 0.0f);
  }
  const WantGrads want_wte = reference_grads(valid, s);
  c.tokens[3] = c.tokens[7] = 0;
  const WantGrads want_wpe = reference_grads(c, s);
  EXPECT_LT(ref::max_scaled_error(gpu.dwte, want_wte.dwte), ref::fp32_tolerance(s.B * s.T));
  EXPECT_LT(ref::max_scaled_error(gpu.dwpe, want_wpe.dwpe), ref::fp32_tolerance(s.B));
}

TEST(CudaEmbedding, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer tokens(DType::I32, {2, 4}), wte(DType::F32, {10, 8}), wpe(DType::F32, {6, 8}),
      out(DType::F32, {2, 4, 8}), out_bf16(DType::BF16, {2, 4, 8}), wpe7(DType::F32, {6, 7});
  EXPECT_THROW(
      cuda::embedding_forward({.out = out, .tokens = tokens, .wte = wte, .wpe = wpe, .pos_offset = 3}),
      std::invalid_argument);  // 3 + T = 7 > ctx = 6
  EXPECT_THROW(cuda::embedding_forward({.out = out_bf16, .tokens = tokens, .wte = wte, .wpe = wpe}),
               std::invalid_argument);
  EXPECT_THROW(cuda::embedding_forward({.out = out, .tokens = tokens, .wte = wte, .wpe = wpe7}),
               std::invalid_argument);
  EXPECT_THROW(
      cuda::embedding_backward({.dwte = wte, .dwpe = wpe, .dout = out, .tokens = tokens, .pos_offset = -1}),
      std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
