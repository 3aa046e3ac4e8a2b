#include "runtime/model_convert.h"

#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "runtime/backend.h"
#include "runtime/checkpoint_manifest.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/gpt2.h"
#include "runtime/hf_export.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_source.h"
#include "runtime/prepare.h"
#include "runtime/staging_dir.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;

// The directory DST names ("out/" names "out"), checked to be new or empty, in an existing folder.
fs::path checked_destination(const fs::path& dst) {
  const fs::path target = dst.has_filename() ? dst : dst.parent_path();
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(target, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(status))
      fail("{}: exists and is not a directory; inkstone convert never overwrites, give a new directory",
           target.string());
    const bool empty = fs::is_empty(target, ec);
    if (ec) fail("{}: cannot list it ({}); check its permissions", target.string(), ec.message());
    if (!empty)
      fail("{}: exists and is not empty; inkstone convert never overwrites, give a new or empty directory",
           target.string());
  }
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::is_directory(parent, ec))
    fail("{}: the folder {} does not exist; create it first", target.string(), parent.string());
  return target;
}

// rename(2) replaces an empty directory and fails on a non-empty one, so a DST that gained files since
// it was checked is still never overwritten.
void move_into_place(StagingDir& staging, const fs::path& dest) {
  fsync_directory(staging.path());
  if (std::rename(staging.path().c_str(), dest.c_str()) != 0)
    fail("{}: cannot move the converted model into place ({}); nothing was written there", dest.string(),
         std::strerror(errno));
  staging.release();
  fsync_directory(dest.parent_path().empty() ? fs::path(".") : dest.parent_path());
}

std::vector<std::string> export_to_hugging_face(const ModelSource& source, const GPT2& model,
                                                const fs::path& dir) {
  // The checkpoint again, for the dropout it was trained with (ModelSource keeps no run config).
  const ModelCheckpointInfo info = read_model_checkpoint_info(source.dir);
  write_hugging_face_export(dir, model, source.tokenizer_json, info.config.train.dropout);
  return {kHuggingFaceExportFiles.begin(), kHuggingFaceExportFiles.end()};
}

std::vector<std::string> import_checkpoint(const ModelSource& source, const GPT2& model, const fs::path& dir,
                                           const fs::path& final_dir) {
  write_model_files(dir, model, imported_run_config(source.shape, *source.tokenizer, final_dir),
                    source.tokenizer_json);
  std::vector<std::string> files = {kModelWeightsFile, kModelConfigFile, kTokenizerFile};
  write_checkpoint_manifest(dir, files);
  files.push_back(kChecksumsFile);
  return files;
}

}  // namespace

RunConfig imported_run_config(const GPT2Shape& shape, const Tokenizer& tokenizer,
                              const fs::path& checkpoint_dir) {
  RunConfig config;
  config.model = {.preset = "gpt2-tiny",
                  .n_layer = shape.n_layer,
                  .n_head = shape.n_head,
                  .n_embd = shape.n_embd,
                  .context = shape.context,
                  .vocab = 0};  // the tokenizer's
  for (const ModelPreset& p : model_presets()) {
    if (p.n_layer == shape.n_layer && p.n_head == shape.n_head && p.n_embd == shape.n_embd &&
        p.context == shape.context && (p.vocab == 0 || p.vocab == shape.vocab))
      config.model.preset = p.name;
  }
  config.train.seq_len = shape.context;
  config.data.tokenizer =
      tokenizer.name() == "byte" ? "byte" : (fs::absolute(checkpoint_dir) / kTokenizerFile).string();
  return config;
}

ConvertResult convert_model(const fs::path& src, const fs::path& dst) {
  const ModelSource source = read_model_source(src);
  ConvertResult result;
  result.dst = checked_destination(dst);
  result.shape = source.shape;
  result.direction = source.hugging_face ? ConvertDirection::kToCheckpoint : ConvertDirection::kToHuggingFace;

  // max_batch = max_seq = 1: the model is only a checked container for the weights here.
  const std::unique_ptr<Backend> backend = make_backend("cpu");
  GPT2 model(*backend, source.shape, 1, 1);
  load_model_weights(source.dir, model);

  StagingDir staging(result.dst, "convert");
  result.files = source.hugging_face ? import_checkpoint(source, model, staging.path(), result.dst)
                                     : export_to_hugging_face(source, model, staging.path());
  move_into_place(staging, result.dst);
  return result;
}

}  // namespace inkstone
