// Fully connected layer on cuBLASLt: out[N,OC] = epilogue(inp[N,C] . W + bias) (MatmulForward and
// MatmulBackward in kernels/ops.h; cpu::matmul_* is the reference).
//
// Layout. Tensors are row-major; cuBLASLt is column-major, and a row-major [R, K] matrix is the
// column-major [K, R] one with the same bytes. So every product is computed transposed:
// out^T[OC,N] = W'^T . inp^T, with W'^T read straight from W [C,OC] (WeightLayout::InOut, HF Conv1D)
// or as a transpose of W [OC,C] (OutIn, the tied lm_head over wte [Vp,C]); the backward GEMMs
// likewise (see the three launch sites). The bias [OC] is the column-major D's per-row vector, which
// is what CUBLASLT_EPILOGUE_BIAS broadcasts.
//
// Contract. Forward OVERWRITES out (and pre_gelu with Epilogue::Gelu: the pre-activation, which the
// backward pass needs, while out holds gelu(pre_gelu)). Backward ACCUMULATES (beta = 1 in the GEMMs):
// dinp += dout . W^T, dweight += inp^T . dout in W's layout, dbias += column sums of dout; dinp and
// dbias are optional.
//
// Precision. F32: CUBLAS_COMPUTE_32F with fp32 operands, which is true fp32 FMA (TF32 only with
// CUBLAS_COMPUTE_32F_FAST_TF32, never asked for), so fp32 results differ from the CPU's only in the
// order of the sums. BF16: bf16 A, B, C, D and bias, fp32 compute and scale type; split-K partial sums
// are restricted to fp32 workspace reductions (REDUCTION_SCHEME_COMPUTE_TYPE), so nothing is summed
// in bf16 and each output is rounded once, after bias and the beta = 1 accumulation.
//
// GELU. The GEMM writes pre_gelu (with the bias epilogue) and gelu_kernel below turns it into out,
// rather than cuBLASLt's CUBLASLT_EPILOGUE_GELU_AUX_BIAS: cuBLASLt's documentation does not say which
// GELU its epilogue computes (GPT-2 needs the tanh form of kernels/cpu/gelu.cpp; cublasLt.h says only
// "x := GELU(x)"), public tests of its fp32 form allow ~2e-4 relative error (an approximate tanh, far
// outside the fp32 bound the tests hold F32 to), and the aux output's leading dimension must be
// divisible by 8 (cublasLt.h, EPILOGUE_AUX_LD), which OC = 50-style shapes break. The cost
// is one elementwise pass over [N, 4C] (read pre_gelu, write out) per MLP, small next to the GEMM.
// In BF16 out = gelu(bf16(pre)), the value the backward pass will see, as an unfused bf16 model does.
//
// Plans. cublasLtMatmulAlgoGetHeuristic is slow (tens of microseconds), so each distinct GEMM (dtype,
// transposes, sizes, leading dims, bias, pointer alignments) gets its descriptor, layouts and chosen
// algorithm built once and cached; a training step queries the heuristic only in its first step.
// Pointer alignment is part of the key because the heuristic assumes 256-byte-aligned operands unless
// told otherwise (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES, and the bias pointer's value, which it
// inspects), and an algorithm chosen for aligned pointers may fail on a view at an odd offset; each
// plan is chosen for the alignment (up to 256 bytes) its pointers actually have.
//
// Determinism. cuBLAS gives bit-identical results for the same algorithm, sizes and device when every
// call uses the one user-owned workspace on one stream (cuda::cublaslt_workspace() on cuda::stream()),
// and the cached plan fixes the algorithm. The bias gradient is our own two-pass column sum with fixed
// row ranges and a fixed reduction order, independent of the device.
#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gelu.cuh"
#include "kernels/cuda/matmul_bf16.h"

namespace inkstone::cuda {
namespace {

// ---- Kernels ---------------------------------------------------------------------------------------

// kVec elements moved as one access: 16 bytes for the vector path, one element for the scalar one.
template <class T, int kVec>
struct alignas(sizeof(T) * kVec) Packed {
  T v[kVec];
};

// out[i] = gelu(pre[i]) over n elements; out does not alias pre. With kVec > 1 both pointers are
// 16-byte aligned (checked by the launcher); the n % kVec tail is done element by element.
template <class T, int kVec>
__global__ void gelu_kernel(T* __restrict__ out, const T* __restrict__ pre, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t vectors = n / kVec;
  const auto* pre_v = reinterpret_cast<const Packed<T, kVec>*>(pre);
  auto* out_v = reinterpret_cast<Packed<T, kVec>*>(out);
  for (int64_t i = first; i < vectors; i += stride) {
    Packed<T, kVec> x = pre_v[i];
#pragma unroll
    for (int j = 0; j < kVec; ++j) x.v[j] = from_float<T>(gelu_tanh(to_float(x.v[j])));
    out_v[i] = x;
  }
  for (int64_t i = vectors * kVec + first; i < n; i += stride)
    out[i] = from_float<T>(gelu_tanh(to_float(pre[i])));
}

// Column sums of in[rows, cols] (row-major), one pass of the deterministic bias gradient. Block
// (kSumCols, kSumLanes) covers kSumCols columns of the row chunk [blockIdx.y * rows_per_chunk,
// +rows_per_chunk): thread (x, y) sums rows y, y + kSumLanes, ... of column x (a warp reads 32 consecutive
// elements of one row: coalesced), then row lane 0 adds the kSumLanes partial sums in order.
//   kAccumulate = false: out[blockIdx.y, col] = the chunk's sum (fp32 partials in scratch).
//   kAccumulate = true:  out[col] += the sum (gridDim.y == 1, one chunk of all rows).
// Every sum has a fixed shape set by (rows, cols) alone, so the result never depends on the grid's
// scheduling or the device.
constexpr int kSumCols = 32;
constexpr int kSumLanes = 8;

template <class In, class Out, bool kAccumulate>
__global__ void __launch_bounds__(kSumCols* kSumLanes)
    column_sum_kernel(Out* __restrict__ out, const In* __restrict__ in, int64_t rows, int64_t cols,
                      int64_t rows_per_chunk) {
  __shared__ float partial[kSumLanes][kSumCols];
  const int x = threadIdx.x, y = threadIdx.y;
  const int64_t col = int64_t(blockIdx.x) * kSumCols + x;
  const int64_t begin = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t end = min(rows, begin + rows_per_chunk);
  float sum = 0.0f;
  if (col < cols) {
#pragma unroll 4
    for (int64_t r = begin + y; r < end; r += kSumLanes) sum += to_float(in[r * cols + col]);
  }
  partial[y][x] = sum;
  __syncthreads();
  if (y == 0 && col < cols) {
    float total = 0.0f;
#pragma unroll
    for (int lane = 0; lane < kSumLanes; ++lane) total += partial[lane][x];
    if constexpr (kAccumulate) {
      out[col] = from_float<Out>(to_float(out[col]) + total);
    } else {
      out[int64_t(blockIdx.y) * cols + col] = from_float<Out>(total);
    }
  }
}

// ---- cuBLASLt GEMM with cached plans ---------------------------------------------------------------

// One column-major GEMM: D[m,n] = op(A) . op(B) (+ bias[m], broadcast over D's columns) + beta * D,
// with op(A) [m,k] and op(B) [k,n]. A is stored [m,k] (lda >= m), or [k,m] when trans_a; B is stored
// [k,n], or [n,k] when trans_b. All operands have one dtype; alpha is 1.
struct Gemm {
  cudaDataType_t type = CUDA_R_32F;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* d = nullptr;
  int64_t ldd = 0;
  const void* bias = nullptr;
  float beta = 0.0f;
};

// The largest power of two, at most 256, that divides the address: what the heuristic must assume.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment >>= 1;
  return alignment;
}

struct PlanKey {
  int type;
  bool trans_a, trans_b, bias;
  int64_t m, n, k, lda, ldb, ldd;
  uint32_t align_a, align_b, align_d, align_bias;

  auto tie() const {
    return std::tie(type, trans_a, trans_b, bias, m, n, k, lda, ldb, ldd, align_a, align_b, align_d,
                    align_bias);
  }
  bool operator<(const PlanKey& other) const { return tie() < other.tie(); }
};

PlanKey key_of(const Gemm& g) {
  return {static_cast<int>(g.type),
          g.trans_a,
          g.trans_b,
          g.bias != nullptr,
          g.m,
          g.n,
          g.k,
          g.lda,
          g.ldb,
          g.ldd,
          alignment_of(g.a),
          alignment_of(g.b),
          alignment_of(g.d),
          g.bias ? alignment_of(g.bias) : 0u};
}

// Descriptor, layouts (C and D share one: C is D, read when beta != 0) and the algorithm of one GEMM.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // host-side frees only: safe at any time, including static destruction
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

struct PreferenceGuard {
  cublasLtMatmulPreference_t pref = nullptr;
  ~PreferenceGuard() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
  }
};

template <class V>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const V& value) {
  INKSTONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}
template <class V>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attribute,
              const V& value) {
  INKSTONE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attribute, &value, sizeof(value)));
}

std::unique_ptr<Plan> make_plan(const Gemm& g, const PlanKey& key) {
  auto plan = std::make_unique<Plan>();
  INKSTONE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, trans_a);
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, trans_b);
  const cublasLtEpilogue_t epilogue = g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
  if (g.bias) {
    // The heuristic reads the pointer's value (its alignment); run_gemm sets each call's own.
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, static_cast<int32_t>(g.type));
  }
  const auto u64 = [](int64_t v) { return static_cast<uint64_t>(v); };
  INKSTONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, g.type, u64(g.trans_a ? g.k : g.m),
                                                   u64(g.trans_a ? g.m : g.k), g.lda));
  INKSTONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, g.type, u64(g.trans_b ? g.n : g.k),
                                                   u64(g.trans_b ? g.k : g.n), g.ldb));
  INKSTONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, g.type, u64(g.m), u64(g.n), g.ldd));

  PreferenceGuard guard;
  INKSTONE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&guard.pref));
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
           static_cast<uint64_t>(cublaslt_workspace_bytes()));
  // Split-K partials only in fp32 workspace (never summed in place in D's dtype, i.e. in bf16).
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
           static_cast<uint32_t>(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE));
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d);
  set_pref(guard.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  INKSTONE_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(cublaslt_handle()),
                                                       plan->desc, plan->a, plan->b, plan->d, plan->d,
                                                       guard.pref, 1, &result, &found));
  if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error("cuda::matmul: cuBLASLt has no algorithm for m=" + std::to_string(g.m) +
                             " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
                             (g.type == CUDA_R_16BF ? " (bf16)" : " (fp32)") + " with operand alignments " +
                             std::to_string(key.align_a) + "/" + std::to_string(key.align_b) + "/" +
                             std::to_string(key.align_d) + " bytes; align the tensors to 16 bytes");
  }
  plan->algo = result.algo;
  return plan;
}

// Enough for every GEMM of a model and several batch shapes; inference with ever-new prompt lengths
// would grow the map without end, so past this it starts over (plans are cheap to rebuild).
constexpr size_t kMaxPlans = 512;

void run_gemm(const Gemm& g) {
  static std::mutex mutex;  // the plans (and the bias pointer set on a shared descriptor)
  static std::map<PlanKey, std::unique_ptr<Plan>> plans;
  const PlanKey key = key_of(g);
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = plans.find(key);
  if (it == plans.end()) {
    if (plans.size() >= kMaxPlans) plans.clear();
    it = plans.emplace(key, make_plan(g, key)).first;
  }
  Plan& plan = *it->second;
  if (g.bias) set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
  const float alpha = 1.0f, beta = g.beta;
  INKSTONE_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(cublaslt_handle()), plan.desc, &alpha,
                                       g.a, plan.a, g.b, plan.b, &beta, g.d, plan.d, g.d, plan.d, &plan.algo,
                                       cublaslt_workspace(), cublaslt_workspace_bytes(), current_stream()));
}

// ---- Launchers -------------------------------------------------------------------------------------

using contract::contract_violation;
using contract::require_numel;

void require_float(const Tensor& t, DType dtype, const char* op, const char* name) {
  if (!t.defined()) contract_violation(op, std::string(name) + " is missing");
  if (t.dtype != dtype)
    contract_violation(op, std::string(name) + " is " + dtype_name(t.dtype) + " but inp is " +
                               dtype_name(dtype) + "; every float tensor of a matmul has one dtype");
}

struct MatmulShape {
  int64_t N, C, OC;
};

MatmulShape check_matmul(const char* op, const Tensor& inp, const Tensor& weight, WeightLayout layout) {
  if (!inp.defined()) contract_violation(op, "inp is missing");
  if (inp.ndim < 1) contract_violation(op, "inp must have at least one dimension");
  if (inp.dtype != DType::F32 && inp.dtype != DType::BF16)
    contract_violation(op, std::string("only F32 and BF16 are supported, inp is ") + dtype_name(inp.dtype));
  require_float(weight, inp.dtype, op, "weight");
  if (weight.ndim != 2) contract_violation(op, "weight must be 2-D");
  const int64_t C = inp.dim(-1);
  if (C <= 0) contract_violation(op, "inp's last dimension is 0");
  const bool in_out = layout == WeightLayout::InOut;
  if ((in_out ? weight.dim(0) : weight.dim(1)) != C)
    contract_violation(op, "weight's input dimension (" +
                               std::to_string(in_out ? weight.dim(0) : weight.dim(1)) +
                               ") does not match inp's last dimension (" + std::to_string(C) + ")");
  return {inp.numel() / C, C, in_out ? weight.dim(1) : weight.dim(0)};
}

cudaDataType_t cuda_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

template <class T>
void launch_gelu(void* out, const void* pre, int64_t n) {
  constexpr int kThreads = 256;
  constexpr int kVec = 16 / sizeof(T);
  const bool aligned =
      reinterpret_cast<uintptr_t>(out) % 16 == 0 && reinterpret_cast<uintptr_t>(pre) % 16 == 0;
  if (aligned) {
    gelu_kernel<T, kVec>
        <<<grid_for(std::max<int64_t>(1, n / kVec), kThreads), kThreads, 0, current_stream()>>>(
            static_cast<T*>(out), static_cast<const T*>(pre), n);
  } else {
    gelu_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<T*>(out), static_cast<const T*>(pre), n);
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

// dbias[OC] += column sums of dout[N, OC], in two ordered passes through fp32 partials in scratch.
template <class T>
void launch_bias_gradient(void* dbias, const void* dout, int64_t N, int64_t OC) {
  // Chunks of at least 128 rows (16 per thread) and at most 256 chunks: a grid of thousands of blocks
  // for GPT-2 sizes, and a second pass of at most 256 rows. Depends on N only.
  constexpr int64_t kMinChunkRows = 128, kMaxChunks = 256;
  const int64_t chunk_rows = std::max(kMinChunkRows, (N + kMaxChunks - 1) / kMaxChunks);
  const int64_t chunks = (N + chunk_rows - 1) / chunk_rows;
  auto* partials = static_cast<float*>(scratch(static_cast<size_t>(chunks * OC) * sizeof(float)));
  const dim3 block(kSumCols, kSumLanes);
  const auto column_blocks = static_cast<unsigned>((OC + kSumCols - 1) / kSumCols);
  column_sum_kernel<T, float, false>
      <<<dim3(column_blocks, static_cast<unsigned>(chunks)), block, 0, current_stream()>>>(
          partials, static_cast<const T*>(dout), N, OC, chunk_rows);
  INKSTONE_CUDA_CHECK_LAUNCH();
  column_sum_kernel<float, T, true><<<dim3(column_blocks, 1), block, 0, current_stream()>>>(
      static_cast<T*>(dbias), partials, chunks, OC, chunks);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void matmul_forward(const MatmulForward& p) {
  constexpr const char* op = "cuda::matmul_forward";
  const auto [N, C, OC] = check_matmul(op, p.inp, p.weight, p.layout);
  const DType dtype = p.inp.dtype;
  require_float(p.out, dtype, op, "out");
  require_numel(p.out, N * OC, op, "out");
  if (p.bias.defined()) {
    require_float(p.bias, dtype, op, "bias");
    require_numel(p.bias, OC, op, "bias");
  }
  const bool gelu = p.epilogue == Epilogue::Gelu;
  if (gelu) {
    require_float(p.pre_gelu, dtype, op, "pre_gelu");
    require_numel(p.pre_gelu, N * OC, op, "pre_gelu");
    if (p.pre_gelu.data == p.out.data) contract_violation(op, "pre_gelu must not alias out");
  }
  if (N == 0 || OC == 0) return;

  // out^T[OC,N] = W'^T[OC,C] . inp^T[C,N]. InOut: W [C,OC] row-major is W^T column-major, as is.
  // OutIn: W [OC,C] row-major is the column-major [C,OC]; transposed it is W'^T = W.
  const bool in_out = p.layout == WeightLayout::InOut;
  Gemm g;
  g.type = cuda_type(dtype);
  g.m = OC;
  g.n = N;
  g.k = C;
  g.trans_a = !in_out;
  g.a = p.weight.data;
  g.lda = in_out ? OC : C;
  g.b = p.inp.data;  // inp [N,C] row-major = inp^T column-major [C,N]
  g.ldb = C;
  g.d = gelu ? p.pre_gelu.data : p.out.data;
  g.ldd = OC;
  g.bias = p.bias.defined() ? p.bias.data : nullptr;
  g.beta = 0.0f;
  run_gemm(g);
  if (gelu) {
    if (dtype == DType::BF16) {
      launch_gelu<__nv_bfloat16>(p.out.data, p.pre_gelu.data, N * OC);
    } else {
      launch_gelu<float>(p.out.data, p.pre_gelu.data, N * OC);
    }
  }
}

void matmul_backward(const MatmulBackward& p) {
  constexpr const char* op = "cuda::matmul_backward";
  const auto [N, C, OC] = check_matmul(op, p.inp, p.weight, p.layout);
  const DType dtype = p.inp.dtype;
  require_float(p.dout, dtype, op, "dout");
  require_numel(p.dout, N * OC, op, "dout");
  require_float(p.dweight, dtype, op, "dweight");
  require_numel(p.dweight, C * OC, op, "dweight");
  if (p.dinp.defined()) {
    require_float(p.dinp, dtype, op, "dinp");
    require_numel(p.dinp, N * C, op, "dinp");
  }
  if (p.dbias.defined()) {
    require_float(p.dbias, dtype, op, "dbias");
    require_numel(p.dbias, OC, op, "dbias");
  }
  if (N == 0 || OC == 0) return;

  const bool in_out = p.layout == WeightLayout::InOut;
  const cudaDataType_t type = cuda_type(dtype);
  if (p.dinp.defined()) {
    // dinp^T[C,N] += W'[C,OC] . dout^T[OC,N]. InOut: W [C,OC] is the column-major [OC,C], transposed.
    // OutIn: W [OC,C] is the column-major [C,OC] = W', as is.
    Gemm g;
    g.type = type;
    g.m = C;
    g.n = N;
    g.k = OC;
    g.trans_a = in_out;
    g.a = p.weight.data;
    g.lda = in_out ? OC : C;
    g.b = p.dout.data;  // dout [N,OC] row-major = dout^T column-major [OC,N]
    g.ldb = OC;
    g.d = p.dinp.data;
    g.ldd = C;
    g.beta = 1.0f;
    run_gemm(g);
  }
  {
    Gemm g;
    g.type = type;
    g.k = N;
    g.d = p.dweight.data;
    g.beta = 1.0f;
    if (in_out) {
      // dW [C,OC] += inp^T . dout, i.e. column-major dW^T[OC,C] += dout^T[OC,N] . inp[N,C]:
      // dout^T is dout's bytes as is; inp[N,C] is inp^T column-major [C,N], transposed.
      g.m = OC;
      g.n = C;
      g.a = p.dout.data;
      g.lda = OC;
      g.b = p.inp.data;
      g.ldb = C;
      g.trans_b = true;
      g.ldd = OC;
    } else {
      // dW [OC,C] += dout^T . inp, i.e. column-major dW^T[C,OC] += inp^T[C,N] . dout[N,OC]:
      // inp^T is inp's bytes as is; dout[N,OC] is dout^T column-major [OC,N], transposed.
      g.m = C;
      g.n = OC;
      g.a = p.inp.data;
      g.lda = C;
      g.b = p.dout.data;
      g.ldb = OC;
      g.trans_b = true;
      g.ldd = C;
    }
    run_gemm(g);
  }
  if (p.dbias.defined()) {
    if (dtype == DType::BF16) {
      launch_bias_gradient<__nv_bfloat16>(p.dbias.data, p.dout.data, N, OC);
    } else {
      launch_bias_gradient<float>(p.dbias.data, p.dout.data, N, OC);
    }
  }
}

void gemm_bf16_for_benchmark(int m, int n, int k, const void* a, const void* b, void* c) {
  if (m <= 0 || n <= 0 || k <= 0)
    throw std::invalid_argument("cuda::gemm_bf16_for_benchmark: m, n and k must be positive, got " +
                                std::to_string(m) + ", " + std::to_string(n) + ", " + std::to_string(k));
  // Row-major C[m,n] = A[m,k] . B[k,n] is column-major C^T[n,m] = B^T[n,k] . A^T[k,m], and each X^T
  // column-major is X's row-major bytes: no transposes.
  Gemm g;
  g.type = CUDA_R_16BF;
  g.m = n;
  g.n = m;
  g.k = k;
  g.a = b;
  g.lda = n;
  g.b = a;
  g.ldb = k;
  g.d = c;
  g.ldd = n;
  run_gemm(g);
}

}  // namespace inkstone::cuda
