// The data `inkstone eval` scores: a token shard (*.bin), a prepared data directory (its validation
// split, else its training split) or a UTF-8 text file, cleaned as prepare cleans it and tokenised as
// one document. Token data must have been made with the checkpoint's tokenizer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/corpus.h"
#include "runtime/model_checkpoint.h"

namespace inkstone::cli {

struct EvalData {
  std::vector<int32_t> tokens;
  uint64_t text_bytes = 0;
  std::string description;  // what was read, for the log
};

// Throws inkstone::Error naming `path` when it is missing, unreadable or of another tokenizer.
EvalData read_eval_data(const std::filesystem::path& path, const ModelCheckpointInfo& info,
                        InvalidUtf8Policy policy);

}  // namespace inkstone::cli
