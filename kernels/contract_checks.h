// Cheap contract checks shared by the ops of every backend. A violated contract is a bug in the caller
// (the model or a backend user), not bad user input, so these throw std::invalid_argument naming the
// op ("cpu::add", "cuda::layernorm_backward": the backend is part of the name) and the tensor, before
// any work starts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/tensor.h"

namespace inkstone::contract {

[[noreturn]] inline void contract_violation(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

inline void require(bool ok, const char* op, const char* what) {
  if (!ok) contract_violation(op, what);
}

inline void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name) {
  if (!t.defined()) contract_violation(op, std::string(name) + " is missing");
  if (t.dtype != dtype)
    contract_violation(op,
                       std::string(name) + " must be " + dtype_name(dtype) + ", got " + dtype_name(t.dtype));
}

inline void require_f32(const Tensor& t, const char* op, const char* name) {
  require_dtype(t, DType::F32, op, name);
}

inline void require_numel(const Tensor& t, int64_t numel, const char* op, const char* name) {
  if (t.numel() != numel)
    contract_violation(op, std::string(name) + " has " + std::to_string(t.numel()) + " elements, expected " +
                               std::to_string(numel));
}

inline void require_f32_numel(const Tensor& t, int64_t numel, const char* op, const char* name) {
  require_f32(t, op, name);
  require_numel(t, numel, op, name);
}

// The float dtype of an op (F32 or BF16), read from `t`, which must be defined.
inline DType require_float_dtype(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) contract_violation(op, std::string(name) + " is missing");
  if (t.dtype != DType::F32 && t.dtype != DType::BF16)
    contract_violation(op, std::string(name) + " must be F32 or BF16, got " + dtype_name(t.dtype));
  return t.dtype;
}

// Number of rows of a tensor viewed as [rows, last dim].
inline int64_t rows(const Tensor& t) {
  const int64_t cols = t.ndim > 0 ? t.dim(-1) : 0;
  return cols > 0 ? t.numel() / cols : 0;
}

}  // namespace inkstone::contract
