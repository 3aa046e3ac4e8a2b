// Cuts a byte stream into pieces that never end inside a UTF-8 character. A token of a byte-level
// tokenizer may hold only part of a multi-byte character (one byte of 中's three, say); printing it
// alone would show U+FFFD on a terminal, so an incomplete trailing sequence waits for the bytes that
// complete it. Bytes that can never become a valid character are passed on at once, as they are.
#pragma once

#include <string>
#include <string_view>

namespace inkstone {

class Utf8Stream {
 public:
  // The bytes now safe to emit: everything received so far except an incomplete trailing sequence.
  std::string push(std::string_view bytes);
  // Whatever is still held back (an incomplete sequence at the end of the stream), as it is.
  std::string flush();

 private:
  std::string pending_;
};

// The length of the longest suffix of `bytes` that is a proper prefix of a well-formed UTF-8
// sequence (0..3): the bytes to hold back until more arrive.
size_t incomplete_utf8_suffix(std::string_view bytes);

}  // namespace inkstone
