// The train/validation split of a corpus, by whole documents, so that no document's text is seen
// in training and measured in validation. Deterministic: the same documents always split the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace inkstone {

// ASCII "inkstone". Fixed rather than taken from train.seed, so that changing the training seed
// never moves documents between train and validation.
inline constexpr uint64_t kSplitSeed = 0x696e6b73746f6e65;

struct DocumentSplit {
  std::vector<size_t> train;  // document indices, ascending (corpus order)
  std::vector<size_t> val;
};

// Shuffles 0..n-1 (Fisher-Yates on std::mt19937_64 seeded with kSplitSeed, which is the same on
// every platform) and gives validation the first round(n * val_fraction) of them: at least one when
// val_fraction > 0, never all. Throws inkstone::Error when val_fraction is outside [0, 0.5] or when
// it is > 0 and there is only one document to split.
DocumentSplit split_documents_train_val(size_t n, double val_fraction);

}  // namespace inkstone
