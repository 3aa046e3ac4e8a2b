// End-to-end tests of `inkstone prepare` through the real binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::run_cli;

const fs::path kFortunes = "/usr/share/games/fortunes";

struct Prepared {
  json report;
  std::vector<std::string> documents;  // decoded, train then val
  uint64_t tokens = 0;
};

// Reads a prepared directory back through the shard reader and cuts the stream at <|endoftext|>.
Prepared read_prepared(const fs::path& dir) {
  Prepared p;
  p.report = json::parse(testing::read_file(dir / "prepare.json"));
  const auto tokenizer = load_tokenizer((dir / "tokenizer.json").string());
  const ExpectedTokenizer hash{
      sha256_from_hex(tokenizer_hash(testing::read_file(dir / "tokenizer.json")), "test"),
      static_cast<uint32_t>(tokenizer->vocab_size())};
  for (const char* split : {"train", "val"}) {
    std::vector<int32_t> stream;
    for (const json& s : p.report["split"][split]["shards"]) {
      const TokenShard shard = read_token_shard(dir / s["file"].get<std::string>(), hash);
      stream.insert(stream.end(), shard.tokens.begin(), shard.tokens.end());
    }
    p.tokens += stream.size();
    for (size_t i = 0; i < stream.size();) {
      EXPECT_EQ(stream[i], tokenizer->eot_id()) << "documents start with <|endoftext|>";
      const size_t end =
          std::find(stream.begin() + i + 1, stream.end(), tokenizer->eot_id()) - stream.begin();
      p.documents.push_back(tokenizer->decode(std::span(stream).subspan(i + 1, end - i - 1)));
      i = end;
    }
  }
  return p;
}

// Counted here without the library: fortune files hold entries between "%" lines; an entry's text is
// its lines with the colour codes (ESC [ digits ; m) taken out.
struct FortuneCount {
  size_t poems = 0;
  uint64_t text_bytes = 0;
};

FortuneCount count_fortunes(const fs::path& file) {
  std::istringstream in(testing::read_file(file));
  FortuneCount count;
  std::string line, entry;
  const auto close_entry = [&] {
    if (entry.find_first_not_of(" \t\n") != std::string::npos) {
      ++count.poems;
      count.text_bytes += entry.size();
    }
    entry.clear();
  };
  while (std::getline(in, line)) {
    if (line == "%") {
      close_entry();
      continue;
    }
    std::string plain;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\x1b' && i + 1 < line.size() && line[i + 1] == '[') {
        i += 2;
        while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == ';')) ++i;
        continue;  // i is at the final 'm'
      }
      plain.push_back(line[i]);
    }
    entry += plain + (in.eof() ? "" : "\n");
  }
  close_entry();
  return count;
}

bool one_line(const std::string& text) {
  return !text.empty() && text.back() == '\n' && std::count(text.begin(), text.end(), '\n') == 1;
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = testing::read_file(e.path());
  }
  return files;
}

TEST(CmdPrepare, TangAndSongPoemsFromDebianFortunes) {
  const fs::path tang = kFortunes / "tang300", song = kFortunes / "song100";
  if (!fs::exists(tang) || !fs::exists(song)) {
    GTEST_SKIP() << "fortunes-zh is not installed (data/fortunes.sh or scripts/setup.sh installs it)";
  }
  testing::TempDir tmp;
  const auto r = run_cli({"prepare", "--input", tang.string(), "--input", song.string(), "--out",
                          (tmp / "zh").string(), "--separator", "%"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("documents"), std::string::npos) << r.out;

  const Prepared p = read_prepared(tmp / "zh");
  const FortuneCount a = count_fortunes(tang), b = count_fortunes(song);
  EXPECT_GT(a.poems, 300u);
  EXPECT_EQ(p.documents.size(), a.poems + b.poems);
  uint64_t bytes = 0;
  for (const std::string& doc : p.documents) {
    bytes += doc.size();
    EXPECT_EQ(doc.find('\x1b'), std::string::npos) << doc;
    EXPECT_EQ(("\n" + doc).find("\n%\n"), std::string::npos) << doc;
  }
  EXPECT_EQ(bytes, a.text_bytes + b.text_bytes);
  EXPECT_EQ(p.tokens, bytes + p.documents.size());
  EXPECT_EQ(p.report["documents"]["kept"], p.documents.size());
  EXPECT_GT(p.report["cleaning"]["escapes_removed"].get<int>(), 0);
  EXPECT_GT(p.report["split"]["val"]["documents"].get<int>(), 0);

  // The recipe in data/ prepares the same poems.
  const auto c = run_cli({"prepare", (testing::source_dir() / "data" / "tang300.yaml").string(),
                          "data.dir=" + (tmp / "recipe").string()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(read_prepared(tmp / "recipe").documents.size(), p.documents.size());
}

class CmdPrepareErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_file(tmp / "good.txt", "one\n%\ntwo\n%\nthree\n");
    const auto r = run_cli({"prepare", "--input", p("good.txt"), "--out", p("out"), "--separator", "%"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    before = snapshot(tmp / "out");
  }
  // Fails with exactly one line on stderr containing `expected`, and leaves `out` as it was.
  void expect_failure(const std::vector<std::string>& args, const std::string& expected) {
    const auto r = run_cli(args, tmp.path());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    EXPECT_EQ(snapshot(tmp / "out"), before);
  }
  std::string p(const std::string& rel) const { return (tmp / rel).string(); }

  testing::TempDir tmp;
  std::map<std::string, std::string> before;
};

TEST_F(CmdPrepareErrors, EmptyCorpus) {
  testing::write_file(tmp / "blank.txt", "%\n\n%\n");
  expect_failure({"prepare", "--input", p("blank.txt"), "--out", p("out"), "--separator", "%"},
                 "corpus is empty: 1 files, 0 bytes of text after cleaning");
}

TEST_F(CmdPrepareErrors, InvalidUtf8NamesFileAndByteOffset) {
  testing::write_file(tmp / "bad.txt", "good line\nbad \xF0\x28 line\n");
  expect_failure({"prepare", "--input", p("good.txt"), "--input", p("bad.txt"), "--out", p("out")},
                 p("bad.txt") + ": invalid UTF-8 at byte 14 (0xf0)");
}

TEST_F(CmdPrepareErrors, MissingInput) {
  expect_failure({"prepare", "--input", p("missing.txt"), "--out", p("out")},
                 "corpus '" + p("missing.txt") + "'");
  expect_failure({"prepare", "--input", p("*.md"), "--out", p("out")}, "matches no files");
}

TEST_F(CmdPrepareErrors, ArgumentMistakes) {
  expect_failure({"prepare"}, "give a config file");
  expect_failure({"prepare", "--input", p("good.txt")}, "--out DIR is required");
  expect_failure({"prepare", "cfg.yaml", "--input", p("good.txt"), "--out", p("out")}, "not both");
  expect_failure({"prepare", "--input", p("good.txt"), "--out", p("out"), "--val-fraction", "0.9"},
                 "--val-fraction");
  expect_failure({"prepare", "--input", p("good.txt"), "--out", p("out"), "--invalid-utf8", "skip"},
                 "--invalid-utf8");
  expect_failure({"prepare", p("missing.yaml")}, "missing.yaml");
}

TEST_F(CmdPrepareErrors, ConfigBadKeysAreOneLineEach) {
  const std::string dir_key = "  dir: " + p("out") + "\n";
  testing::write_file(tmp / "missing.yaml", "data:\n" + dir_key);  // no data.corpus
  expect_failure({"prepare", p("missing.yaml")}, "data.corpus is empty");
  testing::write_file(tmp / "unknown.yaml", "data:\n  corpse: [good.txt]\n" + dir_key);
  expect_failure({"prepare", p("unknown.yaml")}, p("unknown.yaml") + ":2: data.corpse");
  testing::write_file(tmp / "duplicate.yaml", "data:\n  corpus: [good.txt]\n" + dir_key + dir_key);
  expect_failure({"prepare", p("duplicate.yaml")}, p("duplicate.yaml") + ":4: data.dir");
  testing::write_file(tmp / "type.yaml", "data:\n  corpus: [good.txt]\n  val_fraction: lots\n" + dir_key);
  expect_failure({"prepare", p("type.yaml")}, p("type.yaml") + ":3: data.val_fraction");
  testing::write_file(tmp / "range.yaml", "data:\n  corpus: [good.txt]\n  val_fraction: 0.7\n" + dir_key);
  expect_failure({"prepare", p("range.yaml")}, p("range.yaml") + ":3: data.val_fraction");
}

TEST_F(CmdPrepareErrors, RefusesToReplaceAForeignDirectory) {
  fs::create_directories(tmp / "thesis");
  testing::write_file(tmp / "thesis" / "main.tex", "precious");
  expect_failure({"prepare", "--input", p("good.txt"), "--out", p("thesis")},
                 "was not made by inkstone prepare");
  EXPECT_EQ(testing::read_file(tmp / "thesis" / "main.tex"), "precious");
}

TEST_F(CmdPrepareErrors, RefusesToDeleteAForeignFileInAPreparedDirectory) {
  testing::write_file(tmp / "out" / "notes.txt", "mine");
  before = snapshot(tmp / "out");
  expect_failure({"prepare", "--input", p("good.txt"), "--out", p("out")},
                 p("out/notes.txt") + ", which inkstone prepare did not write");
}

TEST_F(CmdPrepareErrors, OutputInsideTheCorpusIsNotReadBack) {
  fs::create_directories(tmp / "corpus");
  testing::write_file(tmp / "corpus" / "good.txt", "one\n%\ntwo\n%\nthree\n");
  const std::vector<std::string> args = {"prepare",         "--input",     "corpus", "--out",
                                         "corpus/prepared", "--separator", "%"};
  ASSERT_EQ(run_cli(args, tmp.path()).exit_code, 0);
  expect_failure(args, "the output folder corpus/prepared is inside the corpus; choose an --out");
}

TEST_F(CmdPrepareErrors, ReplacePolicyRepairsAndReplacesAnOlderPreparation) {
  testing::write_file(tmp / "bad.txt", "a \xFF b\n");
  const auto r = run_cli({"prepare", "--input", p("bad.txt"), "--input", p("good.txt"), "--out", p("out"),
                          "--invalid-utf8", "replace", "--val-fraction", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Prepared prepared = read_prepared(tmp / "out");
  EXPECT_EQ(prepared.report["cleaning"]["invalid_utf8_replacements"], 1);
  ASSERT_EQ(prepared.documents.size(), 2u);
  EXPECT_EQ(prepared.documents[0], "a \xEF\xBF\xBD b\n");
}

}  // namespace
}  // namespace inkstone
