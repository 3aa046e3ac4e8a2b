// The clean Hugging Face GPT-2 directory `inkstone convert` writes from a checkpoint: what
// `GPT2LMHeadModel.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` read, nothing else.
//
// model.safetensors: every parameter as F32 under its GPT2Model name ("wte.weight",
//   "h.0.attn.c_attn.weight" ...; transformers adds the "transformer." prefix itself), no lm_head
//   (tied), no padding rows.
// config.json: GPT2Config, without the checkpoint's "inkstone" object: its run config holds local
//   paths (corpus, data and output folders) that have no place in a published model. An export is
//   for other tools; `inkstone convert` imports it back, and init_from reads it as it is.
// generation_config.json: bos = eos = pad = <|endoftext|> (GPT-2 has no padding token),
//   max_length = context.
// tokenizer.json: the checkpoint's.
// tokenizer_config.json: GPT2TokenizerFast over tokenizer.json, <|endoftext|> as bos/eos/unk, no
//   prefix space, no bos added, decoding without transformers' space clean-up (so text round-trips).
#pragma once

#include <array>
#include <filesystem>
#include <string>

#include "runtime/gpt2.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"

namespace inkstone {

inline constexpr const char* kGenerationConfigFile = "generation_config.json";
inline constexpr const char* kTokenizerConfigFile = "tokenizer_config.json";

// The files write_hugging_face_export writes, in the order it writes them.
inline constexpr std::array<const char*, 5> kHuggingFaceExportFiles = {
    kModelWeightsFile, kModelConfigFile, kGenerationConfigFile, kTokenizerFile, kTokenizerConfigFile};

// Writes the export of `model` into `dir` (which must exist), each file durably. `tokenizer_json` is the
// checkpoint's tokenizer.json; `dropout` the train.dropout it was trained with (config.json's
// resid_pdrop and embd_pdrop, which transformers applies when it fine-tunes the model further).
void write_hugging_face_export(const std::filesystem::path& dir, const GPT2& model,
                               const std::string& tokenizer_json, double dropout);

// The model.safetensors bytes of `model`: F32, GPT2Model names and shapes, metadata {"format": "pt"}.
std::string hugging_face_weights(const GPT2& model);

}  // namespace inkstone
