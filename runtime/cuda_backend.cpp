// The CUDA backend: device memory on one GPU, one stream for every op and copy, and the kernels of
// kernels/cuda. Copies to and from the host synchronise that stream (the model reads losses and
// logits right after), everything else is queued.
#if INKSTONE_HAVE_CUDA

#include "runtime/cuda_backend.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <atomic>

#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("CUDA error in {}: {}", what, cudaGetErrorString(status));
}

double gib(size_t bytes) {
  return static_cast<double>(bytes) / static_cast<double>(size_t{1} << 30);
}

// The kernels launch on one process-wide stream (kernels/cuda/context.h), so one CUDA backend may
// live at a time: a second would make its copies and the first one's kernels unordered.
std::atomic<bool> g_backend_alive{false};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    if (g_backend_alive)
      fail("a CUDA backend already exists in this process; inkstone runs one per process (one GPU each)");
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda::set_stream(stream_);
    description_ = fmt::format("cuda:{} {}", device, cuda::device_description(device));
    peak_bf16_flops_ = cuda::datasheet_bf16_flops(device);
    g_backend_alive = true;  // last: a constructor that throws leaves no backend behind
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cuda::set_stream(nullptr);
    cudaStreamDestroy(stream_);
    g_backend_alive = false;
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  DeviceKind kind() const override { return DeviceKind::CUDA; }
  std::string describe() const override { return description_; }
  double peak_flops(DType dtype) const override { return dtype == DType::BF16 ? peak_bf16_flops_ : 0.0; }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it so the message below is the only trace
      size_t free_bytes = 0, total_bytes = 0;
      cuda::memory_info(&free_bytes, &total_bytes);
      fail(
          "out of GPU memory on {}: asked for {:.2f} GiB with {:.2f} GiB free of {:.2f} GiB; lower "
          "train.micro_batch (raise train.grad_accum to keep the batch size) or train.seq_len, or use a "
          "smaller model",
          description_, gib(bytes), gib(free_bytes), gib(total_bytes));
    }
    check(status, "cudaMalloc");
    return p;
  }
  void release(void* ptr) override {
    // Never throws (destructors call it). Queued kernels may still use the buffer: wait for them.
    cudaStreamSynchronize(stream_);
    cudaFree(ptr);
  }
  void upload(Tensor dst, const void* host) override {
    check(cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, stream_), "upload");
    // The host buffer may be reused as soon as this returns.
    check(cudaStreamSynchronize(stream_), "upload");
  }
  void download(void* host, Tensor src) override {
    check(cudaMemcpyAsync(host, src.data, src.nbytes(), cudaMemcpyDeviceToHost, stream_), "download");
    check(cudaStreamSynchronize(stream_), "download");
  }
  void fill_zero(Tensor t) override { check(cudaMemsetAsync(t.data, 0, t.nbytes(), stream_), "fill_zero"); }
  void copy(Tensor dst, Tensor src) override {
    check(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, stream_), "copy");
  }
  void synchronize() override { check(cudaStreamSynchronize(stream_), "synchronize"); }

  void embedding_forward(const EmbeddingForward& p) override { cuda::embedding_forward(p); }
  void embedding_backward(const EmbeddingBackward& p) override { cuda::embedding_backward(p); }
  void matmul_forward(const MatmulForward& p) override { cuda::matmul_forward(p); }
  void matmul_backward(const MatmulBackward& p) override { cuda::matmul_backward(p); }
  void layernorm_forward(const LayerNormForward& p) override { cuda::layernorm_forward(p); }
  void layernorm_backward(const LayerNormBackward& p) override { cuda::layernorm_backward(p); }
  void residual_layernorm_forward(const ResidualLayerNormForward& p) override {
    cuda::residual_layernorm_forward(p);
  }
  void attention_forward(const AttentionForward& p) override { cuda::attention_forward(p); }
  void attention_backward(const AttentionBackward& p) override { cuda::attention_backward(p); }
  void attention_kv_cache(const AttentionKvCache& p) override { cuda::attention_kv_cache(p); }
  void softmax_forward(const SoftmaxForward& p) override { cuda::softmax_forward(p); }
  void cross_entropy(const CrossEntropy& p) override { cuda::cross_entropy(p); }
  void gelu_forward(const GeluForward& p) override { cuda::gelu_forward(p); }
  void gelu_backward(const GeluBackward& p) override { cuda::gelu_backward(p); }
  void add(const Add& p) override { cuda::add(p); }
  void dropout(const Dropout& p) override { cuda::dropout(p); }
  void adamw_update(const AdamW& p) override { cuda::adamw_update(p); }
  double sum_of_squares(Tensor t) override { return cuda::sum_of_squares(t); }
  void cast(const Cast& p) override { cuda::cast(p); }

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::string description_;
  double peak_bf16_flops_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return std::make_unique<CudaBackend>(device);
}

}  // namespace inkstone

#endif  // INKSTONE_HAVE_CUDA
