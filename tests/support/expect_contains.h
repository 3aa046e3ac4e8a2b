// EXPECT_CONTAINS(text, part): a substring check whose failure prints the whole text.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace inkstone::testing {

inline ::testing::AssertionResult Contains(const char* text_expr, const char*, const std::string& text,
                                           const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text_expr << " does not contain \"" << part << "\"; it is: " << text;
}

}  // namespace inkstone::testing

#define EXPECT_CONTAINS(text, part) EXPECT_PRED_FORMAT2(::inkstone::testing::Contains, text, part)
