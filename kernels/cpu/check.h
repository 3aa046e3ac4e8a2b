// Cheap contract checks shared by the CPU ops. A violated contract is a bug in the caller (the model
// or a backend user), not bad user input, so these throw std::invalid_argument naming op and tensor.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/tensor.h"

namespace inkstone::cpu::detail {

[[noreturn]] inline void contract_violation(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string("cpu::") + op + ": " + what);
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

// Number of rows of a tensor viewed as [rows, last dim].
inline int64_t rows(const Tensor& t) {
  const int64_t cols = t.ndim > 0 ? t.dim(-1) : 0;
  return cols > 0 ? t.numel() / cols : 0;
}

}  // namespace inkstone::cpu::detail
