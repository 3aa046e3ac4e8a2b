// The op interface the model is written against, once, for every device.
// A Backend owns device memory and runs the ops of kernels/ops.h on it.
#pragma once

#include <memory>
#include <string>

#include "kernels/ops.h"

namespace inkstone {

enum class DeviceKind : uint8_t { CPU, CUDA };

class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceKind kind() const = 0;
  virtual std::string describe() const = 0;  // e.g. "cpu (2 threads, OpenBLAS 0.3.21)"
  // The device's datasheet peak for dense matrix products in `dtype`, in FLOP/s, for MFU; 0 when
  // unknown (MFU is then not reported).
  virtual double peak_flops(DType /*dtype*/) const { return 0; }

  // Memory. Buffers are allocated once per run and freed at its end; never inside a step.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual void upload(Tensor dst, const void* host) = 0;  // host -> dst, dst.nbytes()
  virtual void download(void* host, Tensor src) = 0;      // src -> host, src.nbytes()
  virtual void fill_zero(Tensor t) = 0;
  virtual void copy(Tensor dst, Tensor src) = 0;
  virtual void synchronize() = 0;

  // Ops (see kernels/ops.h for shapes and the accumulate-vs-overwrite contract).
  virtual void embedding_forward(const EmbeddingForward& p) = 0;
  virtual void embedding_backward(const EmbeddingBackward& p) = 0;
  virtual void matmul_forward(const MatmulForward& p) = 0;
  virtual void matmul_backward(const MatmulBackward& p) = 0;
  virtual void layernorm_forward(const LayerNormForward& p) = 0;
  virtual void layernorm_backward(const LayerNormBackward& p) = 0;
  virtual void residual_layernorm_forward(const ResidualLayerNormForward& p) = 0;
  virtual void attention_forward(const AttentionForward& p) = 0;
  virtual void attention_backward(const AttentionBackward& p) = 0;
  virtual void attention_kv_cache(const AttentionKvCache& p) = 0;
  virtual void softmax_forward(const SoftmaxForward& p) = 0;
  virtual void cross_entropy(const CrossEntropy& p) = 0;
  virtual void gelu_forward(const GeluForward& p) = 0;
  virtual void gelu_backward(const GeluBackward& p) = 0;
  virtual void add(const Add& p) = 0;
  virtual void dropout(const Dropout& p) = 0;
  virtual void adamw_update(const AdamW& p) = 0;
  virtual double sum_of_squares(Tensor t) = 0;  // for the global gradient norm; synchronises
  virtual void cast(const Cast& p) = 0;
};

// "cpu", "cuda" or "auto". "cuda" without a usable GPU throws with a message saying so;
// "auto" takes the GPU when there is one and otherwise the CPU. `chosen` (if given) receives a
// one-line description of the decision for the log. One process per GPU: a data-parallel rank's
// `local_rank` (its index among the ranks of its node) picks the GPU.
std::unique_ptr<Backend> make_backend(const std::string& device, std::string* chosen = nullptr,
                                      int local_rank = 0);

// An owning device buffer shaped as a tensor; freed by the backend that made it.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(Backend& backend, DType dtype, std::initializer_list<int64_t> shape);
  ~DeviceTensor();
  DeviceTensor(DeviceTensor&& other) noexcept;
  DeviceTensor& operator=(DeviceTensor&& other) noexcept;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  const Tensor& view() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT: a buffer is usable wherever a view is

 private:
  Backend* backend_ = nullptr;
  Tensor view_;
};

}  // namespace inkstone
