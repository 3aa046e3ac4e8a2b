// GPT-2's regex, written out as the decisions a backtracking engine makes for it. At each position the
// alternatives are tried in order, and exactly one kind of character can start each of them:
//
//   's|'t|'re|'ve|'m|'ll|'d   an ASCII apostrophe and those lowercase letters, nothing more
//   " ?\p{L}+" and its \p{N}, [^\s\p{L}\p{N}] twins: an optional U+0020, then a maximal run of one class
//   \s+(?!\S)   a whitespace run, less its last character when a non-space follows (which the next
//               piece then starts with: " ?\p{L}+" takes " word"); at the end of the text, all of it
//   \s+         what is left: one whitespace character before a non-space
//
// Every character starts some alternative and no alternative matches the empty string, so the pieces
// tile the text. Under gpt2-cjk a CJK ideograph is a piece of its own and, to the regex on either side
// of it, the end of the text: the lookahead and every run stop there.
#include "runtime/pretokenizer.h"

#include <iterator>

#include "runtime/error.h"

namespace inkstone {
namespace {

constexpr CodePointRange kCjkIdeographs[] = {
    {0x3400, 0x4DBF},    // Extension A
    {0x4E00, 0x9FFF},    // CJK Unified Ideographs
    {0xF900, 0xFAFF},    // Compatibility Ideographs
    {0x20000, 0x2A6DF},  // Extension B
    {0x2A700, 0x2B73F},  // Extension C
    {0x2B740, 0x2B81F},  // Extension D
    {0x2B820, 0x2CEAF},  // Extension E
    {0x2CEB0, 0x2EBEF},  // Extension F
    {0x2EBF0, 0x2EE5F},  // Extension I
    {0x2F800, 0x2FA1F},  // Compatibility Ideographs Supplement
    {0x30000, 0x3134F},  // Extension G
    {0x31350, 0x323AF},  // Extension H
};

bool is_cjk_ideograph(char32_t cp) {
  for (const CodePointRange& r : kCjkIdeographs) {  // sorted: stop at the first range above cp
    if (cp < r.first) return false;
    if (cp <= r.last) return true;
  }
  return false;
}

// A character as the matcher sees it: one of the regex's four classes, or under gpt2-cjk an ideograph.
enum class Kind : uint8_t { Other, Letter, Number, Space, Isolated };
static_assert(static_cast<int>(Kind::Space) == static_cast<int>(CharClass::Space), "CharClass casts to Kind");

struct Char {
  Kind kind;
  uint32_t length;  // bytes
};

constexpr Char kInvalidByte = {Kind::Other, 1};

bool is_continuation(uint8_t b) {
  return (b & 0xC0) == 0x80;
}

// The character at p < end. Well-formed UTF-8 is Table 3-7 of the Unicode standard (as in
// runtime/utf8.cpp); a byte that does not start a well-formed sequence is a character of its own.
template <bool kIsolateCjk>
inline Char read_char(const uint8_t* p, const uint8_t* end) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return {static_cast<Kind>(kLatin1CharClass[b0]), 1};
  const ptrdiff_t available = end - p;
  char32_t cp;
  uint32_t length;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (available < 2 || !is_continuation(p[1])) return kInvalidByte;
    cp = (char32_t{b0} & 0x1F) << 6 | (p[1] & 0x3F);
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    const uint8_t min = b0 == 0xE0 ? 0xA0 : 0x80;  // below: overlong
    const uint8_t max = b0 == 0xED ? 0x9F : 0xBF;  // above: surrogates
    if (available < 3 || p[1] < min || p[1] > max || !is_continuation(p[2])) return kInvalidByte;
    cp = (char32_t{b0} & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    length = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    const uint8_t min = b0 == 0xF0 ? 0x90 : 0x80;  // below: overlong
    const uint8_t max = b0 == 0xF4 ? 0x8F : 0xBF;  // above: beyond U+10FFFF
    if (available < 4 || p[1] < min || p[1] > max || !is_continuation(p[2]) || !is_continuation(p[3]))
      return kInvalidByte;
    cp = (char32_t{b0} & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    length = 4;
  } else {
    return kInvalidByte;  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if constexpr (kIsolateCjk) {
    if (is_cjk_ideograph(cp)) return {Kind::Isolated, length};
  }
  return {static_cast<Kind>(char_class(cp)), length};
}

template <bool kIsolateCjk>
class PieceCutter {
 public:
  explicit PieceCutter(const uint8_t* end) : end_(end) {}

  // The end of the piece that starts at p < end.
  const uint8_t* piece_end(const uint8_t* p) const {
    const Char c = at(p);
    switch (c.kind) {
      case Kind::Letter:
      case Kind::Number:
        return run_end(p + c.length, c.kind);
      case Kind::Other:
        if (*p == '\'') {
          if (const uint8_t* e = contraction_end(p)) return e;
        }
        return run_end(p + c.length, Kind::Other);
      case Kind::Space:
        if (*p == ' ' && p + 1 < end_) {  // " ?": U+0020 only, the other spaces are just \s
          const Char next = at(p + 1);
          if (next.kind == Kind::Letter || next.kind == Kind::Number || next.kind == Kind::Other)
            return run_end(p + 1 + next.length, next.kind);
        }
        return whitespace_end(p + c.length);
      case Kind::Isolated:
        break;
    }
    return p + c.length;
  }

 private:
  Char at(const uint8_t* p) const { return read_char<kIsolateCjk>(p, end_); }

  // The end of the run of characters of `kind` that continues at p.
  const uint8_t* run_end(const uint8_t* p, Kind kind) const {
    const auto ascii_class = static_cast<CharClass>(kind);
    while (p < end_) {
      if (*p < 0x80) {  // most runs are ASCII: a table load and no decoding
        if (kLatin1CharClass[*p] != ascii_class) break;
        ++p;
        continue;
      }
      const Char c = at(p);
      if (c.kind != kind) break;
      p += c.length;
    }
    return p;
  }

  // 's 't 're 've 'm 'll 'd at p (which holds an apostrophe), case-sensitive; nullptr when none.
  const uint8_t* contraction_end(const uint8_t* p) const {
    const ptrdiff_t available = end_ - p;
    if (available < 2) return nullptr;
    const uint8_t c1 = p[1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
    if (available < 3) return nullptr;
    const uint8_t c2 = p[2];
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return p + 3;
    return nullptr;
  }

  // The end of the whitespace piece whose first character ends at p: \s+(?!\S), else \s+.
  const uint8_t* whitespace_end(const uint8_t* p) const {
    const uint8_t* first_end = p;
    const uint8_t* last = nullptr;  // start of the run's last character, once it has two
    while (p < end_) {
      const Char c = at(p);
      if (c.kind == Kind::Isolated) break;  // the end of the text the regex sees
      if (c.kind != Kind::Space) return last ? last : first_end;
      last = p;
      p += c.length;
    }
    return p;
  }

  const uint8_t* end_;
};

template <bool kIsolateCjk>
void cut(std::string_view text, std::vector<std::string_view>& pieces) {
  const auto* begin = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* end = begin + text.size();
  const PieceCutter<kIsolateCjk> cutter(end);
  for (const uint8_t* p = begin; p < end;) {
    const uint8_t* e = cutter.piece_end(p);
    pieces.emplace_back(text.data() + (p - begin), static_cast<size_t>(e - p));
    p = e;
  }
}

}  // namespace

const std::vector<CodePointRange> kCjkRanges(std::begin(kCjkIdeographs), std::end(kCjkIdeographs));

std::string_view rule_name(PreTokenizerRule rule) {
  switch (rule) {
    case PreTokenizerRule::Gpt2:
      return "gpt2";
    case PreTokenizerRule::Gpt2Cjk:
      return "gpt2-cjk";
  }
  return "unknown";
}

PreTokenizerRule parse_pre_tokenizer_rule(std::string_view name, std::string_view what) {
  for (const PreTokenizerRule rule : {PreTokenizerRule::Gpt2, PreTokenizerRule::Gpt2Cjk})
    if (name == rule_name(rule)) return rule;
  fail("{} is '{}'; use gpt2 or gpt2-cjk", what, name);
}

void pre_tokenize(std::string_view text, PreTokenizerRule rule, std::vector<std::string_view>& pieces) {
  if (rule == PreTokenizerRule::Gpt2Cjk)
    cut<true>(text, pieces);
  else
    cut<false>(text, pieces);
}

}  // namespace inkstone
