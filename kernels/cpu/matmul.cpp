// Fully connected layer on OpenBLAS: out[N,OC] = epilogue(inp[N,C] . W + bias).
// Layout: inp [N,C] (any leading dims, rows = numel / C); W is [C,OC] for WeightLayout::InOut (HF Conv1D)
// or [OC,C] for OutIn (nn.Linear, the tied lm_head); bias [OC]; out and pre_gelu [N,OC]. Precision: fp32.
// Forward OVERWRITES out (and pre_gelu with Epilogue::Gelu, which keeps the pre-activation for backward).
// Backward ACCUMULATES (beta = 1 in the GEMMs): dinp += dout . W^T, dweight += inp^T . dout (in W's
// layout), dbias += column sums of dout.
//
// Threading: every GEMM is split by output columns across the OpenMP team, one single-threaded sgemm
// per thread (OpenBLAS itself runs with one thread, see threads.cpp). Two thread pools that take turns
// on the same cores, each spinning while the other works, made the whole training step 1.6x slower;
// with one pool there is nothing to contend with. Column slices also keep results independent of
// the split (no reductions across threads) and let each thread apply bias and GELU to its own slice
// while it is still in cache.
#include <cblas.h>
#include <omp.h>

#include "kernels/cpu/blas_setup.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

// Column slices start at multiples of this: whole SIMD tiles of the GEMM kernels and whole cache lines.
constexpr int64_t kColumnAlign = 64;

struct MatmulShape {
  int64_t N, C, OC;
};

MatmulShape check_matmul(const char* op, const Tensor& inp, const Tensor& weight, WeightLayout layout) {
  require_f32(inp, op, "inp");
  require_f32(weight, op, "weight");
  require(weight.ndim == 2, op, "weight must be 2-D");
  const int64_t C = inp.dim(-1);
  const bool in_out = layout == WeightLayout::InOut;
  require(C > 0, op, "inp's last dimension is 0");
  require((in_out ? weight.dim(0) : weight.dim(1)) == C, op,
          "weight's input dimension does not match inp's last dimension");
  require(rows(inp) <= INT32_MAX && C <= INT32_MAX && weight.numel() / C <= INT32_MAX, op,
          "a dimension exceeds the BLAS int range");
  return {rows(inp), C, in_out ? weight.dim(1) : weight.dim(0)};
}

// Row-major c[M, cols] = a[M,K] . op(b) + beta * c, for the output columns `cols` only;
// op(b) is b[K, ldb] or, transposed, b[cols, K].
struct Gemm {
  int64_t M, K;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  bool transpose_b;
  float beta;
  float* c;
  int64_t ldc;
};

void gemm_columns(const Gemm& g, Range cols, bool transpose_a = false) {
  if (cols.begin >= cols.end) return;
  const float* b = g.transpose_b ? g.b + cols.begin * g.ldb : g.b + cols.begin;
  cblas_sgemm(
      CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, g.transpose_b ? CblasTrans : CblasNoTrans,
      static_cast<int>(g.M), static_cast<int>(cols.end - cols.begin), static_cast<int>(g.K), 1.0f, g.a,
      static_cast<int>(g.lda), b, static_cast<int>(g.ldb), g.beta, g.c + cols.begin, static_cast<int>(g.ldc));
}

// The whole GEMM over `columns` output columns, split across the OpenMP team.
void parallel_gemm(const Gemm& g, int64_t columns, bool transpose_a = false) {
#pragma omp parallel
  gemm_columns(g, this_thread_range(columns, kColumnAlign), transpose_a);
}

}  // namespace

void matmul_forward(const MatmulForward& p) {
  constexpr const char* op = "cpu::matmul_forward";
  const auto [N, C, OC] = check_matmul(op, p.inp, p.weight, p.layout);
  require_f32(p.out, op, "out");
  require_numel(p.out, N * OC, op, "out");
  if (p.bias.defined()) {
    require_f32(p.bias, op, "bias");
    require_numel(p.bias, OC, op, "bias");
  }
  const bool gelu_epilogue = p.epilogue == Epilogue::Gelu;
  if (gelu_epilogue) {
    require_f32(p.pre_gelu, op, "pre_gelu");
    require_numel(p.pre_gelu, N * OC, op, "pre_gelu");
  }
  if (N == 0 || OC == 0) return;
  prepare_blas();

  const bool in_out = p.layout == WeightLayout::InOut;
  float* pre = gelu_epilogue ? p.pre_gelu.as<float>() : p.out.as<float>();
  float* out = p.out.as<float>();
  const float* bias = p.bias.defined() ? p.bias.as<float>() : nullptr;
  const Gemm gemm{N, C, p.inp.as<float>(), C, p.weight.as<float>(), in_out ? OC : C, !in_out, 0.0f, pre, OC};
#pragma omp parallel
  {
    const Range cols = this_thread_range(OC, kColumnAlign);
    gemm_columns(gemm, cols);
    for (int64_t n = 0; n < N && (bias || gelu_epilogue); ++n) {
      float* pre_row = pre + n * OC;
      float* out_row = out + n * OC;
      if (bias) {
#pragma omp simd
        for (int64_t o = cols.begin; o < cols.end; ++o) pre_row[o] += bias[o];
      }
      if (gelu_epilogue) {
#pragma omp simd
        for (int64_t o = cols.begin; o < cols.end; ++o) out_row[o] = gelu(pre_row[o]);
      }
    }
  }
}

void matmul_backward(const MatmulBackward& p) {
  constexpr const char* op = "cpu::matmul_backward";
  const auto [N, C, OC] = check_matmul(op, p.inp, p.weight, p.layout);
  require_f32(p.dout, op, "dout");
  require_numel(p.dout, N * OC, op, "dout");
  require_f32(p.dweight, op, "dweight");
  require_numel(p.dweight, C * OC, op, "dweight");
  if (p.dinp.defined()) {
    require_f32(p.dinp, op, "dinp");
    require_numel(p.dinp, N * C, op, "dinp");
  }
  if (p.dbias.defined()) {
    require_f32(p.dbias, op, "dbias");
    require_numel(p.dbias, OC, op, "dbias");
  }
  if (N == 0 || OC == 0 || C == 0) return;
  prepare_blas();

  const bool in_out = p.layout == WeightLayout::InOut;
  const float* dout = p.dout.as<float>();
  const float* inp = p.inp.as<float>();
  const float* weight = p.weight.as<float>();
  if (p.dinp.defined()) {
    // dinp[N,C] += dout[N,OC] . W^T: W^T is an InOut weight [C,OC] transposed, or an OutIn one [OC,C] as is.
    parallel_gemm({N, OC, dout, OC, weight, in_out ? OC : C, in_out, 1.0f, p.dinp.as<float>(), C}, C);
  }
  if (in_out) {  // dW[C,OC] += inp^T . dout
    parallel_gemm({C, N, inp, C, dout, OC, false, 1.0f, p.dweight.as<float>(), OC}, OC, /*transpose_a=*/true);
  } else {  // dW[OC,C] += dout^T . inp
    parallel_gemm({OC, N, dout, OC, inp, C, false, 1.0f, p.dweight.as<float>(), C}, C, /*transpose_a=*/true);
  }

  if (p.dbias.defined()) {
    // Column sums, columns split across threads: each thread walks all rows over its own columns.
    float* dbias = p.dbias.as<float>();
#pragma omp parallel if (N * OC >= kParallelElementwise)
    {
      const Range cols = this_thread_range(OC, 16);
      for (int64_t row = 0; row < N; ++row) {
        const float* d = dout + row * OC;
#pragma omp simd
        for (int64_t o = cols.begin; o < cols.end; ++o) dbias[o] += d[o];
      }
    }
  }
}

}  // namespace inkstone::cpu
