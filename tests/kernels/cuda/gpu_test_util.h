// What the GPU parity tests share: a device buffer that owns its memory, bf16 rounding on the host,
// and the precision-derived tolerance rule.
//
// Tolerances (FlashAttention's rule). A BF16 kernel is judged by comparing its error against a float64
// reference with the error of a PLAIN bf16 implementation (the CPU reference run in fp32 on the same
// bf16-rounded inputs, its result rounded to bf16): the kernel may be at most `factor` times worse,
// plus a floor of a few bf16 ulps of the output scale for outputs where the plain error is ~0.
// An F32 kernel differs from the CPU only in the order of its fp32 sums: its bound is stated per test
// as a multiple of fp32 epsilon times the magnitudes summed.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/tensor.h"

namespace inkstone::testing {

// Device memory holding n elements of `dtype`, freed on destruction.
class GpuBuffer {
 public:
  GpuBuffer(DType dtype, std::initializer_list<int64_t> shape) : view_(nullptr, dtype, shape) {
    EXPECT_EQ(cudaMalloc(&view_.data, std::max<size_t>(view_.nbytes(), 1)), cudaSuccess);
  }
  ~GpuBuffer() { cudaFree(view_.data); }
  GpuBuffer(const GpuBuffer&) = delete;
  GpuBuffer& operator=(const GpuBuffer&) = delete;

  const Tensor& view() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT: usable wherever an op takes a tensor

  void upload_bytes(const void* host) {
    EXPECT_EQ(cudaMemcpy(view_.data, host, view_.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  }
  void download_bytes(void* host) const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host, view_.data, view_.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  }
  // Floats in, converted to the buffer's dtype (rounded to nearest even for BF16).
  void upload(const std::vector<float>& values);
  // The buffer's contents widened to float.
  std::vector<float> download() const;
  void upload_ints(const std::vector<int32_t>& values) { upload_bytes(values.data()); }
  std::vector<int32_t> download_ints() const {
    std::vector<int32_t> out(view_.numel());
    download_bytes(out.data());
    return out;
  }

 private:
  Tensor view_;
};

inline std::vector<float> round_to_bf16(const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> b(n);
  std::vector<float> out(n);
  cpu::cast({Tensor(b.data(), DType::BF16, {n}), Tensor(const_cast<float*>(x.data()), DType::F32, {n})});
  cpu::cast({Tensor(out.data(), DType::F32, {n}), Tensor(b.data(), DType::BF16, {n})});
  return out;
}

inline void GpuBuffer::upload(const std::vector<float>& values) {
  EXPECT_EQ(static_cast<int64_t>(values.size()), view_.numel());
  if (view_.dtype == DType::F32) return upload_bytes(values.data());
  const int64_t n = view_.numel();
  std::vector<uint16_t> b(n);
  cpu::cast({Tensor(b.data(), DType::BF16, {n}), Tensor(const_cast<float*>(values.data()), DType::F32, {n})});
  upload_bytes(b.data());
}

inline std::vector<float> GpuBuffer::download() const {
  const int64_t n = view_.numel();
  std::vector<float> out(n);
  if (view_.dtype == DType::F32) {
    download_bytes(out.data());
    return out;
  }
  std::vector<uint16_t> b(n);
  download_bytes(b.data());
  cpu::cast({Tensor(out.data(), DType::F32, {n}), Tensor(b.data(), DType::BF16, {n})});
  return out;
}

struct ErrorStats {
  double max_abs = 0;  // largest |got - want|
  double rms = 0;      // root mean square of got - want
  double scale = 0;    // root mean square of want (for floors relative to the output's size)
};

inline ErrorStats error_against(const std::vector<float>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  ErrorStats s;
  double sq = 0, wq = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double d = std::abs(static_cast<double>(got[i]) - want[i]);
    s.max_abs = std::max(s.max_abs, d);
    sq += d * d;
    wq += want[i] * want[i];
  }
  const double n = std::max<double>(1, static_cast<double>(want.size()));
  s.rms = std::sqrt(sq / n);
  s.scale = std::sqrt(wq / n);
  return s;
}

// The rule above: the kernel's errors against float64 are within `factor` times the plain bf16
// implementation's, plus 2 bf16 ulps (2^-7 relative) of the output's rms as a floor.
inline void expect_bf16_error_within(const std::vector<float>& kernel, const std::vector<float>& plain,
                                     const std::vector<double>& want, const char* what, double factor = 2.0) {
  const ErrorStats k = error_against(kernel, want), p = error_against(plain, want);
  const double floor = std::ldexp(p.scale, -6);
  EXPECT_LE(k.rms, factor * p.rms + floor) << what << ": rms error " << k.rms << " vs plain bf16 " << p.rms;
  EXPECT_LE(k.max_abs, factor * p.max_abs + floor)
      << what << ": max error " << k.max_abs << " vs plain bf16 " << p.max_abs;
}

inline std::vector<double> widen(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

}  // namespace inkstone::testing
