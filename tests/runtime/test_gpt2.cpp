// GPT2 on the CPU backend against a float64 PyTorch reference (tests/fixtures/make_gpt2_golden.py),
// against its own loss by finite differences, and for its padding and initialisation contracts.
#include "runtime/gpt2.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "fixtures/safetensors_fixture.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::SafetensorsFixture;

// float32 against the exact (float64) answer, per tensor: max |got - want| <= tol * max |want|.
// Unit roundoff is 6e-8; the tiny model's longest dependency chain is ~20 ops with sums over at most
// 128 terms, and the errors measured on the CPU backend are 1e-7 .. 8e-7 of each tensor's scale.
// 1e-5 leaves >10x headroom for other thread counts and BLAS builds, while any real defect (a
// missing term, a wrong index or scale, an ignored target counted) moves results by far more.
constexpr double kRelativeToMaxAbs = 1e-5;

SafetensorsFixture load_golden() {
  return SafetensorsFixture(testing::source_dir() / "tests" / "fixtures" / "gpt2_golden.safetensors");
}

GPT2Shape golden_shape(const SafetensorsFixture& golden) {
  return {.n_layer = golden.metadata_int("n_layer"),
          .n_head = golden.metadata_int("n_head"),
          .n_embd = golden.metadata_int("n_embd"),
          .context = golden.metadata_int("context"),
          .vocab = golden.metadata_int("vocab")};
}

void load_golden_parameters(GPT2& model, const SafetensorsFixture& golden) {
  for (const ParamInfo& p : model.parameters()) model.write_parameter(p.name, golden.f32("param/" + p.name));
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

double max_abs_diff(const std::vector<float>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double m = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) m = std::max(m, std::abs(got[i] - want[i]));
  return m;
}

class GPT2Golden : public ::testing::Test {
 protected:
  GPT2Golden()
      : golden_(load_golden()),
        shape_(golden_shape(golden_)),
        B_(golden_.metadata_int("batch")),
        T_(golden_.metadata_int("seq")),
        backend_(make_backend("cpu")),
        // Room for more than the fixture's batch, so the model must use views of the first B*T rows.
        model_(*backend_, shape_, B_ + 1, shape_.context),
        tokens_(golden_.i32("tokens")),
        targets_(golden_.i32("targets")) {
    load_golden_parameters(model_, golden_);
  }

  float loss_now() { return model_.forward(tokens_, targets_, B_, T_); }

  SafetensorsFixture golden_;
  GPT2Shape shape_;
  int B_, T_;
  std::unique_ptr<Backend> backend_;
  GPT2 model_;
  std::vector<int32_t> tokens_, targets_;
};

TEST_F(GPT2Golden, ParameterTableIsHuggingFaceGPT2) {
  ASSERT_EQ(model_.parameters().size(), 2 + 12 * size_t(shape_.n_layer) + 2);
  int64_t total = 0;
  for (const ParamInfo& p : model_.parameters()) {
    ASSERT_TRUE(golden_.has("param/" + p.name)) << p.name;
    EXPECT_EQ(p.shape, golden_.entry("param/" + p.name).shape) << p.name;
    total += p.numel();
  }
  EXPECT_EQ(total, shape_.num_parameters());
  const int64_t C = shape_.n_embd;
  EXPECT_EQ(model_.parameter("wte.weight").shape, (std::vector<int64_t>{shape_.vocab, C}));
  EXPECT_EQ(model_.parameter("h.1.mlp.c_proj.weight").shape, (std::vector<int64_t>{4 * C, C}));
  EXPECT_THROW(model_.parameter("transformer.wte.weight"), Error);
}

TEST_F(GPT2Golden, LogitsAndLossMatchFloat64Reference) {
  const float loss = loss_now();
  const double want_loss = golden_.f64("loss")[0];
  EXPECT_NEAR(loss, want_loss, 1e-6 * want_loss);    // the mean is taken in double
  EXPECT_EQ(model_.counted_targets(), B_ * T_ - 2);  // the fixture ignores two targets

  const std::vector<double> want = golden_.f64("logits");
  const std::vector<float> got = model_.read_logits(0, int64_t{B_} * T_);
  EXPECT_LE(max_abs_diff(got, want), kRelativeToMaxAbs * max_abs(want));
}

TEST_F(GPT2Golden, EveryGradientMatchesFloat64Reference) {
  model_.zero_grad();
  loss_now();
  model_.backward();
  for (const ParamInfo& p : model_.parameters()) {
    const std::vector<double> want = golden_.f64("grad/" + p.name);
    const double scale = max_abs(want);
    ASSERT_GT(scale, 0.0) << p.name << ": the fixture must exercise every gradient";
    EXPECT_LE(max_abs_diff(model_.read_gradient(p.name), want), kRelativeToMaxAbs * scale) << p.name;
  }
}

TEST_F(GPT2Golden, PaddingNeverLeaks) {
  const int64_t V = shape_.vocab, Vp = shape_.padded_vocab(), C = shape_.n_embd, N = int64_t{B_} * T_;
  ASSERT_GT(Vp, V);
  loss_now();
  // The device logits have padded columns, which read as exactly zero; the host view has V columns.
  const Tensor logits = model_.logits();
  ASSERT_EQ(logits.dim(1), Vp);
  std::vector<float> all(static_cast<size_t>(N * Vp));
  backend_->download(all.data(), logits);
  const std::vector<float> real = model_.read_logits(0, N);
  ASSERT_EQ(real.size(), static_cast<size_t>(N * V));
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < V; ++c) ASSERT_EQ(real[r * V + c], all[r * Vp + c]);
    for (int64_t c = V; c < Vp; ++c) ASSERT_EQ(all[r * Vp + c], 0.0f) << "row " << r << " col " << c;
  }
  // wte exposes [V, C]; its pad rows, and their gradient, stay zero through a backward pass.
  EXPECT_EQ(model_.read_parameter("wte.weight").size(), static_cast<size_t>(V * C));
  model_.backward();
  const ParamInfo& wte = model_.parameter("wte.weight");
  std::vector<float> params(wte.allocated), grads(wte.allocated);
  backend_->download(params.data(), model_.parameter_view(wte));
  backend_->download(grads.data(), model_.gradient_view(wte));
  for (int64_t i = V * C; i < Vp * C; ++i) {
    ASSERT_EQ(params[i], 0.0f);
    ASSERT_EQ(grads[i], 0.0f);
  }
  EXPECT_THROW(model_.logits(), Error);  // backward reused the logits for their gradient
  EXPECT_THROW(model_.write_parameter("wte.weight", std::vector<float>(Vp * C)), Error);
}

// Central differences of the float32 loss against backward(), for a few entries of every tensor.
// Step h = 1e-2 (the fixture's parameters are 0.05 .. 1). Error sources: the float32 loss (~6,
// a mean over 20 tokens) is rounded at ~1e-6, giving ~1e-6 / (2h) = 5e-5 absolute; the truncation
// error h^2 f''' / 6 is relative to the gradient and measured below 3e-4. Tolerance
// |fd - g| <= 2e-4 + 1e-3 |g| is above both (measured worst: 3.3e-5 absolute) and still far below
// the largest gradients of every tensor (0.1 .. 0.6), so a wrong or missing gradient term fails.
// Central differences of the loss against backward() for the largest-gradient entry and two random
// ones of every tensor.
void expect_gradients_match_finite_differences(GPT2& model_, const std::function<float()>& loss_now) {
  constexpr float kStep = 1e-2f;
  constexpr double kAbsTol = 2e-4, kRelTol = 1e-3;
  model_.zero_grad();
  loss_now();
  model_.backward();
  std::mt19937 pick(7);
  for (const ParamInfo& p : model_.parameters()) {
    const std::vector<float> grad = model_.read_gradient(p.name);
    std::vector<float> values = model_.read_parameter(p.name);
    // The largest-gradient entry (best signal) plus two random ones.
    std::vector<size_t> entries = {
        static_cast<size_t>(std::max_element(grad.begin(), grad.end(),
                                             [](float a, float b) { return std::abs(a) < std::abs(b); }) -
                            grad.begin())};
    for (int k = 0; k < 2; ++k) entries.push_back(pick() % values.size());
    for (size_t i : entries) {
      const float original = values[i];
      values[i] = original + kStep;
      model_.write_parameter(p.name, values);
      const double up = loss_now();
      values[i] = original - kStep;
      model_.write_parameter(p.name, values);
      const double down = loss_now();
      values[i] = original;
      model_.write_parameter(p.name, values);
      const double fd = (up - down) / (2.0 * kStep);
      EXPECT_NEAR(fd, grad[i], kAbsTol + kRelTol * std::abs(grad[i])) << p.name << "[" << i << "]";
    }
  }
}

TEST_F(GPT2Golden, GradientsMatchFiniteDifferencesOfTheLoss) {
  expect_gradients_match_finite_differences(model_, [this] { return loss_now(); });
}

TEST_F(GPT2Golden, DropoutGradientsMatchFiniteDifferencesOfTheLoss) {
  // A fixed seed fixes the masks, so the loss is a smooth function of the weights again and backward()
  // must be its exact gradient, masks and 1/(1-p) scaling included.
  const float plain = loss_now();
  model_.set_dropout(0.3f, 5);
  const float dropped = loss_now();
  EXPECT_NE(dropped, plain);
  EXPECT_EQ(loss_now(), dropped);  // same seed, same masks
  expect_gradients_match_finite_differences(model_, [this] { return loss_now(); });
  model_.set_dropout(0.0f, 5);
  EXPECT_EQ(loss_now(), plain);
  EXPECT_NE(testing::error_of([&] { model_.set_dropout(1.0f, 0); }).find("dropout must be in [0, 1)"),
            std::string::npos);
}

TEST_F(GPT2Golden, GradientsAccumulateAcrossBackwardCalls) {
  model_.zero_grad();
  loss_now();
  model_.backward();
  const std::vector<float> once = model_.read_gradient("h.0.attn.c_attn.weight");
  model_.zero_grad();
  for (int micro = 0; micro < 2; ++micro) {
    loss_now();
    model_.backward(0.5f);  // two halves of one batch's loss
  }
  const std::vector<float> twice = model_.read_gradient("h.0.attn.c_attn.weight");
  ASSERT_EQ(once.size(), twice.size());
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(twice[i], once[i], 1e-6f * (1 + std::abs(once[i])));
}

TEST_F(GPT2Golden, MicroBatchesWithUnequalTargetCountsAddUpToTheWholeBatch) {
  // Row 0 ignores more targets than row 1, so weighting each micro-batch by 1/2 would be wrong:
  // loss_scale = counted_i / sum(counted) must reproduce the gradient of the whole batch's mean loss.
  std::vector<int32_t> targets = targets_;
  for (int t = 0; t < 4; ++t) targets[t] = -1;
  auto counted = [&](int row) {
    return std::count_if(targets.begin() + row * T_, targets.begin() + (row + 1) * T_,
                         [](int32_t x) { return x >= 0; });
  };
  const double total = static_cast<double>(counted(0) + counted(1));
  ASSERT_NE(counted(0), counted(1));

  model_.zero_grad();
  model_.forward(std::span(tokens_).first(2 * T_), std::span(targets).first(2 * T_), 2, T_);
  model_.backward();
  std::vector<std::vector<float>> whole;
  for (const ParamInfo& p : model_.parameters()) whole.push_back(model_.read_gradient(p.name));

  model_.zero_grad();
  for (int row = 0; row < 2; ++row) {
    const float loss_scale = static_cast<float>(counted(row) / total);
    model_.forward(std::span(tokens_).subspan(row * T_, T_), std::span(targets).subspan(row * T_, T_), 1, T_);
    model_.backward(loss_scale);
  }
  for (size_t k = 0; k < whole.size(); ++k) {
    const std::vector<float> split = model_.read_gradient(model_.parameters()[k].name);
    float scale = 0;
    for (float g : whole[k]) scale = std::max(scale, std::abs(g));
    for (size_t i = 0; i < split.size(); ++i)
      ASSERT_NEAR(split[i], whole[k][i], 1e-5f * scale + 1e-7f)
          << model_.parameters()[k].name << "[" << i << "]";
  }
}

TEST_F(GPT2Golden, SmallerBatchIsTheSameModel) {
  // Sequence 0 alone, and a prefix of it: causal attention makes their logits rows of the full batch's.
  loss_now();
  const std::vector<float> full = model_.read_logits(0, T_);
  const int64_t V = shape_.vocab;
  for (int t : {T_, 5}) {
    model_.forward(std::span(tokens_).first(t), {}, 1, t);
    const std::vector<float> part = model_.read_logits(0, t);
    for (int64_t i = 0; i < t * V; ++i) ASSERT_NEAR(part[i], full[i], 1e-5f * (1 + std::abs(full[i])));
  }
}

TEST_F(GPT2Golden, DeviceTensorsGiveTheSameLoss) {
  const float host = loss_now();
  DeviceTensor tokens(*backend_, DType::I32, {B_, T_}), targets(*backend_, DType::I32, {B_, T_});
  backend_->upload(tokens, tokens_.data());
  backend_->upload(targets, targets_.data());
  EXPECT_EQ(model_.forward(tokens.view(), targets.view(), B_, T_), host);
}

TEST_F(GPT2Golden, AllTargetsIgnoredGivesZeroLossAndGradient) {
  model_.zero_grad();
  const std::vector<int32_t> ignored(targets_.size(), -1);
  EXPECT_EQ(model_.forward(tokens_, ignored, B_, T_), 0.0f);
  model_.backward();
  const std::vector<float> g = model_.read_gradient("h.1.mlp.c_fc.weight");
  EXPECT_TRUE(std::all_of(g.begin(), g.end(), [](float x) { return x == 0.0f; }));
}

TEST_F(GPT2Golden, RejectsBadInput) {
  std::vector<int32_t> bad = tokens_;
  bad[4] = shape_.vocab;
  EXPECT_THROW(model_.forward(bad, targets_, B_, T_), Error);
  EXPECT_THROW(model_.forward(tokens_, targets_, B_, T_ - 1), Error);       // size mismatch
  EXPECT_THROW(model_.forward(tokens_, {}, 1, shape_.context + 1), Error);  // longer than context
  EXPECT_THROW(model_.backward(), Error);                                   // no forward yet
  model_.forward(tokens_, {}, B_, T_);
  EXPECT_THROW(model_.backward(), Error);  // a forward without targets has no loss to differentiate
}

// ---- initialisation ----

GPT2Shape init_shape() {
  return {.n_layer = 4, .n_head = 4, .n_embd = 128, .context = 64, .vocab = 1000};
}

TEST(GPT2Init, FollowsGPT2Statistics) {
  auto backend = make_backend("cpu");
  const GPT2Shape shape = init_shape();
  GPT2 model(*backend, shape, 1, 8);
  model.initialize(1337);
  const double residual_std = 0.02 / std::sqrt(2.0 * shape.n_layer);
  for (const ParamInfo& p : model.parameters()) {
    const std::vector<float> v = model.read_parameter(p.name);
    const bool layernorm = p.name.find("ln_") != std::string::npos;
    const bool bias = p.name.ends_with(".bias");
    if (layernorm || bias) {
      const float want = layernorm && !bias ? 1.0f : 0.0f;
      EXPECT_TRUE(std::all_of(v.begin(), v.end(), [&](float x) { return x == want; })) << p.name;
      continue;
    }
    const double want_std = p.name.ends_with("c_proj.weight") ? residual_std : 0.02;
    double sum = 0, sum_sq = 0;
    for (float x : v) sum += x, sum_sq += double(x) * x;
    const double n = static_cast<double>(v.size()), mean = sum / n;
    const double stddev = std::sqrt(sum_sq / n - mean * mean);
    // Sampling error of a normal's std estimate is std / sqrt(2n), of its mean std / sqrt(n): 5 sigma.
    EXPECT_NEAR(stddev, want_std, 5 * want_std / std::sqrt(2 * n)) << p.name;
    EXPECT_NEAR(mean, 0.0, 5 * want_std / std::sqrt(n)) << p.name;
  }
  // wte's pad rows are zero.
  const ParamInfo& wte = model.parameter("wte.weight");
  std::vector<float> all(wte.allocated);
  backend->download(all.data(), model.parameter_view(wte));
  for (int64_t i = wte.numel(); i < wte.allocated; ++i) ASSERT_EQ(all[i], 0.0f);
}

TEST(GPT2Init, IsDeterministicPerSeed) {
  auto backend = make_backend("cpu");
  const GPT2Shape shape = init_shape();
  GPT2 a(*backend, shape, 1, 8), b(*backend, shape, 1, 8);
  a.initialize(42);
  b.initialize(42);
  EXPECT_EQ(a.read_parameter("h.2.mlp.c_fc.weight"), b.read_parameter("h.2.mlp.c_fc.weight"));
  b.initialize(43);
  EXPECT_NE(a.read_parameter("h.2.mlp.c_fc.weight"), b.read_parameter("h.2.mlp.c_fc.weight"));
}

TEST(GPT2Memory, AccountsForEveryBuffer) {
  auto backend = make_backend("cpu");
  const GPT2Shape shape = init_shape();
  GPT2 model(*backend, shape, 2, 32);
  const ModelMemory m = model.memory();
  // Parameters: at least the real count plus wte's padding, in fp32; gradients mirror them.
  EXPECT_GE(m.parameters,
            4 * size_t(shape.num_parameters() + (shape.padded_vocab() - shape.vocab) * shape.n_embd));
  EXPECT_EQ(m.gradients, m.parameters);
  // Activations hold at least the logits and 16 [N, C] floats per layer.
  const size_t N = 2 * 32;
  EXPECT_GE(m.activations,
            4 * N * (size_t(shape.padded_vocab()) + 16 * size_t(shape.n_embd) * shape.n_layer));
  EXPECT_EQ(m.total(), m.parameters + m.gradients + m.activations);
}

}  // namespace
}  // namespace inkstone
