// Tokenizers: text <-> token ids. Every tokenizer inkstone writes is a Hugging Face tokenizer.json,
// and its identity is the sha256 of that file's canonical form (tokenizer_hash), which token
// shards and checkpoints record so that mismatches are caught at load time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace inkstone {

inline constexpr std::string_view kEndOfText = "<|endoftext|>";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text is ordinary text: "<|endoftext|>" written inside it is encoded like any other characters,
  // so a corpus cannot inject special tokens; they enter only through their ids (eot_id()).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The bytes the ids stand for (not necessarily whole UTF-8 characters when a sequence is cut);
  // a special token becomes its text. Throws inkstone::Error on an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int32_t vocab_size() const = 0;  // special tokens included
  virtual int32_t eot_id() const = 0;      // <|endoftext|>, placed before every document
  virtual std::string name() const = 0;
  virtual std::string to_json() const = 0;  // the Hugging Face tokenizer.json text
};

// Ids 0..255 are the bytes themselves, 256 is <|endoftext|>. As a tokenizer.json it is a BPE model
// over GPT-2's 256 byte symbols with no merges, so Hugging Face `tokenizers` reproduces its ids.
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEndOfTextId = 256;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return kEndOfTextId + 1; }
  int32_t eot_id() const override { return kEndOfTextId; }
  std::string name() const override { return "byte"; }
  std::string to_json() const override;
};

// Reads a tokenizer.json; `source` names it in error messages. The byte tokenizer's own file loads as
// ByteTokenizer; any other byte-level BPE (model BPE, ByteLevel pre-tokenizer without a prefix space
// and decoder, special added tokens) as BpeTokenizer (runtime/bpe_tokenizer.h); anything else
// (WordPiece, Unigram, a normalizer, a prefix space, a template post-processor ...) is an error
// naming what is unsupported.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const std::string& source);
// `path`: a tokenizer.json file, a tiktoken rank file (*.tiktoken), GPT-2's vocab.json or merges.txt
// (the other beside it), or a directory holding tokenizer.json or vocab.json + merges.txt.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
// DataConfig::tokenizer: "byte", or a path that load_tokenizer takes.
std::unique_ptr<Tokenizer> tokenizer_from_spec(const std::string& spec);

// sha256 hex of the canonical JSON (compact, object keys sorted), so whitespace and key order in
// the file do not change a tokenizer's identity. Throws inkstone::Error when `json_text` is not JSON.
std::string tokenizer_hash(std::string_view json_text);

}  // namespace inkstone
