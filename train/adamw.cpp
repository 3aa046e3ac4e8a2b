#include "train/adamw.h"

#include <algorithm>
#include <cmath>

namespace inkstone {

AdamWOptimizer::AdamWOptimizer(GPT2& model, const AdamWConfig& config) : model_(model), config_(config) {
  Backend& backend = model.backend();
  const int64_t floats = model.parameter_buffer().numel();
  m_ = DeviceTensor(backend, DType::F32, {floats});
  v_ = DeviceTensor(backend, DType::F32, {floats});
  backend.fill_zero(m_);
  backend.fill_zero(v_);
}

float AdamWOptimizer::step(float lr) {
  Backend& backend = model_.backend();
  // The gradient buffer's alignment gaps and wte pad rows are zero, so the whole buffer's sum of
  // squares is the sum over the real gradients.
  const double norm = std::sqrt(backend.sum_of_squares(model_.gradient_buffer()));
  if (!std::isfinite(norm)) return static_cast<float>(norm);
  const double scale = config_.grad_clip > 0 ? std::min(1.0, config_.grad_clip / (norm + 1e-6)) : 1.0;
  ++steps_;
  for (const ParamInfo& p : model_.parameters()) {
    // Each tensor is updated over its allocated floats: wte's pad rows have zero gradient, zero m and
    // v and zero weight, so the update leaves them exactly zero.
    const Tensor m(m_.view().as<float>() + p.offset, DType::F32, {p.allocated});
    const Tensor v(v_.view().as<float>() + p.offset, DType::F32, {p.allocated});
    backend.adamw_update({.params = model_.parameter_view(p),
                          .grads = model_.gradient_view(p),
                          .m = m,
                          .v = v,
                          .master = model_.master_view(p),  // undefined when computing in fp32
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
