// inkstone tokenizer train --vocab-size N [--pre-tokenizer gpt2|gpt2-cjk] [--min-frequency F]
//                          [--threads T] [--invalid-utf8 error|replace] --out tokenizer.json [--force]
//                          CORPUS...
// inkstone tokenizer encode TOKENIZER [--text T | FILE] [--pieces]
// inkstone tokenizer decode TOKENIZER IDS...
// Trains a byte-level BPE vocabulary (runtime/bpe_trainer.h) on a corpus read and cleaned as
// `prepare` reads it, and encodes or decodes with any tokenizer tokenizer_from_spec accepts.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/bpe_trainer.h"
#include "runtime/corpus.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/read_file.h"
#include "runtime/tokenizer.h"
#include "runtime/utf8.h"

namespace inkstone::cli {
namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  std::vector<std::string> corpus;
  std::string out;
  bool force = false;
  int vocab_size = 0;
  std::string pre_tokenizer = "gpt2";
  int64_t min_frequency = BpeTrainerConfig{}.min_frequency;
  int threads = 0;
  std::string invalid_utf8 = "error";
  std::vector<std::string> specials;  // besides <|endoftext|>, which every vocabulary has
};

struct EncodeArgs {
  std::string tokenizer;
  std::string file;
  std::string text;
  const CLI::Option* text_option = nullptr;
  bool pieces = false;
};

struct DecodeArgs {
  std::string tokenizer;
  std::vector<std::string> ids;
};

void refuse_to_overwrite(const TrainArgs& args) {
  if (!args.force && fs::exists(fs::symlink_status(args.out)))
    fail("tokenizer train: {} exists; pass --force to replace it, or choose another --out", args.out);
  // Checked now, not after a training run that could not be saved.
  std::error_code ec;
  if (const fs::path folder = fs::path(args.out).parent_path();
      !folder.empty() && !fs::is_directory(folder, ec))
    fail("tokenizer train: --out {}: folder {} does not exist; create it first", args.out, folder.string());
}

BpeTrainerConfig trainer_config(const TrainArgs& args) {
  BpeTrainerConfig config;
  for (const std::string& special : args.specials) {
    if (special.empty()) fail("tokenizer train: --special must not be empty");
    if (std::ranges::find(config.specials, special) == config.specials.end())
      config.specials.push_back(special);
  }
  const int minimum = 256 + static_cast<int>(config.specials.size());
  if (args.vocab_size < minimum) {
    fail(
        "tokenizer train: --vocab-size {} is below {} (the 256 bytes and {} special tokens); ask for at "
        "least {}",
        args.vocab_size, minimum, config.specials.size(), minimum);
  }
  if (args.min_frequency < 1) fail("tokenizer train: --min-frequency {} is below 1", args.min_frequency);
  if (args.threads < 0) fail("tokenizer train: --threads {} is negative; 0 takes every core", args.threads);
  if (args.invalid_utf8 != "error" && args.invalid_utf8 != "replace")
    fail("tokenizer train: --invalid-utf8 is '{}'; use error or replace", args.invalid_utf8);
  config.vocab_size = args.vocab_size;
  config.rule = parse_pre_tokenizer_rule(args.pre_tokenizer, "--pre-tokenizer");
  config.min_frequency = args.min_frequency;
  config.threads = args.threads;
  return config;
}

void train(const TrainArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  if (args.corpus.empty()) fail("tokenizer train: name the corpus files, folders or globs to train on");
  const BpeTrainerConfig config = trainer_config(args);
  refuse_to_overwrite(args);

  DataConfig data;
  data.corpus = args.corpus;
  data.invalid_utf8 = args.invalid_utf8;
  const Corpus corpus = read_corpus(data);
  std::vector<std::string_view> texts;
  for (size_t i = 0; i < corpus.num_documents(); ++i) texts.push_back(corpus.document(i));

  BpeTrainingStats stats;
  const BpeTokenizer tokenizer(train_bpe(texts, config, &stats), args.out);
  const std::string json = tokenizer.to_json();
  refuse_to_overwrite(args);  // again: it may have appeared while training
  write_file_durably(args.out, json);

  int64_t tokens = 0;
  for (const std::string_view text : texts) tokens += static_cast<int64_t>(tokenizer.encode(text).size());
  const size_t merges = tokenizer.model().merges.size();
  fmt::print(stderr, "tokenizer train: {} files, {} bytes, {} pieces, {} distinct (counted in {:.2f} s)\n",
             corpus.files().size(), stats.corpus_bytes, stats.pieces, stats.distinct_words,
             stats.count_seconds);
  fmt::print(stderr, "tokenizer train: {} merges, {} tokens in {:.2f} s{}\n", merges, tokenizer.vocab_size(),
             stats.merge_seconds,
             tokenizer.vocab_size() < config.vocab_size
                 ? fmt::format(" (stopped short of {}: no pair left is seen {} times or more)",
                               config.vocab_size, config.min_frequency)
                 : "");
  fmt::print(stderr, "tokenizer train: {:.3f} bytes per token on the training text; wrote {} in {:.2f} s\n",
             static_cast<double>(stats.corpus_bytes) / static_cast<double>(std::max<int64_t>(tokens, 1)),
             args.out, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// A token's bytes as one readable line: UTF-8 characters as they are, control characters, quotes,
// backslashes and bytes that are not whole UTF-8 characters escaped.
std::string escape_piece(std::string_view bytes) {
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const size_t length = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (c >= 0x80 && i + length <= bytes.size() && !find_invalid_utf8(bytes.substr(i, length))) {
      out += bytes.substr(i, length);
      i += length;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
    ++i;
  }
  return out + "\"";
}

void encode(const EncodeArgs& args) {
  const bool has_text = args.text_option->count() > 0;
  if (has_text == !args.file.empty()) fail("tokenizer encode: give either --text TEXT or a FILE to encode");
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_from_spec(args.tokenizer);
  const std::string text = has_text ? args.text : read_whole_file(args.file, "the text to encode");
  const std::vector<int32_t> ids = tokenizer->encode(text);
  if (!args.pieces) {
    fmt::print("{}\n", fmt::join(ids, " "));
    return;
  }
  for (const int32_t id : ids) fmt::print("{}\t{}\n", id, escape_piece(tokenizer->decode({&id, 1})));
}

void decode(const DecodeArgs& args) {
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_from_spec(args.tokenizer);
  std::vector<int32_t> ids;
  for (const std::string& text : args.ids) {
    int32_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size())
      fail("tokenizer decode: '{}' is not a token id; give ids as whole numbers", text);
    ids.push_back(id);
  }
  const std::string text = tokenizer->decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

constexpr const char* kTokenizerHelp =
    "byte, a tokenizer.json, a folder with vocab.json and merges.txt, or a .tiktoken file";

void add_train(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand("train", "train a byte-level BPE vocabulary on a corpus");
  auto args = std::make_shared<TrainArgs>();
  cmd->add_option("corpus", args->corpus, "corpus files, folders or globs");
  cmd->add_option("--vocab-size", args->vocab_size, "tokens in the vocabulary: bytes, specials and merges")
      ->required();
  cmd->add_option("--out", args->out, "the tokenizer.json to write")->required();
  cmd->add_flag("--force", args->force, "replace --out when it exists");
  cmd->add_option("--pre-tokenizer", args->pre_tokenizer, "gpt2, or gpt2-cjk to keep CJK characters apart")
      ->capture_default_str();
  cmd->add_option("--min-frequency", args->min_frequency, "never merge a pair seen fewer times")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "threads counting words; 0 takes every core")
      ->capture_default_str();
  cmd->add_option("--invalid-utf8", args->invalid_utf8, "error or replace (with U+FFFD)")
      ->capture_default_str();
  cmd->add_option("--special", args->specials,
                  "a special token besides <|endoftext|> (ids 257, 258, ... in order); repeat for several")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([args] { train(*args); });
}

void add_encode(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand("encode", "print the token ids of a text");
  auto args = std::make_shared<EncodeArgs>();
  cmd->add_option("tokenizer", args->tokenizer, kTokenizerHelp)->required();
  cmd->add_option("file", args->file, "the file to encode, byte for byte");
  args->text_option = cmd->add_option("--text", args->text, "the text to encode, instead of a file");
  cmd->add_flag("--pieces", args->pieces, "print each token's id and text on a line of its own");
  cmd->callback([args] { encode(*args); });
}

void add_decode(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand("decode", "print the text of token ids");
  auto args = std::make_shared<DecodeArgs>();
  cmd->add_option("tokenizer", args->tokenizer, kTokenizerHelp)->required();
  cmd->add_option("ids", args->ids, "token ids")->required();
  cmd->callback([args] { decode(*args); });
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("tokenizer", "train a BPE vocabulary, or encode and decode with one");
  cmd->require_subcommand(1);
  add_train(*cmd);
  add_encode(*cmd);
  add_decode(*cmd);
}

}  // namespace inkstone::cli
