// Activation recomputation (GPT2Options::recompute): the backward pass recomputes GELU outputs and
// LayerNorm outputs instead of keeping one per layer. The same kernels recompute the same values from
// the same inputs, so loss and every gradient must be bit-identical to the run that kept them (with
// dropout too, whose masks are a function of the seed), while the activation memory shrinks by the
// regions now shared.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/backend.h"
#include "runtime/gpt2.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

GPT2Shape shape() {
  return {.n_layer = 3, .n_head = 2, .n_embd = 32, .context = 32, .vocab = 97};
}

struct Result {
  float loss = 0;
  std::vector<std::vector<float>> grads;
};

Result step(Backend& backend, Recompute recompute, float dropout) {
  constexpr int B = 2, T = 32;
  GPT2 model(backend, shape(), B, T, {.recompute = recompute});
  model.initialize(3);
  model.set_dropout(dropout, 17);
  Result r;
  model.zero_grad();
  // Two micro-batches: the second backward must not see the first's recomputed values.
  for (uint32_t seed : {1u, 2u}) {
    r.loss += model.forward(testing::random_tokens(B * T, 97, seed),
                            testing::random_tokens(B * T, 97, seed + 10), B, T);
    model.backward(0.5f);
  }
  for (const ParamInfo& p : model.parameters()) r.grads.push_back(model.read_gradient(p.name));
  return r;
}

class GPT2Recompute : public ::testing::TestWithParam<float> {};

TEST_P(GPT2Recompute, GradientsAreBitIdentical) {
  auto backend = make_backend("cpu");
  const Result kept = step(*backend, Recompute::None, GetParam());
  for (Recompute r : {Recompute::Gelu, Recompute::GeluAndLayerNorm}) {
    const Result again = step(*backend, r, GetParam());
    EXPECT_EQ(again.loss, kept.loss);
    ASSERT_EQ(again.grads.size(), kept.grads.size());
    for (size_t i = 0; i < kept.grads.size(); ++i)
      EXPECT_TRUE(again.grads[i] == kept.grads[i]) << "tensor " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Dropout, GPT2Recompute, ::testing::Values(0.0f, 0.2f));

TEST(GPT2RecomputeMemory, SharesTheRecomputedRegions) {
  auto backend = make_backend("cpu");
  const GPT2Shape s = shape();
  constexpr int B = 2, T = 32;
  const int64_t N = B * T, C = s.n_embd, L = s.n_layer;
  const auto bytes = [&](Recompute r) {
    return GPT2(*backend, s, B, T, {.recompute = r}).memory().activations;
  };
  // GELU: L regions of [N, 4C] become one; LayerNorm: 2L regions of [N, C] become one (fp32 here).
  EXPECT_EQ(bytes(Recompute::None) - bytes(Recompute::Gelu), size_t((L - 1) * N * 4 * C * 4));
  EXPECT_EQ(bytes(Recompute::Gelu) - bytes(Recompute::GeluAndLayerNorm), size_t((2 * L - 1) * N * C * 4));
}

}  // namespace
}  // namespace inkstone
