// Byte-level BPE (GPT-2 and its descendants): text is cut into pieces (runtime/pretokenizer.h), each
// piece's bytes start as the 256 byte tokens, and merges are applied lowest rank first until none
// applies. Reproduces GPT-2's ids exactly (tiktoken's "gpt2" and Hugging Face's GPT-2 tokenizer).
//
// Sources: a Hugging Face tokenizer.json (BPE model, ByteLevel pre-tokenizer and decoder), GPT-2's
// vocab.json + merges.txt, and tiktoken rank files (base64 token, rank per line; a token's rank is
// the rank of the merge that makes it). Special tokens (<|endoftext|>) are explicit: ordinary text
// never encodes to one; encode_with_specials() is the one way text can name them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/pretokenizer.h"
#include "runtime/tokenizer.h"

namespace inkstone {

// Everything that defines a byte-level BPE vocabulary, as plain data (what the trainer produces and
// what the loaders fill). Ids are dense: tokens[id] is the bytes of token id; specials have ids too
// (their entry in `tokens` is their text).
struct BpeModel {
  std::vector<std::string> tokens;
  // Merges in rank order (rank = index): the pair of token ids whose concatenation they make.
  // tokens[merged] == tokens[left] + tokens[right] for every merge.
  struct Merge {
    int32_t left, right, merged;
  };
  std::vector<Merge> merges;
  std::vector<int32_t> specials;  // ids whose token is special text (<|endoftext|>, ...)
  PreTokenizerRule rule = PreTokenizerRule::Gpt2;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws inkstone::Error when the model is inconsistent (a byte without a token, a merge whose result
  // is not the concatenation, duplicate tokens, no <|endoftext|>); `source` names it in messages.
  BpeTokenizer(BpeModel model, std::string source);

  std::vector<int32_t> encode(std::string_view text) const override;
  // The same, except that the text of a special token inside `text` becomes that token's id.
  std::vector<int32_t> encode_with_specials(std::string_view text) const;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override;
  int32_t eot_id() const override;
  std::string name() const override;  // e.g. "bpe (50257 tokens, gpt2 pre-tokenizer)"
  std::string to_json() const override;
  const BpeModel& model() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Loaders; each throws inkstone::Error with the file and what is wrong (missing file, malformed
// line, a merge naming an unknown token, ...).
BpeModel bpe_model_from_tokenizer_json(std::string_view json_text, const std::string& source);
BpeModel bpe_model_from_vocab_merges(const std::string& vocab_json_path, const std::string& merges_txt_path);
// A tiktoken rank file in GPT-2's shape: its pre-tokenizer pattern is assumed, and larger encodings
// (more than 50,256 ranks: cl100k_base, o200k_base), whose patterns and special ids differ, are
// refused. It holds no special tokens, so <|endoftext|> is added with id = number of ranks.
BpeModel bpe_model_from_tiktoken(const std::string& path);

}  // namespace inkstone
