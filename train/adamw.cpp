#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace inkstone {
namespace {

// Elements [first, first + n) of a buffer view.
Tensor slice(Tensor t, int64_t first, int64_t n) {
  return Tensor(static_cast<char*>(t.data) + first * static_cast<int64_t>(dtype_size(t.dtype)), t.dtype, {n});
}

}  // namespace

AdamWOptimizer::AdamWOptimizer(GPT2& model, const AdamWConfig& config)
    : AdamWOptimizer(model, config, 0, model.parameter_buffer().numel()) {}

AdamWOptimizer::AdamWOptimizer(GPT2& model, const AdamWConfig& config, int64_t shard_begin, int64_t shard_end)
    : model_(model), config_(config), shard_begin_(shard_begin), shard_end_(shard_end) {
  if (shard_begin < 0 || shard_end < shard_begin || shard_end > model.parameter_buffer().numel()) {
    fail("internal: AdamW shard [{}, {}) outside the parameter buffer of {} elements", shard_begin, shard_end,
         model.parameter_buffer().numel());
  }
  Backend& backend = model.backend();
  const int64_t floats = std::max<int64_t>(1, shard_end - shard_begin);  // a rank may own nothing
  m_ = DeviceTensor(backend, DType::F32, {floats});
  v_ = DeviceTensor(backend, DType::F32, {floats});
  backend.fill_zero(m_);
  backend.fill_zero(v_);
}

float AdamWOptimizer::step(float lr) {
  return apply(lr, gradient_norm());
}

double AdamWOptimizer::gradient_norm() const {
  // The gradient buffer's alignment gaps and wte pad rows are zero, so the whole buffer's sum of
  // squares is the sum over the real gradients.
  return std::sqrt(model_.backend().sum_of_squares(model_.gradient_buffer()));
}

float AdamWOptimizer::apply(float lr, double norm) {
  Backend& backend = model_.backend();
  if (!std::isfinite(norm)) return static_cast<float>(norm);
  const double scale = config_.grad_clip > 0 ? std::min(1.0, config_.grad_clip / (norm + 1e-6)) : 1.0;
  ++steps_;
  for (const ParamInfo& p : model_.parameters()) {
    // Each tensor is updated over its allocated elements that lie in this optimizer's shard: wte's
    // pad rows have zero gradient, zero m and v and zero weight, so the update leaves them zero.
    const int64_t first = std::max(p.offset, shard_begin_);
    const int64_t last = std::min(p.offset + p.allocated, shard_end_);
    if (first >= last) continue;
    const int64_t n = last - first, in_tensor = first - p.offset;
    const Tensor master = model_.master_view(p);  // undefined when computing in fp32
    backend.adamw_update({.params = slice(model_.parameter_view(p), in_tensor, n),
                          .grads = slice(model_.gradient_view(p), in_tensor, n),
                          .m = slice(m_.view(), first - shard_begin_, n),
                          .v = slice(v_.view(), first - shard_begin_, n),
                          .master = master.data ? slice(master, in_tensor, n) : master,
                          .lr = lr,
                          .beta1 = config_.beta1,
                          .beta2 = config_.beta2,
                          .eps = config_.eps,
                          .weight_decay = p.is_matrix() ? config_.weight_decay : 0.0f,
                          .grad_scale = static_cast<float>(scale),
                          .step = static_cast<int>(steps_)});
  }
  return static_cast<float>(norm);
}

}  // namespace inkstone
