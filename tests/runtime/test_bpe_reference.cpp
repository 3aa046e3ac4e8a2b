// GPT-2's ids compared live, exactly, with the reference implementations: tiktoken and Hugging Face
// tokenizers, run by tests/python/tokenizer_reference.py under INKSTONE_REF_PYTHON (the virtual
// environment scripts/python_refs.sh prepares; scripts/test.sh sets it). Besides GPT-2 itself,
// `tokenizers` also loads the tokenizer.json files we write (GPT-2's, and GPT-2's vocabulary under
// the gpt2-cjk rule, and vocabularies trained here under both rules) and must encode with them as we do.
//
// Inputs: the golden strings of tests/fixtures/bpe_gpt2_golden.json and every corpus in
// ../shared/corpora/ (their ids are compared live, never committed). Skips when ../shared is absent;
// without INKSTONE_REF_PYTHON it skips, except under CI (CI set), where it fails: CI never skips it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fixtures/bpe_test_models.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/bpe_trainer.h"
#include "runtime/utf8.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
using testing::TempDir;

#define INKSTONE_REQUIRE_REFERENCES()                                                                     \
  do {                                                                                                    \
    INKSTONE_REQUIRE_GPT2_FILES();                                                                        \
    if (reference_python().empty()) {                                                                     \
      if (std::getenv("CI")) FAIL() << "INKSTONE_REF_PYTHON is not set under CI; run scripts/test.sh";    \
      GTEST_SKIP() << "INKSTONE_REF_PYTHON is not set: run scripts/test.sh, which installs tiktoken and " \
                      "tokenizers into build/pyref and sets it";                                          \
    }                                                                                                     \
  } while (0)

std::string reference_python() {
  const char* python = std::getenv("INKSTONE_REF_PYTHON");
  return python ? python : "";
}

std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (const char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Ours, and GPT-2's vocabulary under the gpt2-cjk rule, with their tokenizer.json files for `tokenizers`.
struct OurTokenizers {
  const BpeTokenizer& gpt2 = testing::gpt2_tokenizer();
  BpeTokenizer gpt2_cjk;
  fs::path gpt2_json, gpt2_cjk_json;

  explicit OurTokenizers(const TempDir& dir)
      : gpt2_cjk(
            [] {
              BpeModel model = testing::gpt2_tokenizer().model();
              model.rule = PreTokenizerRule::Gpt2Cjk;
              return model;
            }(),
            "gpt2-cjk"),
        gpt2_json(dir / "gpt2.json"),
        gpt2_cjk_json(dir / "gpt2_cjk.json") {
    testing::write_file(gpt2_json, gpt2.to_json());
    testing::write_file(gpt2_cjk_json, gpt2_cjk.to_json());
  }
};

struct ReferenceRun {
  bool specials = false;        // the text of <|endoftext|> becomes its id
  bool gpt2_references = true;  // tiktoken's and tokenizers' own GPT-2: "tiktoken", "tokenizers"
  bool our_files = true;        // tokenizers loading our tokenizer.json files: "ours", "cjk"
};

// Runs the reference script's `encode` on `inputs`; the ids land in `out`/<i>.<reference>.ids.
void run_references(const std::vector<fs::path>& inputs, const ReferenceRun& run, const OurTokenizers& ours,
                    const fs::path& out) {
  std::string command =
      fmt::format("{} {} --gpt2-dir {} encode", shell_quote(reference_python()),
                  shell_quote((testing::source_dir() / "tests/python/tokenizer_reference.py").string()),
                  shell_quote(testing::gpt2_dir().string()));
  if (run.specials) command += " --specials";
  if (run.our_files) {
    command += fmt::format(" --tokenizer-json ours={} --tokenizer-json cjk={}",
                           shell_quote(ours.gpt2_json.string()), shell_quote(ours.gpt2_cjk_json.string()));
  }
  if (!run.gpt2_references) command += " --only-tokenizer-json";
  command += fmt::format(" {}", shell_quote(out.string()));
  for (const fs::path& input : inputs) command += fmt::format(" {}", shell_quote(input.string()));
  const fs::path errors = fs::path(out).concat(".stderr");
  const int status = std::system(fmt::format("{} 2>{}", command, shell_quote(errors.string())).c_str());
  ASSERT_EQ(status, 0) << command << "\n" << testing::read_file(errors);
}

Ids read_ids(const fs::path& path) {
  const std::string bytes = testing::read_file(path);
  Ids ids(bytes.size() / sizeof(int32_t));
  std::memcpy(ids.data(), bytes.data(), ids.size() * sizeof(int32_t));  // little-endian, as written
  return ids;
}

// Exact equality, reported as the first difference with the text around it.
void expect_same_ids(const Ids& ours, const fs::path& reference_file, const BpeTokenizer& tok,
                     const std::string& what) {
  ASSERT_TRUE(fs::exists(reference_file)) << what << ": the reference wrote no " << reference_file;
  const Ids reference = read_ids(reference_file);
  if (ours == reference) return;
  const auto [ours_at, reference_at] =
      std::mismatch(ours.begin(), ours.end(), reference.begin(), reference.end());
  const size_t i = static_cast<size_t>(ours_at - ours.begin());
  const auto window = [&](const Ids& ids) {
    const size_t from = i >= 8 ? i - 8 : 0, to = std::min(ids.size(), i + 8);
    std::string ids_text;
    for (size_t k = from; k < to; ++k)
      ids_text += (k == i ? " [" : " ") + std::to_string(ids[k]) + (k == i ? "]" : "");
    return ids_text + "  " +
           nlohmann::json(tok.decode(std::span(ids).subspan(from, to - from)))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  ADD_FAILURE() << what << ": " << ours.size() << " ids, reference " << reference.size()
                << "; first difference at id " << i << "\n  ours:     " << window(ours)
                << "\n  reference:" << window(reference);
  (void)reference_at;
}

struct GoldenCase {
  std::string name, text;
  bool specials;
  Ids ids;
};

std::vector<GoldenCase> golden_cases() {
  const auto doc = nlohmann::json::parse(
      testing::read_file(testing::source_dir() / "tests/fixtures/bpe_gpt2_golden.json"));
  std::vector<GoldenCase> cases;
  for (const auto& c : doc["cases"]) {
    std::string text;
    if (c.contains("hex")) {
      const std::string hex = c["hex"];
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        text.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    } else {
      text = c["text"];
    }
    cases.push_back({c["name"], text, c["specials"], c["ids"].get<Ids>()});
  }
  return cases;
}

TEST(BpeReference, GoldenStringsMatchLive) {
  INKSTONE_REQUIRE_REFERENCES();
  TempDir dir;
  const OurTokenizers ours(dir);
  const std::vector<GoldenCase> cases = golden_cases();
  for (const bool specials : {false, true}) {
    std::vector<fs::path> inputs;
    std::vector<const GoldenCase*> group;
    for (const GoldenCase& c : cases) {
      if (c.specials != specials) continue;
      inputs.push_back(dir / (c.name + ".txt"));
      testing::write_file(inputs.back(), c.text);
      group.push_back(&c);
    }
    const fs::path out = dir / (specials ? "specials" : "ordinary");
    ASSERT_NO_FATAL_FAILURE(run_references(inputs, {.specials = specials}, ours, out));
    for (size_t i = 0; i < group.size(); ++i) {
      const GoldenCase& c = *group[i];
      const auto file = [&](const std::string& reference) {
        return out / (std::to_string(i) + "." + reference + ".ids");
      };
      const Ids gpt2 = specials ? ours.gpt2.encode_with_specials(c.text) : ours.gpt2.encode(c.text);
      EXPECT_EQ(read_ids(file("tiktoken")), c.ids) << c.name << ": the committed golden ids are stale";
      expect_same_ids(gpt2, file("tiktoken"), ours.gpt2, c.name + " vs tiktoken");
      if (find_invalid_utf8(c.text)) continue;  // `tokenizers` takes only Unicode text
      expect_same_ids(gpt2, file("tokenizers"), ours.gpt2, c.name + " vs tokenizers");
      expect_same_ids(gpt2, file("ours"), ours.gpt2, c.name + " vs tokenizers loading our tokenizer.json");
      const Ids cjk = specials ? ours.gpt2_cjk.encode_with_specials(c.text) : ours.gpt2_cjk.encode(c.text);
      expect_same_ids(cjk, file("cjk"), ours.gpt2_cjk,
                      c.name + " (gpt2-cjk) vs tokenizers loading our tokenizer.json");
    }
  }
}

// Every corpus against both references. Our tokenizer.json files, whose loading by `tokenizers` is
// slow on long texts, on the Chinese corpus and the smallest one (and on every golden string above).
TEST(BpeReference, EveryCorpusMatchesLive) {
  INKSTONE_REQUIRE_REFERENCES();
  const fs::path corpora = testing::shared_dir() / "corpora";
  std::vector<fs::path> inputs;
  if (fs::is_directory(corpora)) {
    for (const auto& entry : fs::directory_iterator(corpora)) {
      if (entry.path().extension() == ".txt") inputs.push_back(entry.path());
    }
  }
  if (inputs.empty()) GTEST_SKIP() << "../shared/corpora/ holds no corpus";
  std::sort(inputs.begin(), inputs.end());
  std::vector<fs::path> for_our_files = {*std::min_element(
      inputs.begin(), inputs.end(),
      [](const fs::path& a, const fs::path& b) { return fs::file_size(a) < fs::file_size(b); })};
  for (const fs::path& input : inputs) {
    if (input.filename() == "hongloumeng.txt") for_our_files.push_back(input);
  }

  TempDir dir;
  const OurTokenizers ours(dir);
  ASSERT_NO_FATAL_FAILURE(run_references(inputs, {.our_files = false}, ours, dir / "references"));
  ASSERT_NO_FATAL_FAILURE(run_references(for_our_files, {.gpt2_references = false}, ours, dir / "ours"));
  const auto compare = [&](const std::vector<fs::path>& files, const fs::path& out, const ReferenceRun& run) {
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string text = testing::read_file(files[i]);
      const std::string name = files[i].filename().string();
      const auto file = [&](const std::string& reference) {
        return out / (std::to_string(i) + "." + reference + ".ids");
      };
      if (run.gpt2_references) {
        const Ids gpt2 = ours.gpt2.encode(text);
        EXPECT_GT(gpt2.size(), text.size() / 8) << name;
        expect_same_ids(gpt2, file("tiktoken"), ours.gpt2, name + " vs tiktoken");
        expect_same_ids(gpt2, file("tokenizers"), ours.gpt2, name + " vs tokenizers");
      }
      if (run.our_files) {
        expect_same_ids(ours.gpt2.encode(text), file("ours"), ours.gpt2,
                        name + " vs tokenizers loading our tokenizer.json");
        expect_same_ids(ours.gpt2_cjk.encode(text), file("cjk"), ours.gpt2_cjk,
                        name + " (gpt2-cjk) vs tokenizers loading our tokenizer.json");
      }
    }
  };
  compare(inputs, dir / "references", {.our_files = false});
  compare(for_our_files, dir / "ours", {.gpt2_references = false});
}

// A trained vocabulary differs from GPT-2's in shape (bytes at ids 0..255 in byte order, <|endoftext|>
// at 256, merges of our own): `tokenizers` must load what we save and encode held-out text as we do.
TEST(BpeReference, TrainedVocabulariesLoadInTokenizersAndEncodeIdentically) {
  INKSTONE_REQUIRE_REFERENCES();
  const fs::path corpora = testing::shared_dir() / "corpora";
  struct Case {
    const char* corpus;
    PreTokenizerRule rule;
    int vocab_size;
  };
  TempDir dir;
  for (const Case& c : {Case{"tinyshakespeare.txt", PreTokenizerRule::Gpt2, 2000},
                        Case{"hongloumeng.txt", PreTokenizerRule::Gpt2Cjk, 3000},
                        Case{"hongloumeng.txt", PreTokenizerRule::Gpt2, 3000}}) {
    if (!fs::exists(corpora / c.corpus)) GTEST_SKIP() << corpora / c.corpus << " is absent";
    const std::string text = testing::read_file(corpora / c.corpus);
    // Train on the first 300 KB (cut at a line end), encode the next 200 KB.
    const size_t cut = text.rfind('\n', 300000) + 1;
    const std::string_view train(text.data(), cut);
    const std::string heldout = text.substr(cut, text.rfind('\n', cut + 200000) + 1 - cut);
    const BpeTokenizer trained(
        train_bpe(std::span(&train, 1), {.vocab_size = c.vocab_size, .rule = c.rule, .threads = 2}),
        "trained");
    const std::string name = fmt::format("{} ({})", c.corpus, rule_name(c.rule));
    const fs::path json = dir / "trained.json", input = dir / "heldout.txt", out = dir / "out";
    testing::write_file(json, trained.to_json());
    testing::write_file(input, heldout);
    const std::string command = fmt::format(
        "{} {} --gpt2-dir {} encode --only-tokenizer-json --tokenizer-json trained={} {} {} 2>{}",
        shell_quote(reference_python()),
        shell_quote((testing::source_dir() / "tests/python/tokenizer_reference.py").string()),
        shell_quote(testing::gpt2_dir().string()), shell_quote(json.string()), shell_quote(out.string()),
        shell_quote(input.string()), shell_quote((dir / "stderr").string()));
    ASSERT_EQ(std::system(command.c_str()), 0) << command << "\n" << testing::read_file(dir / "stderr");
    const Ids ours = trained.encode(heldout);
    EXPECT_LT(ours.size(), heldout.size() / 2) << name;  // a trained vocabulary compresses
    expect_same_ids(ours, out / "0.trained.ids", trained, name + " vs tokenizers loading our tokenizer.json");
  }
}

}  // namespace
}  // namespace inkstone
