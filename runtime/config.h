// The one schema of a run, read from YAML and `key.sub=value` overrides, strictly checked.
// Every error names the file, the line and the key (see config.cpp); the resolved config can be
// written back out as YAML and is stored in every run directory and checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace inkstone {

struct ModelConfig {
  // A preset fills every field below; keys given explicitly override it (see runtime/model_config.h).
  std::string preset = "gpt2-tiny";
  int n_layer = 0;
  int n_head = 0;
  int n_embd = 0;
  int context = 0;
  int vocab = 0;  // 0: taken from the data's tokenizer

  bool operator==(const ModelConfig&) const = default;
};

struct DataConfig {
  std::vector<std::string> corpus;  // files, folders or globs of UTF-8 text
  // More files, folders or globs whose documents all go to training: text to learn from that
  // validation does not measure (the corpus alone is split into train and val).
  std::vector<std::string> train_only;
  // > 0: a train_only document that shares a run of this many characters (whitespace skipped) with a
  // validation document is dropped, so that quoted validation text never reaches training. 0: keep all.
  int decontaminate_chars = 0;
  // Copies of the corpus's training documents in the training split, >= 1. With train_only text many
  // times larger than the corpus, this weighs up the kind of text validation measures (as GPT-3 took
  // several epochs of its small curated sets per pass over the web crawl).
  int corpus_repeat = 1;
  std::string tokenizer = "byte";      // "byte" (256 bytes + <|endoftext|>), "train" or a tokenizer.json
  int vocab_size = 0;                  // tokenizer "train": the vocabulary to train, >= 257; 0 otherwise
  std::string pre_tokenizer = "gpt2";  // tokenizer "train": gpt2 | gpt2-cjk (CJK characters kept apart)
  double val_fraction = 0.05;          // share of documents held out for validation, [0, 0.5]
  std::string invalid_utf8 = "error";  // "error" (names file and byte offset) or "replace" (U+FFFD)
  std::string document_separator;      // a line equal to this splits a file into documents; "" = one per file
  std::string dir = "data/prepared";   // where `prepare` writes shards and tokenizer.json
  int64_t shard_tokens = 100'000'000;  // at most this many tokens per shard file

  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int micro_batch = 8;
  int seq_len = 256;
  int grad_accum = 1;
  int64_t max_steps = 1000;
  int64_t max_tokens = 0;  // when > 0, stops at whichever of max_steps / max_tokens comes first
  double lr = 6e-4;
  double min_lr_ratio = 0.1;  // final lr = lr * min_lr_ratio (cosine, linear)
  int warmup_steps = 100;
  std::string schedule = "cosine";  // cosine | linear | constant
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 disables clipping
  double dropout = 0.0;    // on embeddings and residual branches while training, [0, 1)
  // Activations the backward pass recomputes instead of storing (memory for compute, as llm.c's
  // recompute): none | gelu | gelu+layernorm. Gradients are identical either way.
  std::string recompute = "none";
  uint64_t seed = 1337;
  int eval_interval = 100;
  int eval_steps = 20;
  int checkpoint_interval = 500;
  int keep_last = 3;
  std::string resume = "none";  // none | auto | PATH
  int max_bad_steps = 5;        // NaN/Inf steps in a row before the run stops

  bool operator==(const TrainConfig&) const = default;
};

struct DistributedConfig {
  // When the number of processes changes, keep the global batch (micro_batch x grad_accum, the
  // config's values being those of one process; each of N ranks then accumulates grad_accum / N) or
  // keep grad_accum per rank (the global batch grows with N).
  std::string hold_fixed = "global_batch";  // global_batch | grad_accum
  int zero_stage =
      0;  // 1: AdamW state sharded across ranks (ZeRO-1), parameters all-gathered after each step
  double bucket_mb = 25;   // gradients are all-reduced in buckets of about this many MiB
  double timeout_s = 300;  // a collective waiting longer ends the job (a rank died or hangs)
  // The ranks' wait while rank 0 writes a checkpoint (serialising, fsync, retention: minutes for a
  // large model on a slow filesystem); the rest of the time timeout_s applies.
  double checkpoint_timeout_s = 1800;
  std::string rendezvous;  // torchrun-style GPU launch: a folder every rank sees, for the NCCL id

  bool operator==(const DistributedConfig&) const = default;
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  DistributedConfig distributed;
  // Start from these weights instead of a fresh initialisation: an inkstone checkpoint or a Hugging
  // Face GPT-2 directory; the model's shape is the checkpoint's. "" starts from scratch.
  std::string init_from;
  std::string device = "auto";  // cpu | cuda | auto
  // Training's compute dtype: fp32, or bf16 mixed precision (fp32 master weights and optimizer state);
  // auto takes bf16 on a GPU and fp32 on the CPU, which computes in fp32 only.
  std::string precision = "auto";  // auto | fp32 | bf16
  std::string output_dir = "runs/default";
  std::string source;  // the file it came from ("" when built in code); not part of the schema

  bool operator==(const RunConfig&) const = default;  // `source` included
};

// Reads `path`, applies `overrides` ("train.lr=3e-4", in order) and validates. Throws inkstone::Error.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `name` stands for the file in messages.
RunConfig parse_config(const std::string& yaml_text, const std::string& name,
                       const std::vector<std::string>& overrides = {});
// The resolved config as YAML that parse_config reads back to an equal config.
std::string to_yaml(const RunConfig& config);

}  // namespace inkstone
