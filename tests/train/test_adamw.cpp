// AdamW on a GPT2 (CPU backend): five steps against PyTorch's torch.optim.AdamW +
// clip_grad_norm_ in float64 (tests/fixtures/make_gpt2_golden.py), one step against the update
// formula written out here, the untouched wte padding, and the non-finite-gradient guard.
#include "train/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fixtures/safetensors_fixture.h"
#include "runtime/backend.h"
#include "runtime/gpt2.h"
#include "runtime/rng.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::SafetensorsFixture;

GPT2Shape small_shape() {
  return {.n_layer = 2, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 67};
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(vocab));
  return t;
}

TEST(AdamW, FiveStepsMatchPyTorch) {
  const SafetensorsFixture golden(testing::source_dir() / "tests" / "fixtures" / "gpt2_golden.safetensors");
  GPT2Shape shape = small_shape();
  ASSERT_EQ(shape.vocab, golden.metadata_int("vocab"));
  ASSERT_EQ(shape.n_embd, golden.metadata_int("n_embd"));
  const int B = golden.metadata_int("batch"), T = golden.metadata_int("seq");
  auto backend = make_backend("cpu");
  GPT2 model(*backend, shape, B, T);
  for (const ParamInfo& p : model.parameters()) model.write_parameter(p.name, golden.f32("param/" + p.name));
  AdamWOptimizer opt(model, {.beta1 = float(golden.metadata_double("beta1")),
                             .beta2 = float(golden.metadata_double("beta2")),
                             .eps = float(golden.metadata_double("eps")),
                             .weight_decay = float(golden.metadata_double("weight_decay")),
                             .grad_clip = float(golden.metadata_double("grad_clip"))});
  const float lr = float(golden.metadata_double("lr"));
  const std::vector<int32_t> tokens = golden.i32("tokens"), targets = golden.i32("targets");
  const std::vector<double> want_loss = golden.f64("adamw/losses"),
                            want_norm = golden.f64("adamw/grad_norms");
  for (size_t step = 0; step < want_loss.size(); ++step) {
    model.zero_grad();
    const float loss = model.forward(tokens, targets, B, T);
    model.backward();
    const float norm = opt.step(lr);
    // Step 1 is the float32 forward/backward alone (measured error 2e-11: the mean is in double).
    // Later steps add Adam's sensitivity: an update is ~lr * sign(g) per entry, so entries whose
    // float32 gradient differs from float64's in the sixth digit move slightly differently, and
    // the loss falls 20x in five steps. Measured: <= 4e-6 relative for losses and norms; 5e-5
    // leaves >10x headroom, while a misplaced bias correction, decay (lr * wd = 1e-3 per step) or
    // clipping scale changes these by 1e-3 or more.
    EXPECT_NEAR(loss, want_loss[step], 5e-5 * want_loss[step]) << "step " << step + 1;
    EXPECT_NEAR(norm, want_norm[step], 5e-5 * want_norm[step]) << "step " << step + 1;
  }
  EXPECT_EQ(opt.steps(), static_cast<int64_t>(want_loss.size()));
}

// One step of every tensor against AdamW written out in double precision:
//   g' = g * min(1, clip / (|g| + 1e-6)); m = (1 - b1) g'; v = (1 - b2) g'^2  (from zero state)
//   p <- p - lr * (m / (1 - b1)) / (sqrt(v / (1 - b2)) + eps) - lr * wd * p   (wd on 2-D tensors only)
// eps is chosen comparable to the gradients so the update depends on the clipping scale, and
// decay is large so that decaying a bias (or not decaying a matrix) is visible.
TEST(AdamW, OneStepFollowsTheFormula) {
  const GPT2Shape shape = small_shape();
  auto backend = make_backend("cpu");
  const int B = 2, T = 8;
  GPT2 model(*backend, shape, B, T);
  model.initialize(5);
  const std::vector<int32_t> tokens = random_tokens(B * T, shape.vocab, 1),
                             targets = random_tokens(B * T, shape.vocab, 2);
  model.zero_grad();
  model.forward(tokens, targets, B, T);
  model.backward();

  std::map<std::string, std::vector<float>> before, grads;
  double sum_sq = 0;
  for (const ParamInfo& p : model.parameters()) {
    before[p.name] = model.read_parameter(p.name);
    grads[p.name] = model.read_gradient(p.name);
    for (float g : grads[p.name]) sum_sq += double(g) * g;
  }
  const double norm = std::sqrt(sum_sq);
  const AdamWConfig config{.beta1 = 0.8f,
                           .beta2 = 0.9f,
                           .eps = 1e-3f,
                           .weight_decay = 0.5f,
                           .grad_clip = static_cast<float>(norm / 4)};
  const double lr = 0.05;
  AdamWOptimizer opt(model, config);
  EXPECT_NEAR(opt.step(static_cast<float>(lr)), norm, 1e-5 * norm);
  const double scale = config.grad_clip / (norm + 1e-6);
  for (const ParamInfo& p : model.parameters()) {
    const std::vector<float> after = model.read_parameter(p.name);
    const double wd = p.is_matrix() ? config.weight_decay : 0.0;
    const std::vector<float>& p0 = before[p.name];
    const std::vector<float>& g0 = grads[p.name];
    double worst = 0;
    for (size_t i = 0; i < after.size(); ++i) {
      const double g = g0[i] * scale;
      const double m_hat = (1 - config.beta1) * g / (1 - config.beta1);
      const double v_hat = (1 - config.beta2) * g * g / (1 - config.beta2);
      const double want = p0[i] - lr * (m_hat / (std::sqrt(v_hat) + config.eps)) - lr * wd * p0[i];
      worst = std::max(worst, std::abs(after[i] - want));
    }
    // Updates are up to lr = 0.05 on O(1) values; float32 errs by ~6e-8 (measured), so 1e-6.
    EXPECT_LT(worst, 1e-6) << p.name;
  }
}

TEST(AdamW, WtePaddingStaysZero) {
  const GPT2Shape shape = small_shape();
  auto backend = make_backend("cpu");
  const int B = 2, T = 16;
  GPT2 model(*backend, shape, B, T);
  model.initialize(9);
  AdamWOptimizer opt(model, {});
  for (int step = 0; step < 3; ++step) {
    const std::vector<int32_t> tokens = random_tokens(B * T, shape.vocab, 10 + step);
    const std::vector<int32_t> targets = random_tokens(B * T, shape.vocab, 20 + step);
    model.zero_grad();
    model.forward(tokens, targets, B, T);
    model.backward();
    opt.step(1e-2f);
  }
  const ParamInfo& wte = model.parameter("wte.weight");
  const int64_t n = wte.allocated;
  std::vector<float> param(n), m(n), v(n);
  backend->download(param.data(), model.parameter_view(wte));
  backend->download(m.data(), Tensor(opt.m().as<float>() + wte.offset, DType::F32, {n}));
  backend->download(v.data(), Tensor(opt.v().as<float>() + wte.offset, DType::F32, {n}));
  bool real_rows_moved = false;
  for (int64_t i = 0; i < wte.numel(); ++i) real_rows_moved |= m[i] != 0.0f;
  EXPECT_TRUE(real_rows_moved);
  for (int64_t i = wte.numel(); i < n; ++i) {
    ASSERT_EQ(param[i], 0.0f) << "pad float " << i;
    ASSERT_EQ(m[i], 0.0f);
    ASSERT_EQ(v[i], 0.0f);
  }
}

TEST(AdamW, NonFiniteGradientSkipsTheUpdate) {
  const GPT2Shape shape = small_shape();
  auto backend = make_backend("cpu");
  GPT2 model(*backend, shape, 1, 4);
  model.initialize(3);
  AdamWOptimizer opt(model, {});
  model.zero_grad();
  const ParamInfo& bias = model.parameter("h.1.attn.c_proj.bias");
  std::vector<float> poisoned(bias.allocated, 0.0f);
  poisoned[0] = std::numeric_limits<float>::quiet_NaN();
  backend->upload(model.gradient_view(bias), poisoned.data());
  const std::vector<float> before = model.read_parameter("h.0.mlp.c_fc.weight");
  EXPECT_TRUE(std::isnan(opt.step(1e-2f)));
  EXPECT_EQ(opt.steps(), 0);
  EXPECT_EQ(model.read_parameter("h.0.mlp.c_fc.weight"), before);
}

}  // namespace
}  // namespace inkstone
