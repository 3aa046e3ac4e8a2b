// A Backend that forwards every call to another one and accumulates wall time per op, to say which
// op a slow training step spends its time in. Each op is followed by synchronize(), so on an
// asynchronous device the time is the op's own (and the device never overlaps ops: a profiling
// mode, not a fast one).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "runtime/backend.h"

namespace inkstone::bench {

class TimedBackend final : public Backend {
 public:
  struct OpTime {
    double seconds = 0;
    long calls = 0;
  };

  explicit TimedBackend(Backend& inner) : inner_(inner) {}

  const std::map<std::string, OpTime>& times() const { return times_; }
  void reset() { times_.clear(); }

  DeviceKind kind() const override { return inner_.kind(); }
  std::string describe() const override { return inner_.describe(); }
  double peak_flops(DType dtype) const override { return inner_.peak_flops(dtype); }
  void* allocate(size_t bytes) override { return inner_.allocate(bytes); }
  void release(void* ptr) override { inner_.release(ptr); }
  void upload(Tensor dst, const void* host) override {
    timed("upload", [&] { inner_.upload(dst, host); });
  }
  void download(void* host, Tensor src) override {
    timed("download", [&] { inner_.download(host, src); });
  }
  void fill_zero(Tensor t) override {
    timed("fill_zero", [&] { inner_.fill_zero(t); });
  }
  void copy(Tensor dst, Tensor src) override {
    timed("copy", [&] { inner_.copy(dst, src); });
  }
  void synchronize() override { inner_.synchronize(); }

  void embedding_forward(const EmbeddingForward& p) override {
    timed("embedding_forward", [&] { inner_.embedding_forward(p); });
  }
  void embedding_backward(const EmbeddingBackward& p) override {
    timed("embedding_backward", [&] { inner_.embedding_backward(p); });
  }
  void matmul_forward(const MatmulForward& p) override {
    timed(p.epilogue == Epilogue::Gelu ? "matmul_forward+gelu" : "matmul_forward",
          [&] { inner_.matmul_forward(p); });
  }
  void matmul_backward(const MatmulBackward& p) override {
    timed("matmul_backward", [&] { inner_.matmul_backward(p); });
  }
  void layernorm_forward(const LayerNormForward& p) override {
    timed("layernorm_forward", [&] { inner_.layernorm_forward(p); });
  }
  void layernorm_backward(const LayerNormBackward& p) override {
    timed("layernorm_backward", [&] { inner_.layernorm_backward(p); });
  }
  void residual_layernorm_forward(const ResidualLayerNormForward& p) override {
    timed("residual_layernorm_forward", [&] { inner_.residual_layernorm_forward(p); });
  }
  void attention_forward(const AttentionForward& p) override {
    timed("attention_forward", [&] { inner_.attention_forward(p); });
  }
  void attention_backward(const AttentionBackward& p) override {
    timed("attention_backward", [&] { inner_.attention_backward(p); });
  }
  void attention_kv_cache(const AttentionKvCache& p) override {
    timed("attention_kv_cache", [&] { inner_.attention_kv_cache(p); });
  }
  void softmax_forward(const SoftmaxForward& p) override {
    timed("softmax_forward", [&] { inner_.softmax_forward(p); });
  }
  void cross_entropy(const CrossEntropy& p) override {
    timed(p.dlogits.defined() ? "cross_entropy+grad" : "cross_entropy", [&] { inner_.cross_entropy(p); });
  }
  void gelu_forward(const GeluForward& p) override {
    timed("gelu_forward", [&] { inner_.gelu_forward(p); });
  }
  void gelu_backward(const GeluBackward& p) override {
    timed("gelu_backward", [&] { inner_.gelu_backward(p); });
  }
  void dropout(const Dropout& p) override {
    timed("dropout", [&] { inner_.dropout(p); });
  }
  void add(const Add& p) override {
    timed("add", [&] { inner_.add(p); });
  }
  void adamw_update(const AdamW& p) override {
    timed("adamw_update", [&] { inner_.adamw_update(p); });
  }
  double sum_of_squares(Tensor t) override {
    double result = 0;
    timed("sum_of_squares", [&] { result = inner_.sum_of_squares(t); });
    return result;
  }
  void cast(const Cast& p) override {
    timed("cast", [&] { inner_.cast(p); });
  }

 private:
  template <class F>
  void timed(const char* op, F&& run) {
    const auto start = std::chrono::steady_clock::now();
    std::forward<F>(run)();
    inner_.synchronize();
    OpTime& t = times_[op];
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++t.calls;
  }

  Backend& inner_;
  std::map<std::string, OpTime> times_;
};

}  // namespace inkstone::bench
