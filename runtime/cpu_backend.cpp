// The CPU backend: host memory and the ops of kernels/cpu.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/backend.h"
#include "runtime/cpu_backend.h"

namespace inkstone {
namespace {

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::CPU; }
  std::string describe() const override {
    const int threads = cpu::num_threads();
    return fmt::format("cpu ({} thread{}, {})", threads, threads == 1 ? "" : "s", cpu::blas_description());
  }

  void* allocate(size_t bytes) override {
    // 64-byte alignment keeps AVX-512 loads aligned; round up as aligned_alloc requires.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void release(void* ptr) override { std::free(ptr); }
  void upload(Tensor dst, const void* host) override { std::memcpy(dst.data, host, dst.nbytes()); }
  void download(void* host, Tensor src) override { std::memcpy(host, src.data, src.nbytes()); }
  void fill_zero(Tensor t) override {
    // Gradient buffers are hundreds of MB: one thread cannot saturate memory bandwidth.
    constexpr size_t kChunk = size_t{1} << 20;
    const size_t bytes = t.nbytes();
    const auto chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
    char* base = static_cast<char*>(t.data);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t i = 0; i < chunks; ++i) {
      const size_t begin = static_cast<size_t>(i) * kChunk;
      std::memset(base + begin, 0, std::min(kChunk, bytes - begin));
    }
  }
  void copy(Tensor dst, Tensor src) override {
    std::memcpy(dst.data, src.data, src.nbytes());
  }
  void synchronize() override {}

  void embedding_forward(const EmbeddingForward& p) override {
    cpu::embedding_forward(p);
  }
  void embedding_backward(const EmbeddingBackward& p) override {
    cpu::embedding_backward(p);
  }
  void matmul_forward(const MatmulForward& p) override {
    cpu::matmul_forward(p);
  }
  void matmul_backward(const MatmulBackward& p) override {
    cpu::matmul_backward(p);
  }
  void layernorm_forward(const LayerNormForward& p) override {
    cpu::layernorm_forward(p);
  }
  void layernorm_backward(const LayerNormBackward& p) override {
    cpu::layernorm_backward(p);
  }
  void residual_layernorm_forward(const ResidualLayerNormForward& p) override {
    cpu::residual_layernorm_forward(p);
  }
  void attention_forward(const AttentionForward& p) override {
    cpu::attention_forward(p);
  }
  void attention_backward(const AttentionBackward& p) override {
    cpu::attention_backward(p);
  }
  void attention_kv_cache(const AttentionKvCache& p) override {
    cpu::attention_kv_cache(p);
  }
  void softmax_forward(const SoftmaxForward& p) override {
    cpu::softmax_forward(p);
  }
  void cross_entropy(const CrossEntropy& p) override {
    cpu::cross_entropy(p);
  }
  void gelu_forward(const GeluForward& p) override {
    cpu::gelu_forward(p);
  }
  void gelu_backward(const GeluBackward& p) override {
    cpu::gelu_backward(p);
  }
  void add(const Add& p) override {
    cpu::add(p);
  }
  void dropout(const Dropout& p) override {
    cpu::dropout(p);
  }
  void adamw_update(const AdamW& p) override {
    cpu::adamw_update(p);
  }
  double sum_of_squares(Tensor t) override {
    return cpu::sum_of_squares(t);
  }
  void cast(const Cast& p) override {
    cpu::cast(p);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace inkstone
