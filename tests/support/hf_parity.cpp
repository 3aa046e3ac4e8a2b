#include "support/hf_parity.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "runtime/backend.h"
#include "runtime/gpt2.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_source.h"
#include "runtime/safetensors.h"
#include "support/test_support.h"

namespace inkstone::testing {

std::filesystem::path hf_parity_dir() {
  return source_dir() / "tests" / "fixtures" / "hf_parity";
}

ReferenceLogits read_reference_logits(const std::filesystem::path& file) {
  const SafetensorsFile f = SafetensorsFile::read(file);
  const SafeTensorInfo* tokens = f.find("tokens");
  const SafeTensorInfo* logits = f.find("logits");
  if (!tokens || tokens->dtype != SafeDType::I32 || tokens->shape.size() != 1 || !logits ||
      logits->shape.size() != 2 || logits->shape[0] != tokens->shape[0])
    throw std::runtime_error(file.string() + ": not a reference logits file");
  ReferenceLogits r;
  r.tokens.resize(static_cast<size_t>(tokens->numel()));
  std::memcpy(r.tokens.data(), f.bytes(*tokens).data(), r.tokens.size() * sizeof(int32_t));
  r.logits = f.read_floats("logits");
  r.vocab = static_cast<int>(logits->shape[1]);
  return r;
}

std::vector<float> inkstone_logits(const std::filesystem::path& dir, const std::vector<int32_t>& tokens) {
  const ModelSource source = read_model_source(dir);
  const auto backend = make_backend("cpu");
  const int T = static_cast<int>(tokens.size());
  GPT2 model(*backend, source.shape, 1, T);
  load_model_weights(dir, model);
  model.forward(tokens, {}, 1, T);
  return model.read_logits(0, T);
}

double max_relative_error(const std::vector<float>& a, const std::vector<float>& reference) {
  if (a.size() != reference.size() || a.empty()) return INFINITY;
  double scale = 0, error = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(reference[i])));
    error = std::max(error, std::abs(static_cast<double>(a[i]) - reference[i]));
  }
  return error / scale;
}

}  // namespace inkstone::testing
