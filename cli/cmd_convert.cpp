// inkstone convert SRC DST
// Between inkstone checkpoints and Hugging Face GPT-2 directories; the direction follows from SRC
// (runtime/model_convert.h). One summary line on stdout.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli/checkpoint_dir.h"
#include "cli/commands.h"
#include "runtime/model_convert.h"

namespace inkstone::cli {
namespace {

struct ConvertArgs {
  std::string src;
  std::string dst;
};

constexpr const char* kDescription =
    "convert a checkpoint to a Hugging Face GPT-2 directory, or import one as a checkpoint";

constexpr const char* kFooter =
    R"(Directions (told apart by SRC's config.json, which has an "inkstone" object only in a checkpoint):
  checkpoint -> Hugging Face   SRC is an inkstone checkpoint, or a run directory (its latest checkpoint).
                               DST gets model.safetensors (F32, GPT-2 names), config.json (GPT2Config, no
                               inkstone run state), generation_config.json, tokenizer.json and
                               tokenizer_config.json: transformers' GPT2LMHeadModel.from_pretrained(DST) and
                               AutoTokenizer.from_pretrained(DST) load it. No optimizer or training state.
  Hugging Face -> checkpoint   SRC holds config.json (model_type gpt2), model.safetensors (F32, F16 or BF16;
                               "transformer." prefixes and attention buffers are fine) and tokenizer.json or
                               vocab.json + merges.txt. DST becomes an inkstone checkpoint that eval, generate
                               and init_from read. To fine-tune, prepare the data with its tokenizer
                               (data.tokenizer: DST/tokenizer.json).
DST must not exist or be an empty directory; nothing is overwritten. A Hugging Face directory can also be
given to init_from directly, without converting it.)";

void run_convert(const ConvertArgs& args) {
  const ConvertResult r = convert_model(resolve_checkpoint_dir(args.src), args.dst);
  const GPT2Shape& s = r.shape;
  fmt::print("convert: wrote {} {} ({}): {} layers, {} heads, n_embd {}, context {}, vocab {}\n",
             r.direction == ConvertDirection::kToHuggingFace ? "the Hugging Face GPT-2 directory"
                                                             : "the inkstone checkpoint",
             r.dst.string(), fmt::join(r.files, ", "), s.n_layer, s.n_head, s.n_embd, s.context, s.vocab);
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", kDescription);
  cmd->add_option("src", args->src,
                  "an inkstone checkpoint or run directory, or a Hugging Face GPT-2 directory")
      ->required();
  cmd->add_option("dst", args->dst, "the directory to create (absent or empty)")->required();
  cmd->footer(kFooter);
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace inkstone::cli
