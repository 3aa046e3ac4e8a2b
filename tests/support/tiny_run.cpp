#include "support/tiny_run.h"

#include <fmt/format.h>

#include <sstream>

#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/gpt2.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"

namespace inkstone::testing {

std::string tiny_poems(int poems, unsigned seed) {
  static const char* const kChars[] = {"春", "眠", "不", "觉", "晓", "处", "闻", "啼",
                                       "鸟", "夜", "来", "风", "雨", "声", "花", "落",
                                       "知", "多", "少", "山", "月", "江", "水", "明"};
  constexpr unsigned kCount = sizeof(kChars) / sizeof(kChars[0]);
  unsigned state = seed * 2654435761u + 1;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::string text;
  for (int p = 0; p < poems; ++p) {
    const int width = next() % 2 == 0 ? 5 : 7;
    for (int line = 0; line < 4; ++line) {
      for (int c = 0; c < width; ++c) text += kChars[next() % kCount];
      text += line % 2 == 0 ? "，" : "。\n";
    }
    text += "%\n";
  }
  return text;
}

TinyRun make_tiny_run(const std::filesystem::path& root) {
  TinyRun run{root, root / "config.yaml", root / "data", root / "run"};
  write_file(root / "corpus.txt", tiny_poems(300, 7));
  write_file(run.config,
             fmt::format(R"(model:
  preset: gpt2-tiny
  n_layer: 2
  n_head: 2
  n_embd: 32
  context: 32
data:
  corpus: ["{}"]
  document_separator: "%"
  val_fraction: 0.1
  dir: "{}"
train:
  micro_batch: 4
  seq_len: 32
  max_steps: 8
  lr: 3.0e-3
  warmup_steps: 2
  eval_interval: 4
  eval_steps: 2
  checkpoint_interval: 4
  keep_last: 5
device: cpu
output_dir: "{}"
)",
                         (root / "corpus.txt").string(), run.data_dir.string(), run.output_dir.string()));
  std::ostringstream log;
  prepare_corpus(load_config(run.config.string()).data, log);
  return run;
}

void write_tiny_checkpoint(const std::filesystem::path& dir, int seq_len, uint64_t seed) {
  std::filesystem::create_directories(dir);
  const GPT2Shape& shape = kTinyCheckpointShape;
  RunConfig config;
  config.model = {.preset = "gpt2-tiny",
                  .n_layer = shape.n_layer,
                  .n_head = shape.n_head,
                  .n_embd = shape.n_embd,
                  .context = shape.context,
                  .vocab = 0};
  config.train.seq_len = seq_len;
  config.device = "cpu";
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, shape, 1, shape.context);
  model.initialize(seed);
  write_model_files(dir, model, config, ByteTokenizer().to_json());
}

std::vector<std::string> train_args(const TinyRun& run, const std::vector<std::string>& overrides) {
  std::vector<std::string> args{"train", run.config.string()};
  args.insert(args.end(), overrides.begin(), overrides.end());
  return args;
}

}  // namespace inkstone::testing
