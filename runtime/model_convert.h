// inkstone convert SRC DST: between inkstone checkpoints and Hugging Face GPT-2 directories.
//
//   SRC an inkstone checkpoint      -> DST the clean Hugging Face export (runtime/hf_export.h)
//   SRC a Hugging Face GPT-2 dir    -> DST an inkstone model checkpoint (runtime/model_checkpoint.h:
//                                      F32 weights, config.json with the "inkstone" object, the canonical
//                                      tokenizer.json, checksums.sha256) that eval and generate read
//
// The weights go through inkstone's GPT-2 on the CPU, so everything load_model_weights checks (names,
// shapes, dtypes, the tied lm_head) is checked, and what is written is exactly what inkstone computes
// with. DST must not exist or be an empty directory: nothing is ever overwritten. The files are written
// into a hidden directory beside DST, each fsynced, which is then renamed to DST (and the parent
// fsynced), so DST appears complete or not at all.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/model_config.h"
#include "runtime/tokenizer.h"

namespace inkstone {

enum class ConvertDirection {
  kToHuggingFace,  // SRC was an inkstone checkpoint
  kToCheckpoint,   // SRC was a Hugging Face directory
};

struct ConvertResult {
  ConvertDirection direction = ConvertDirection::kToHuggingFace;
  GPT2Shape shape;
  std::filesystem::path dst;       // the directory written
  std::vector<std::string> files;  // the names written into it
};

// Throws inkstone::Error naming the file and the fix; DST is then left as it was.
ConvertResult convert_model(const std::filesystem::path& src, const std::filesystem::path& dst);

// The run config an imported model is stored with: its shape explicitly (under the preset of the same
// dimensions when there is one), train.seq_len = context (eval's window), and data.tokenizer naming
// the checkpoint's own tokenizer.json (or "byte"), so the config prepares data for this model.
RunConfig imported_run_config(const GPT2Shape& shape, const Tokenizer& tokenizer,
                              const std::filesystem::path& checkpoint_dir);

}  // namespace inkstone
