// generate(): seeds, lengths and finish reasons on tiny CPU models, the sliding context, and the
// streaming contract (pieces add up to the text and never cut a UTF-8 character).
#include "infer/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

// The reference for greedy decoding: a full forward pass over the window each step, taking the largest
// logit (first on ties). The window starts at `window_start(sequence length, current start)`.
template <typename WindowStart>
std::vector<int32_t> greedy_reference(GPT2& model, std::vector<int32_t> seq, int steps,
                                      WindowStart window_start) {
  std::vector<int32_t> want;
  size_t start = 0;
  for (int i = 0; i < steps; ++i) {
    start = window_start(seq.size(), start);
    const auto T = static_cast<int>(seq.size() - start);
    model.forward(std::span<const int32_t>(seq).subspan(start), {}, 1, T);
    const std::vector<float> logits = model.read_logits(T - 1, 1);
    const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    seq.push_back(next);
    want.push_back(next);
  }
  return want;
}

std::vector<int32_t> with_eot(const Tokenizer& tokenizer, const std::string& prompt) {
  std::vector<int32_t> seq = {tokenizer.eot_id()};
  for (const int32_t t : tokenizer.encode(prompt)) seq.push_back(t);
  return seq;
}

TEST_F(Generate, GreedyWithAndWithoutTheCacheFollowsTheModelsArgmax) {
  const std::string prompt = "The moon";  // 9 tokens with <|endoftext|>: 8 new ones fill the context
  const std::vector<int32_t> want =
      greedy_reference(model_, with_eot(tokenizer_, prompt), 8, [](size_t, size_t start) { return start; });
  for (const bool cache : {true, false}) {
    const GenerateResult got =
        run(prompt,
            {.sampling = {.temperature = 0}, .max_new_tokens = 8, .stop_at_eot = false, .kv_cache = cache});
    EXPECT_EQ(got.tokens, want) << "kv_cache " << cache;
    EXPECT_EQ(got.finish_reason, "length");
  }
}

TEST_F(Generate, WithoutASlidingWindowTheContextEndsTheText) {
  make_logits_constant(favouring('a'));
  for (const bool cache : {true, false}) {
    // <|endoftext|> x sit at positions 0 and 1; the 15th new token lands at position 16, one past
    // the context: it was predicted from position 15, but nothing can be predicted from it.
    const GenerateResult r =
        run("x", {.sampling = {.temperature = 0}, .max_new_tokens = 40, .kv_cache = cache});
    EXPECT_EQ(r.tokens.size(), 15u) << "kv_cache " << cache;
    EXPECT_EQ(r.finish_reason, "context");
  }
}

TEST_F(Generate, TheSlidingWindowWithoutTheCacheAlwaysReadsTheLastContextTokens) {
  const std::string prompt = "The moon";
  const int steps = 30;  // 9 + 30 > context 16
  const auto last_context = [](size_t n, size_t) { return n > kShape.context ? n - kShape.context : 0; };
  const std::vector<int32_t> want =
      greedy_reference(model_, with_eot(tokenizer_, prompt), steps, last_context);
  const GenerateResult got = run(prompt, {.sampling = {.temperature = 0},
                                          .max_new_tokens = steps,
                                          .stop_at_eot = false,
                                          .sliding_window = true,
                                          .kv_cache = false});
  EXPECT_EQ(got.tokens, want);
  EXPECT_EQ(got.finish_reason, "length");
}

TEST_F(Generate, TheSlidingWindowWithTheCacheRestartsFromTheLastHalfContext) {
  const std::string prompt = "The moon";
  const int steps = 30;
  // Once the window would exceed the context, it restarts from the last context/2 tokens.
  const auto halving = [](size_t n, size_t start) {
    return n - start > kShape.context ? n - kShape.context / 2 : start;
  };
  const std::vector<int32_t> want = greedy_reference(model_, with_eot(tokenizer_, prompt), steps, halving);
  const GenerateResult got = run(prompt, {.sampling = {.temperature = 0},
                                          .max_new_tokens = steps,
                                          .stop_at_eot = false,
                                          .sliding_window = true});
  EXPECT_EQ(got.tokens, want);
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

TEST_F(Generate, MinNewTokensRulesOutEndOfTextUntilThen) {
  make_logits_constant(favouring(tokenizer_.eot_id()));  // 'A' next: the constant logits' runner-up
  const GenerateResult r =
      run("Hello", {.sampling = {.temperature = 0}, .max_new_tokens = 10, .min_new_tokens = 4});
  EXPECT_EQ(r.finish_reason, "eot");
  ASSERT_EQ(r.tokens.size(), 4u);  // then the favourite ends it
  for (const int32_t t : r.tokens) EXPECT_NE(t, tokenizer_.eot_id());
  // Log-probabilities stay the model's own: the ruled-out favourite still holds most of the mass.
  for (const double lp : r.logprobs) EXPECT_LT(lp, -5.0);
}

TEST_F(Generate, MinNewTokensBeyondMaxNewTokensIsRefused) {
  EXPECT_NE(error_of([&] {
              run("Hello", {.sampling = {}, .max_new_tokens = 3, .min_new_tokens = 4});
            }).find("--min-new-tokens must be in [0, --max-new-tokens = 3] (got 4)"),
            std::string::npos);
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
    const GenerateResult r =
        run("x", {.sampling = {.temperature = 0}, .max_new_tokens = n, .sliding_window = true}, &pieces);
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
      run("", {.sampling = {.temperature = 1.0, .seed = 3}, .max_new_tokens = 400, .sliding_window = true},
          &pieces);
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
  EXPECT_EQ(error_of([&] {
              run(too_long + "yz",
                  {.sampling = {.temperature = 0}, .max_new_tokens = 3, .sliding_window = true});
            }),
            "");
}

TEST_F(Generate, PromptTokensStartWithEndOfTextWhenADocumentStarts) {
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", true, false, 16), (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", false, false, 16), (std::vector<int32_t>{'h', 'i'}));
  EXPECT_EQ(prompt_tokens(tokenizer_, "", true, false, 16), (std::vector<int32_t>{256}));
  EXPECT_THROW(prompt_tokens(tokenizer_, "hi", true, false, 2), Error);
  // A sliding window keeps the end of a prompt that is too long.
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", true, true, 2), (std::vector<int32_t>{'h', 'i'}));
  EXPECT_EQ(prompt_tokens(tokenizer_, "hi", true, true, 1), (std::vector<int32_t>{'i'}));
}

TEST_F(Generate, BadOptionsAreErrors) {
  EXPECT_NE(error_of([&] { run("a", {.sampling = {}, .max_new_tokens = 0}); }).find("--max-new-tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {.temperature = -1}}); }).find("--temperature"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {.top_k = -3}}); }).find("--top-k"), std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {.top_p = 0}}); }).find("--top-p"), std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {}, .num_samples = 0}); }).find("--num-samples"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run("a", {.sampling = {}, .stop = {""}}); }).find("--stop"), std::string::npos);
}

TEST_F(Generate, TheTextEndsExactlyBeforeAStopString) {
  // Tokens drawn among 'a', 'b' and '\n': "\n\n" and "ba" turn up soon, and the text must end right
  // before the first of them, streamed pieces included.
  std::vector<float> logits(kShape.vocab, -40.0f);
  for (const int byte : {int{'a'}, int{'b'}, int{'\n'}}) logits[static_cast<size_t>(byte)] = 0.0f;
  make_logits_constant(logits);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const GenerateConfig free_run{.sampling = {.seed = seed}, .max_new_tokens = 60, .sliding_window = true};
    const std::string all = run("", free_run).text;
    const size_t cut = std::min(all.find("\n\n"), all.find("ba"));
    GenerateConfig stopped = free_run;
    stopped.stop = {"\n\n", "ba"};
    std::vector<std::string> pieces;
    const GenerateResult r = run("", stopped, &pieces);
    std::string streamed;
    for (const std::string& p : pieces) streamed += p;
    EXPECT_EQ(streamed, r.text);
    if (cut == std::string::npos) {
      EXPECT_EQ(r.text, all);
      EXPECT_EQ(r.finish_reason, "length");
    } else {
      EXPECT_EQ(r.text, all.substr(0, cut)) << "seed " << seed;
      EXPECT_EQ(r.finish_reason, "stop");
    }
  }
}

TEST_F(Generate, LogProbabilitiesAreTheModelsOwn) {
  const GenerateResult r = run(
      "Hi",
      {.sampling = {.temperature = 1.5, .top_k = 5, .seed = 4}, .max_new_tokens = 6, .stop_at_eot = false});
  std::vector<int32_t> seq = with_eot(tokenizer_, "Hi");
  ASSERT_EQ(r.logprobs.size(), r.tokens.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    model_.forward(seq, {}, 1, static_cast<int>(seq.size()));
    const std::vector<float> logits = model_.read_logits(static_cast<int64_t>(seq.size()) - 1, 1);
    double max = *std::max_element(logits.begin(), logits.end()), sum = 0;
    for (const float l : logits) sum += std::exp(static_cast<double>(l) - max);
    const double want = static_cast<double>(logits[static_cast<size_t>(r.tokens[i])]) - max - std::log(sum);
    EXPECT_NEAR(r.logprobs[i], want, 1e-4) << i;
    seq.push_back(r.tokens[i]);
  }
}

class GenerateBatch : public ::testing::Test {
 protected:
  GenerateBatch() : backend_(make_backend("cpu")), model_(*backend_, kShape, 4, kShape.context) {
    model_.initialize(11);
  }
  std::unique_ptr<Backend> backend_;
  GPT2 model_;
  ByteTokenizer tokenizer_;
};

TEST_F(GenerateBatch, GreedyRowsOfDifferentLengthsMatchTheirOwnRuns) {
  const std::vector<std::string> prompts = {"a", "The moon is", "sea", "Once upon", "x"};
  const GenerateConfig config{
      .sampling = {.temperature = 0}, .max_new_tokens = 5, .stop_at_eot = false, .batch = 3};
  const std::vector<GenerateResult> batched = generate(model_, tokenizer_, prompts, config);
  ASSERT_EQ(batched.size(), prompts.size());
  for (size_t p = 0; p < prompts.size(); ++p) {
    EXPECT_EQ(batched[p].prompt_index, p);
    EXPECT_EQ(batched[p].prompt_tokens, prompts[p].size() + 1);
    GenerateConfig alone = config;
    alone.kv_cache = false;
    EXPECT_EQ(batched[p].tokens, generate(model_, tokenizer_, prompts[p], alone).tokens) << prompts[p];
  }
}

TEST_F(GenerateBatch, SamplesPerPromptAreOrderedSeededAndReproducible) {
  const std::vector<std::string> prompts = {"One", "Two words"};
  const GenerateConfig config{
      .sampling = {.seed = 9}, .max_new_tokens = 12, .num_samples = 3, .stop_at_eot = false, .batch = 4};
  std::vector<std::string> streamed(6);
  const std::vector<GenerateResult> a =
      generate(model_, tokenizer_, prompts, config,
               [&](size_t row, std::string_view piece) { streamed.at(row) += piece; });
  ASSERT_EQ(a.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt_index, i / 3);
    EXPECT_EQ(a[i].sample_index, static_cast<int>(i % 3));
    EXPECT_EQ(streamed[i], a[i].text);
  }
  // Samples of one prompt differ (an initialised model is near uniform over 257 tokens).
  EXPECT_NE(a[0].tokens, a[1].tokens);
  EXPECT_NE(a[1].tokens, a[2].tokens);
  // The same seed gives the same texts, whatever the batch size.
  GenerateConfig one_by_one = config;
  one_by_one.batch = 1;
  const std::vector<GenerateResult> b = generate(model_, tokenizer_, prompts, one_by_one);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].tokens, b[i].tokens) << i;
  // Row 0 is seeded with the seed itself, as a single generation is.
  EXPECT_EQ(a[0].tokens, generate(model_, tokenizer_, prompts[0], config).tokens);
}

}  // namespace
}  // namespace inkstone
