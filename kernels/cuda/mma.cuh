// Warp-level tensor-core building blocks (sm_80 and up) for the attention kernels: cp.async tile
// loads into XOR-swizzled shared memory, ldmatrix fragment loads, and mma.sync m16n8k16 (bf16 in,
// fp32 accumulate), all in inline PTX so the fragment layouts below are the ones the PTX ISA states.
//
// Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4 (a pair "2t.." is the two elements 2t, 2t + 1 of one register):
//   A (16x16, row-major), 4 regs:  a0 (row g, cols 2t..)    a1 (row g+8, cols 2t..)
//                                  a2 (row g, cols 2t+8..)  a3 (row g+8, cols 2t+8..)
//   B (16x8, "col": stored as B^T [n][k]), 2 regs:  b0 (k 2t.., n g)  b1 (k 2t+8.., n g)
//   C (16x8, fp32), 4 floats:  c0, c1 (row g, cols 2t, 2t+1)  c2, c3 (row g+8, cols 2t, 2t+1)
// The lower 16 bits of a bf16x2 register hold the element with the smaller column (or k) index.
// So the C fragments of two neighbouring n-blocks, rounded to bf16, are exactly the A fragment of
// one 16-wide k-step (to_a_fragments): P = softmax(S) is fed to P.V without leaving registers.
//
// Shared-memory tiles are [rows][kCols] bf16, row-major, rows of kCols * 2 bytes (128 or 256). The
// 16-byte chunk c of row r is stored at chunk position c ^ (r % 8): ldmatrix reads 8 rows of one
// logical chunk per phase, and those land on 8 different 16-byte bank groups, so neither ldmatrix
// nor ldmatrix.trans has bank conflicts (unswizzled, every row would start on bank 0).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace inkstone::cuda::mma {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- cp.async (global -> shared, bypassing registers) ------------------------------------------------

// Copies 16 bytes, or writes 16 zero bytes when !fill (src-size 0: nothing is read from src, which
// must still be a valid address).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool fill) {
  const int src_bytes = fill ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(src)), "r"(src_bytes)
               : "memory");
}
// The same for 4 bytes (through L1: .cg takes only 16).
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool fill) {
  const int src_bytes = fill ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(src)), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most `kPending` of this thread's committed groups are still in flight. Other threads'
// copies are visible only after a __syncthreads() that follows.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// ---- Swizzled tiles ----------------------------------------------------------------------------------

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][kCols] bf16 tile.
template <int kCols>
__device__ __forceinline__ uint32_t tile_offset(int row, int chunk) {
  static_assert(kCols % 64 == 0, "the swizzle permutes 8 chunks of 8 bf16: rows must be a multiple of 64");
  return static_cast<uint32_t>(row * (kCols * 2) + ((chunk ^ (row & 7)) << 4));
}

// All kThreads threads of the block copy rows [0, kRows) of a tile whose row r is src + r * ld
// (elements) into the swizzled tile at `tile`; rows r >= valid_rows are zero-filled (their source is
// not read).
// Thread i copies chunk i % kChunks of rows i / kChunks + j * kStep: consecutive threads read
// consecutive 16 bytes of a row, and since kStep is a multiple of 8 every row a thread copies has
// the same swizzle, so one offset and one pointer serve all of them.
template <int kRows, int kCols, int kThreads>
__device__ __forceinline__ void load_tile_async(uint32_t tile, const __nv_bfloat16* src, int64_t ld,
                                                int valid_rows) {
  constexpr int kChunks = kCols / 8, kStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kStep % 8 == 0 && kRows % kStep == 0, "tile and block shapes");
  const int row = static_cast<int>(threadIdx.x) / kChunks, chunk = static_cast<int>(threadIdx.x) % kChunks;
  const uint32_t dst = tile + tile_offset<kCols>(row, chunk);
  const __nv_bfloat16* from = src + row * ld + chunk * 8;
#pragma unroll
  for (int j = 0; j < kRows / kStep; ++j) {
    const bool valid = row + j * kStep < valid_rows;
    cp_async_16(dst + j * kStep * kCols * 2, valid ? from + j * kStep * ld : src, valid);
  }
}

// ---- ldmatrix ---------------------------------------------------------------------------------------

// Four 8x8 b16 matrices; lanes 8m .. 8m+7 give the row addresses of matrix m, whose fragment lands
// in r[m] (lane l holds row l/4, elements 2(l%4), 2(l%4)+1; with .trans, of the transposed matrix).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// A fragment of the 16x16 block at (row0, col0) of a tile: matrices (rows +0, cols +0), (+8, +0),
// (+0, +8), (+8, +8) are a0..a3.
template <int kCols>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], uint32_t tile, int row0, int col0, int lane) {
  ldmatrix_x4(a, tile + tile_offset<kCols>(row0 + (lane & 15), (col0 >> 3) + (lane >> 4)));
}

// B fragments of n-blocks n0 and n0 + 8 for the k-step at k0, from a tile stored [n][k] (B^T
// row-major: K for S = Q K^T). Matrices (n +0, k +0), (+0, +8), (+8, +0), (+8, +8) give
// b[0], b[1] (n-block n0) and b[2], b[3] (n-block n0 + 8).
template <int kCols>
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], uint32_t tile, int n0, int k0, int lane) {
  ldmatrix_x4(b,
              tile + tile_offset<kCols>(n0 + (lane & 7) + ((lane >> 4) << 3), (k0 >> 3) + ((lane >> 3) & 1)));
}

// The same fragments from a tile stored [k][n] (B row-major: V for O = P V), through .trans.
// Matrices (k +0, n +0), (+8, +0), (+0, +8), (+8, +8) give b[0], b[1], b[2], b[3].
template <int kCols>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], uint32_t tile, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, tile + tile_offset<kCols>(k0 + (lane & 15), (n0 >> 3) + (lane >> 4)));
}

// ---- mma ----------------------------------------------------------------------------------------------

// c += a . b for one 16x8x16 step.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The A fragments of a 16 x kK operand from the fp32 accumulators (16 x kK) of an earlier mma,
// rounded to bf16: k-step ks is made of n-blocks 2ks and 2ks + 1.
template <int kK>
__device__ __forceinline__ void to_a_fragments(uint32_t (&a)[kK / 16][4], const float (&c)[kK / 8][4]) {
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
    a[ks][0] = pack_bf16x2(c[2 * ks][0], c[2 * ks][1]);
    a[ks][1] = pack_bf16x2(c[2 * ks][2], c[2 * ks][3]);
    a[ks][2] = pack_bf16x2(c[2 * ks + 1][0], c[2 * ks + 1][1]);
    a[ks][3] = pack_bf16x2(c[2 * ks + 1][2], c[2 * ks + 1][3]);
  }
}

// ---- Warp GEMMs on a warp's 16 rows ------------------------------------------------------------------

// acc (16 x kN) += A (16 x kK) . B^T with A in registers (kK / 16 fragments) and B stored [kN][kK]
// in rows b_row0 .. b_row0 + kN - 1 of the tile b.
template <int kK, int kN>
__device__ __forceinline__ void mma_abt(float (&acc)[kN / 8][4], const uint32_t (&a)[kK / 16][4], uint32_t b,
                                        int b_row0, int lane) {
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
#pragma unroll
    for (int np = 0; np < kN / 16; ++np) {
      uint32_t f[4];
      load_b_nk<kK>(f, b, b_row0 + np * 16, ks * 16, lane);
      mma_16816(acc[2 * np], a[ks], f[0], f[1]);
      mma_16816(acc[2 * np + 1], a[ks], f[2], f[3]);
    }
  }
}

// The same with A read from rows a_row0 .. a_row0 + 15 of the tile a ([rows][kK]), one k-step at a time.
template <int kK, int kN>
__device__ __forceinline__ void mma_abt(float (&acc)[kN / 8][4], uint32_t a, int a_row0, uint32_t b,
                                        int b_row0, int lane) {
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
    uint32_t fa[4];
    load_a<kK>(fa, a, a_row0, ks * 16, lane);
#pragma unroll
    for (int np = 0; np < kN / 16; ++np) {
      uint32_t f[4];
      load_b_nk<kK>(f, b, b_row0 + np * 16, ks * 16, lane);
      mma_16816(acc[2 * np], fa, f[0], f[1]);
      mma_16816(acc[2 * np + 1], fa, f[2], f[3]);
    }
  }
}

// acc (16 x kN) += A (16 x kK) . B with A in registers (from to_a_fragments: P or dS) and B stored
// [kK][kN] in rows b_row0 .. b_row0 + kK - 1 of the tile b.
template <int kK, int kN>
__device__ __forceinline__ void mma_ab(float (&acc)[kN / 8][4], const uint32_t (&a)[kK / 16][4], uint32_t b,
                                       int b_row0, int lane) {
#pragma unroll
  for (int ks = 0; ks < kK / 16; ++ks) {
#pragma unroll
    for (int np = 0; np < kN / 16; ++np) {
      uint32_t f[4];
      load_b_kn<kN>(f, b, b_row0 + ks * 16, np * 16, lane);
      mma_16816(acc[2 * np], a[ks], f[0], f[1]);
      mma_16816(acc[2 * np + 1], a[ks], f[2], f[3]);
    }
  }
}

// ---- Math ----------------------------------------------------------------------------------------------

// 2^x with the SFU (ex2.approx.ftz: max relative error ~2^-22; 2^-inf = +0, which masking relies on).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace inkstone::cuda::mma
