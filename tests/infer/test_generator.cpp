// generate(): seeds, lengths and finish reasons on tiny CPU models, the sliding context, and the
// streaming contract (pieces add up to the text and never cut a UTF-8 character).
#include "infer/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

constexpr GPT2Shape kShape{.n_layer = 2, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};

class Generate : public ::testing::Test {
 protected:
  Generate() : backend_(make_backend("cpu")), model_(*backend_, kShape, 1, kShape.context) {
    model_.initialize(5);
  }

  // Makes the model's logits `want` whatever the input: with ln_f's gain zero its output is its bias,
  // here e_0, so the tied lm-head yields column 0 of wte, which is set to `want`.
  void make_logits_constant(const std::vector<float>& want) {
    const auto C = static_cast<size_t>(kShape.n_embd);
    std::vector<float> wte = model_.read_parameter("wte.weight");
    for (size_t v = 0; v < want.size(); ++v) wte[v * C] = want[v];
    model_.write_parameter("wte.weight", wte);
    model_.write_parameter("ln_f.weight", std::vector<float>(C, 0.0f));
    std::vector<float> bias(C, 0.0f);
    bias[0] = 1.0f;
    model_.write_parameter("ln_f.bias", bias);
  }

  // Logits of `winner` at 10, everything else at 0.
  static std::vector<float> favouring(int32_t winner) {
    std::vector<float> logits(kShape.vocab, 0.0f);
    logits[static_cast<size_t>(winner)] = 10.0f;
    return logits;
  }

  GenerateResult run(std::string_view prompt, const GenerateConfig& config,
                     std::vector<std::string>* pieces = nullptr) {
    return generate(model_, tokenizer_, prompt, config, [&](std::string_view piece) {
      if (pieces) pieces->emplace_back(piece);
    });
  }

  std::unique_ptr<Backend> backend_;
  GPT2 model_;
  ByteTokenizer tokenizer_;
};

TEST_F(Generate, TheConstantLogitsHelperWorks) {
  std::vector<float> want = testing::random_floats(kShape.vocab, 8, 3.0f);
  make_logits_constant(want);
  const std::vector<int32_t> tokens = {256, 1, 2, 3};
  model_.forward(tokens, {}, 1, 4);
  const std::vector<float> got = model_.read_logits(0, 4);
  for (size_t r = 0; r < 4; ++r)
    for (size_t v = 0; v < want.size(); ++v)
      ASSERT_NEAR(got[r * want.size() + v], want[v], 1e-5f) << r << " " << v;
}

TEST_F(Generate, SameSeedSameTokensOtherSeedOtherTokens) {
  GenerateConfig config{
      .sampling = {.temperature = 1.0, .top_k = 0, .seed = 7}, .max_new_tokens = 24, .stop_at_eot = false};
  const GenerateResult a = run("Once", config);
  const GenerateResult b = run("Once", config);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text, b.text);
  config.sampling.seed = 8;
  // An initialised model is close to uniform over 257 tokens: 24 equal draws are (1/257)^24 likely.
  EXPECT_NE(run("Once", config).tokens, a.tokens);
}

TEST_F(Generate, GreedyFollowsTheModelsArgmaxOverTheSlidingContext) {
  // The reference: run the full window each step and take the largest logit (first on ties).
  const std::string prompt = "The moon";
  std::vector<int32_t> seq = {tokenizer_.eot_id()};
  for (const int32_t t : tokenizer_.encode(prompt)) seq.push_back(t);
  std::vector<int32_t> want;
  const int steps = 30;  // 9 prompt tokens + 30 > context 16: the window must slide
  for (int i = 0; i < steps; ++i) {
    const int T = std::min<int>(static_cast<int>(seq.size()), kShape.context);
    model_.forward(std::span<const int32_t>(seq).last(static_cast<size_t>(T)), {}, 1, T);
    const std::vector<float> logits = model_.read_logits(T - 1, 1);
    const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    seq.push_back(next);
    want.push_back(next);
  }
  const GenerateResult got =
      run(prompt, {.sampling = {.temperature = 0}, .max_new_tokens = steps, .stop_at_eot = false});
  EXPECT_EQ(got.tokens, want);
  EXPECT_EQ(got.finish_reason, "length");
}

TEST_F(Generate, StopsAtEndOfTextWithoutPrintingIt) {
  make_logits_constant(favouring(tokenizer_.eot_id()));
  std::vector<std::string> pieces;
  const GenerateResult r = run("Hello", {.sampling = {.temperature = 0}, .max_new_tokens = 10}, &pieces);
  EXPECT_EQ(r.finish_reason, "eot");
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(pieces.empty());
}

TEST_F(Generate, WithoutStopAtEotTheEndOfTextIsJustAToken) {
  make_logits_constant(favouring(tokenizer_.eot_id()));
  const GenerateResult r =
      run("Hello", {.sampling = {.temperature = 0}, .max_new_tokens = 3, .stop_at_eot = false});
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.tokens, std::vector<int32_t>(3, tokenizer_.eot_id()));
  EXPECT_EQ(r.text, "<|endoftext|><|endoftext|><|endoftext|>");
}

TEST_F(Generate, MaxNewTokensIsRespected) {
  make_logits_constant(favouring('a'));
  for (const int n : {1, 5, 40}) {  // 40 > context: the window slides
    std::vector<std::string> pieces;
    const GenerateResult r = run("x", {.sampling = {.temperature = 0}, .max_new_tokens = n}, &pieces);
    EXPECT_EQ(r.tokens.size(), static_cast<size_t>(n));
    EXPECT_EQ(r.text, std::string(static_cast<size_t>(n), 'a'));
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(pieces.size(), static_cast<size_t>(n));  // ASCII streams token by token
  }
}

TEST_F(Generate, StreamedPiecesNeverCutACharacterAndAddUpToTheText) {
  // Draws uniformly among the three bytes of 中 (E4 B8 AD) and 'a': runs like E4 B8 AD form whole
  // characters at random places, and everything else forms broken sequences that must not be held.
  std::vector<float> logits(kShape.vocab, -40.0f);
  for (const int byte : {0xE4, 0xB8, 0xAD, int{'a'}}) logits[static_cast<size_t>(byte)] = 0.0f;
  make_logits_constant(logits);
  std::vector<std::string> pieces;
  const GenerateResult r =
      run("", {.sampling = {.temperature = 1.0, .seed = 3}, .max_new_tokens = 400}, &pieces);
  ASSERT_EQ(r.tokens.size(), 400u);

  std::string streamed;
  std::vector<size_t> cuts;  // offsets where one piece ends and the next begins
  for (const std::string& p : pieces) {
    EXPECT_FALSE(p.empty());
    streamed += p;
    cuts.push_back(streamed.size());
  }
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.text, tokenizer_.decode(r.tokens));

  int characters = 0;
  for (size_t s = 0; s + 2 < r.text.size(); ++s) {
    if (r.text.compare(s, 1, "\xE4") != 0) continue;
    const auto is_continuation = [&](size_t i) { return (static_cast<uint8_t>(r.text[i]) & 0xC0) == 0x80; };
    if (!is_continuation(s + 1) || !is_continuation(s + 2)) continue;
    ++characters;  // a well-formed 3-byte character at [s, s+3)
    for (const size_t cut : cuts)
      EXPECT_FALSE(cut > s && cut < s + 3) << "cut at " << cut << " splits a character";
  }
  EXPECT_GE(characters, 5);  // about 400 / 16 are expected
}

TEST_F(Generate, EmptyPromptStartsADocumentOrIsAnError) {
  make_logits_constant(favouring('a'));
  EXPECT_EQ(run("", {.sampling = {.temperature = 0}, .max_new_tokens = 2}).text, "aa");
  const std::string message =
      error_of([&] { run("", {.sampling = {}, .max_new_tokens = 2, .start_of_document = false}); });
  EXPECT_NE(message.find("the prompt is empty"), std::string::npos) << message;
}

TEST_F(Generate, APromptLongerThanTheContextIsAnError) {
  const std::string fits(kShape.context - 1, 'x');  // + <|endoftext|> = exactly the context
  EXPECT_EQ(error_of([&] { run(fits, {.sampling = {.temperature = 0}, .max_new_tokens = 3}); }), "");
  const std::string too_long(kShape.context, 'x');
  const std::string message = error_of([&] { run(too_long, {.sampling = {}, .max_new_tokens = 3}); });
  EXPECT_NE(message.find("longer than the model's context of 16"), std::string::npos) << message;
  EXPECT_EQ(error_of([&] {
              run(too_long,
                  {.sampling = {.temperature = 0}, .max_new_tokens = 3, .start_of_document = false});
            }),
            "");
}

TEST_F(Generate, PromptTokensStartWithEndOfTextWhenADocumentStarts) {
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", true, 16), (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", false, 16), (std::vector<int32_t>{'h', 'i'}));
  EXPECT_EQ(prompt_tokens(tokenizer_, "", true, 16), (std::vector<int32_t>{256}));
  EXPECT_THROW(prompt_tokens(tokenizer_, "hi", true, 2), Error);
}

TEST_F(Generate, BadOptionsAreErrors) {
  EXPECT_NE(error_of([&] { run("a", {.sampling = {}, .max_new_tokens = 0}); }).find("--max-new-tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {.temperature = -1}}); }).find("--temperature"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {.top_k = -3}}); }).find("--top-k"), std::string::npos);
}

}  // namespace
}  // namespace inkstone
