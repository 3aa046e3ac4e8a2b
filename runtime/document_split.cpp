#include "runtime/document_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "runtime/error.h"

namespace inkstone {
namespace {

// Uniform in [0, bound) without modulo bias; std::uniform_int_distribution is not the same on
// every standard library, which would make the split depend on the compiler.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t reject_below = (0 - bound) % bound;  // 2^64 mod bound
  uint64_t x = rng();
  while (x < reject_below) x = rng();
  return x % bound;
}

}  // namespace

DocumentSplit split_documents_train_val(size_t n, double val_fraction) {
  if (!(val_fraction >= 0.0 && val_fraction <= 0.5)) {
    fail("data.val_fraction is {}; use a value in [0, 0.5]", val_fraction);
  }
  if (n == 0) fail("the corpus has no documents to split; check data.corpus");
  if (val_fraction > 0.0 && n == 1) {
    fail(
        "the corpus is a single document, so none can be held out for validation; set data.val_fraction: 0 "
        "or data.document_separator to split files into documents");
  }
  size_t val_count = 0;
  if (val_fraction > 0.0) {
    val_count = static_cast<size_t>(std::llround(static_cast<double>(n) * val_fraction));
    val_count = std::clamp<size_t>(val_count, 1, n - 1);
  }

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(kSplitSeed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);

  DocumentSplit split;
  split.val.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(val_count));
  split.train.assign(order.begin() + static_cast<std::ptrdiff_t>(val_count), order.end());
  std::sort(split.val.begin(), split.val.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

}  // namespace inkstone
