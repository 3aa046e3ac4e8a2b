#include "runtime/corpus.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

using testing::error_of;

std::vector<std::string> documents_of(std::string_view text, std::string_view separator, CorpusStats& stats) {
  std::vector<std::string> docs;
  for (const DocumentSpan& s : split_documents(text, separator, stats))
    docs.emplace_back(text.substr(s.begin, s.size));
  return docs;
}

class CorpusFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir / "poems" / "tang");
    fs::create_directories(dir / "poems" / ".git");
    testing::write_file(dir / "poems" / "b.txt", "b\n");
    testing::write_file(dir / "poems" / "a.txt", "a\n");
    testing::write_file(dir / "poems" / "tang" / "c.txt", "c\n");
    testing::write_file(dir / "poems" / ".hidden.txt", "hidden\n");
    testing::write_file(dir / "poems" / ".git" / "HEAD", "ref\n");
    testing::write_file(dir / "notes.md", "notes\n");
  }
  std::string p(const std::string& rel) const { return (dir / rel).string(); }
  testing::TempDir dir;
};

TEST_F(CorpusFiles, FolderIsExpandedRecursivelySortedWithoutHiddenEntries) {
  EXPECT_EQ(expand_corpus({p("poems")}),
            (std::vector<std::string>{p("poems/a.txt"), p("poems/b.txt"), p("poems/tang/c.txt")}));
}

TEST_F(CorpusFiles, FilesAndGlobsKeepSpecOrderAndAFileOnce) {
  EXPECT_EQ(
      expand_corpus({p("notes.md"), p("poems/*.txt"), p("poems/a.txt"), p("poems")}),
      (std::vector<std::string>{p("notes.md"), p("poems/a.txt"), p("poems/b.txt"), p("poems/tang/c.txt")}));
  EXPECT_EQ(expand_corpus({p("poems/t*")}),
            (std::vector<std::string>{p("poems/tang/c.txt")}));  // a folder match
}

TEST_F(CorpusFiles, SpecMatchingNothingIsAnError) {
  EXPECT_EQ(error_of([&] { expand_corpus({p("poems/*.md")}); }),
            "corpus '" + p("poems/*.md") + "' matches no files");
  EXPECT_EQ(error_of([&] { expand_corpus({p("missing.txt")}); }),
            "corpus '" + p("missing.txt") + "' matches no files");
  EXPECT_EQ(error_of([&] { expand_corpus({p("nowhere/*.txt")}); }),
            "corpus '" + p("nowhere/*.txt") + "' matches no files");
  fs::create_directories(dir / "empty");
  EXPECT_EQ(error_of([&] { expand_corpus({p("empty")}); }), "corpus '" + p("empty") + "' matches no files");
}

TEST(CorpusText, InvalidUtf8UnderTheErrorPolicyNamesFileAndRawByteOffset) {
  CorpusStats stats;
  // The escape before the bad byte is not yet stripped when the offset is taken: offsets are into the file.
  const std::string raw = "\x1b[32mab\xFF";
  EXPECT_EQ(error_of([&] { clean_corpus_text(raw, "poems/a.txt", InvalidUtf8Policy::kError, stats); }),
            "poems/a.txt: invalid UTF-8 at byte 7 (0xff); fix the file or set data.invalid_utf8: replace "
            "(--invalid-utf8 replace)");
}

TEST(CorpusText, ReplacePolicyRepairsAndCounts) {
  CorpusStats stats;
  EXPECT_EQ(clean_corpus_text("\x1b[32ma\xFF\xC0\r\nb\xE6\x98", "x", InvalidUtf8Policy::kReplace, stats),
            "a\xEF\xBF\xBD\xEF\xBF\xBD\nb\xEF\xBF\xBD");
  EXPECT_EQ(stats.invalid_utf8_replacements, 3u);
  EXPECT_EQ(stats.clean.escapes_removed, 1u);
  EXPECT_EQ(stats.clean.line_ends_changed, 1u);
  EXPECT_EQ(parse_invalid_utf8_policy("replace"), InvalidUtf8Policy::kReplace);
  EXPECT_NE(error_of([] { parse_invalid_utf8_policy("ignore"); }).find("data.invalid_utf8"),
            std::string::npos);
}

TEST(SplitDocuments, SeparatorLinesSplitAndAreDropped) {
  CorpusStats stats;
  EXPECT_EQ(documents_of("one\nline\n%\ntwo\n%\n", "%", stats),
            (std::vector<std::string>{"one\nline\n", "two\n"}));
  EXPECT_EQ(stats.separator_lines, 2u);
  EXPECT_EQ(stats.blank_documents_dropped, 1u);  // after the last separator
}

TEST(SplitDocuments, OnlyLinesEqualToTheSeparatorCount) {
  CorpusStats stats;
  EXPECT_EQ(documents_of("a\n%%\n 100%\n% \nb\n%", "%", stats),
            (std::vector<std::string>{"a\n%%\n 100%\n% \nb\n"}));
  EXPECT_EQ(stats.separator_lines, 1u);  // the last line, without a newline
  EXPECT_EQ(stats.blank_documents_dropped, 1u);
}

TEST(SplitDocuments, BlankDocumentsAreDroppedAndCounted) {
  CorpusStats stats;
  EXPECT_EQ(documents_of("%\n\n \t\n%\n%\nx\n", "%", stats), (std::vector<std::string>{"x\n"}));
  EXPECT_EQ(stats.blank_documents_dropped, 3u);
  EXPECT_EQ(stats.separator_lines, 3u);
}

TEST(SplitDocuments, EmptySeparatorMakesOneDocumentPerText) {
  CorpusStats stats;
  EXPECT_EQ(documents_of("a\n%\nb\n", "", stats), (std::vector<std::string>{"a\n%\nb\n"}));
  EXPECT_EQ(documents_of(" \n\n", "", stats), (std::vector<std::string>{}));
  EXPECT_EQ(stats.blank_documents_dropped, 1u);
  EXPECT_EQ(stats.separator_lines, 0u);
}

TEST(SplitDocuments, MultiCharacterSeparator) {
  CorpusStats stats;
  EXPECT_EQ(documents_of("ch1\n***\nch2\n***x\n", "***", stats),
            (std::vector<std::string>{"ch1\n", "ch2\n***x\n"}));
}

TEST_F(CorpusFiles, ReadCorpusCleansSplitsAndCounts) {
  testing::write_file(dir / "f1.txt", "\xEF\xBB\xBF\x1b[32mT1\x1b[m\r\nx\r\n%\r\ny\n");
  testing::write_file(dir / "f2.txt", "%\nz\n");
  DataConfig config;
  config.corpus = {p("f1.txt"), p("f2.txt")};
  config.document_separator = "%";
  const Corpus corpus = read_corpus(config);
  ASSERT_EQ(corpus.num_documents(), 3u);
  EXPECT_EQ(corpus.document(0), "T1\nx\n");
  EXPECT_EQ(corpus.document(1), "y\n");
  EXPECT_EQ(corpus.document(2), "z\n");
  EXPECT_EQ(corpus.document_file(2), 1u);
  const CorpusStats& s = corpus.stats();
  EXPECT_EQ(s.files, 2u);
  EXPECT_EQ(s.raw_bytes, fs::file_size(dir / "f1.txt") + fs::file_size(dir / "f2.txt"));
  EXPECT_EQ(s.document_bytes, 5u + 2 + 2);
  EXPECT_EQ(s.documents, 3u);
  EXPECT_EQ(s.blank_documents_dropped, 1u);  // before the first separator of f2
  EXPECT_EQ(s.separator_lines, 2u);
  EXPECT_EQ(s.clean.escapes_removed, 2u);
  EXPECT_EQ(s.clean.line_ends_changed, 3u);
  EXPECT_EQ(s.clean.boms_removed, 1u);
  ASSERT_EQ(corpus.files().size(), 2u);
  EXPECT_EQ(corpus.files()[1].path, p("f2.txt"));
  EXPECT_EQ(corpus.files()[1].bytes, 4u);
  EXPECT_EQ(corpus.files()[1].sha256, "d19a78c7fa2c8e8fcd2173554b793a4bbd77f86a349fa1ff1663d41503157b3d");
}

TEST_F(CorpusFiles, EmptyCorpusIsAnError) {
  testing::write_file(dir / "blank.txt", "%\n\n%\n");
  DataConfig config;
  config.corpus = {p("blank.txt"), p("notes.md")};
  config.document_separator = "%";
  testing::write_file(dir / "notes.md", " \n");
  EXPECT_EQ(error_of([&] { read_corpus(config); }),
            "corpus is empty: 2 files, 0 bytes of text after cleaning; check data.corpus");
}

TEST_F(CorpusFiles, InvalidUtf8InAFileNamesIt) {
  testing::write_file(dir / "bad.txt", "fine\nthen \xC0\xAF bad\n");
  DataConfig config;
  config.corpus = {p("poems"), p("bad.txt")};
  EXPECT_EQ(error_of([&] { read_corpus(config); }),
            p("bad.txt") +
                ": invalid UTF-8 at byte 10 (0xc0); fix the file or set data.invalid_utf8: replace "
                "(--invalid-utf8 replace)");
  config.invalid_utf8 = "replace";
  EXPECT_EQ(read_corpus(config).stats().invalid_utf8_replacements, 2u);
}

}  // namespace
}  // namespace inkstone
