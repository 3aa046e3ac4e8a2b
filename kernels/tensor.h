// A non-owning view of a dense, row-major buffer on some device.
// Ops receive views; who owns the memory (a backend arena, a host vector) is decided above kernels/.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace inkstone {

enum class DType : uint8_t { F32, BF16, I32 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
  }
  return 0;
}

const char* dtype_name(DType t);

struct Tensor {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};

  Tensor() = default;
  Tensor(void* ptr, DType type, std::initializer_list<int64_t> dims) : data(ptr), dtype(type) {
    assert(dims.size() <= kMaxDims);
    for (int64_t d : dims) shape[ndim++] = d;
  }

  bool defined() const { return data != nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const {
    const int k = i < 0 ? ndim + i : i;
    assert(k >= 0 && k < ndim);
    return shape[k];
  }

  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace inkstone
