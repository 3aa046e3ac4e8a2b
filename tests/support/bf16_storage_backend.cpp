#include "support/bf16_storage_backend.h"

#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/cpu_backend.h"

namespace inkstone::testing {
namespace {

// The fp32 stand-ins of one op's BF16 tensors. Tensors that alias (dlogits = logits, add's out = a)
// share one stand-in, so the op sees the aliasing it was written for.
class Widened {
 public:
  Tensor operator()(const Tensor& t) {
    if (!t.defined() || t.dtype != DType::BF16) return t;
    for (const auto& e : entries_)
      if (e->original.data == t.data && e->original.numel() == t.numel()) return view(*e, t);
    auto e = std::make_unique<Entry>(Entry{t, std::vector<float>(static_cast<size_t>(t.numel()))});
    const int64_t n = t.numel();
    cpu::cast({.out = Tensor(e->values.data(), DType::F32, {n}), .inp = Tensor(t.data, DType::BF16, {n})});
    entries_.push_back(std::move(e));
    return view(*entries_.back(), t);
  }
  // Rounds every stand-in back into its BF16 tensor (inputs round-trip unchanged: bf16 -> f32 -> bf16
  // is exact).
  ~Widened() {
    for (const auto& e : entries_) {
      const int64_t n = e->original.numel();
      cpu::cast({.out = Tensor(e->original.data, DType::BF16, {n}),
                 .inp = Tensor(e->values.data(), DType::F32, {n})});
    }
  }

 private:
  struct Entry {
    Tensor original;
    std::vector<float> values;
  };
  static Tensor view(Entry& e, const Tensor& t) {
    Tensor r = t;
    r.data = e.values.data();
    r.dtype = DType::F32;
    return r;
  }
  std::vector<std::unique_ptr<Entry>> entries_;
};

// The CUDA backend's rule (kernels/cuda/cuda_ops.h): every float tensor of an op has one dtype, except
// the F32 statistics (which the CPU ops below require to be F32 anyway). Checked here so a model call
// that mixes dtypes fails on the CPU too, not only on a GPU.
void require_one_dtype(const char* op, std::initializer_list<Tensor> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    if (t.dtype != first->dtype)
      throw std::invalid_argument(std::string("bf16 storage backend: ") + op + " mixes " +
                                  dtype_name(first->dtype) + " and " + dtype_name(t.dtype) + " tensors");
  }
}

class Bf16StorageBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::CPU; }
  std::string describe() const override { return "cpu with bf16 storage (test backend)"; }
  void* allocate(size_t bytes) override { return cpu_->allocate(bytes); }
  void release(void* ptr) override { cpu_->release(ptr); }
  void upload(Tensor dst, const void* host) override { cpu_->upload(dst, host); }
  void download(void* host, Tensor src) override { cpu_->download(host, src); }
  void fill_zero(Tensor t) override { cpu_->fill_zero(t); }
  void copy(Tensor dst, Tensor src) override { cpu_->copy(dst, src); }
  void synchronize() override {}

  void embedding_forward(const EmbeddingForward& p) override {
    require_one_dtype("embedding_forward", {p.out, p.wte, p.wpe});
    Widened w;
    cpu::embedding_forward({w(p.out), p.tokens, w(p.wte), w(p.wpe), p.pos_offset, p.positions});
  }
  void embedding_backward(const EmbeddingBackward& p) override {
    require_one_dtype("embedding_backward", {p.dwte, p.dwpe, p.dout});
    Widened w;
    cpu::embedding_backward({w(p.dwte), w(p.dwpe), w(p.dout), p.tokens, p.pos_offset});
  }
  void matmul_forward(const MatmulForward& p) override {
    require_one_dtype("matmul_forward", {p.out, p.inp, p.weight, p.bias, p.pre_gelu});
    Widened w;
    cpu::matmul_forward({w(p.out), w(p.inp), w(p.weight), w(p.bias), w(p.pre_gelu), p.layout, p.epilogue});
  }
  void matmul_backward(const MatmulBackward& p) override {
    require_one_dtype("matmul_backward", {p.dinp, p.dweight, p.dbias, p.dout, p.inp, p.weight});
    Widened w;
    cpu::matmul_backward({w(p.dinp), w(p.dweight), w(p.dbias), w(p.dout), w(p.inp), w(p.weight), p.layout});
  }
  void layernorm_forward(const LayerNormForward& p) override {
    require_one_dtype("layernorm_forward", {p.out, p.inp, p.weight, p.bias});
    Widened w;
    cpu::layernorm_forward({w(p.out), p.mean, p.rstd, w(p.inp), w(p.weight), w(p.bias), p.eps});
  }
  void layernorm_backward(const LayerNormBackward& p) override {
    require_one_dtype("layernorm_backward", {p.dinp, p.dweight, p.dbias, p.dout, p.inp, p.weight});
    Widened w;
    cpu::layernorm_backward(
        {w(p.dinp), w(p.dweight), w(p.dbias), w(p.dout), w(p.inp), w(p.weight), p.mean, p.rstd});
  }
  // As the CUDA kernel does in BF16: the sum is rounded to bf16 when stored (the add's stand-ins are
  // rounded back when it returns), and the LayerNorm normalises that stored value.
  void residual_layernorm_forward(const ResidualLayerNormForward& p) override {
    require_one_dtype("residual_layernorm_forward", {p.residual, p.out, p.a, p.b, p.weight, p.bias});
    add({.out = p.residual, .a = p.a, .b = p.b});
    layernorm_forward({.out = p.out,
                       .mean = p.mean,
                       .rstd = p.rstd,
                       .inp = p.residual,
                       .weight = p.weight,
                       .bias = p.bias,
                       .eps = p.eps});
  }
  void attention_forward(const AttentionForward& p) override {
    require_one_dtype("attention_forward", {p.out, p.qkv});
    Widened w;
    cpu::attention_forward({w(p.out), p.lse, w(p.qkv), p.n_head});
  }
  void attention_backward(const AttentionBackward& p) override {
    require_one_dtype("attention_backward", {p.dqkv, p.dout, p.qkv, p.out});
    Widened w;
    cpu::attention_backward({w(p.dqkv), w(p.dout), w(p.qkv), w(p.out), p.lse, p.n_head});
  }
  void attention_kv_cache(const AttentionKvCache& p) override {
    require_one_dtype("attention_kv_cache", {p.out, p.qkv, p.k_cache, p.v_cache});
    Widened w;
    cpu::attention_kv_cache({w(p.out), w(p.qkv), w(p.k_cache), w(p.v_cache), p.start, p.n_head});
  }
  void softmax_forward(const SoftmaxForward& p) override {
    require_one_dtype("softmax_forward", {p.out, p.inp});
    Widened w;
    cpu::softmax_forward({w(p.out), w(p.inp), p.valid_cols});
  }
  void cross_entropy(const CrossEntropy& p) override {
    require_one_dtype("cross_entropy", {p.dlogits, p.logits});
    Widened w;
    cpu::cross_entropy({p.losses, w(p.dlogits), w(p.logits), p.targets, p.vocab_size, p.dloss});
  }
  void gelu_forward(const GeluForward& p) override {
    require_one_dtype("gelu_forward", {p.out, p.inp});
    Widened w;
    cpu::gelu_forward({w(p.out), w(p.inp)});
  }
  void gelu_backward(const GeluBackward& p) override {
    require_one_dtype("gelu_backward", {p.dinp, p.inp, p.dout});
    Widened w;
    cpu::gelu_backward({w(p.dinp), w(p.inp), w(p.dout)});
  }
  void add(const Add& p) override {
    require_one_dtype("add", {p.out, p.a, p.b});
    Widened w;
    cpu::add({w(p.out), w(p.a), w(p.b)});
  }
  void dropout(const Dropout& p) override {
    require_one_dtype("dropout", {p.out, p.inp});
    Widened w;
    cpu::dropout({w(p.out), w(p.inp), p.p, p.seed});
  }
  void adamw_update(const AdamW& p) override {
    require_one_dtype("adamw_update", {p.params, p.grads});
    Widened w;
    AdamW q = p;
    q.params = w(p.params);
    q.grads = w(p.grads);
    cpu::adamw_update(q);
  }
  double sum_of_squares(Tensor t) override {
    Widened w;
    return cpu::sum_of_squares(w(t));
  }
  void cast(const Cast& p) override { cpu::cast(p); }

 private:
  std::unique_ptr<Backend> cpu_ = make_cpu_backend();
};

}  // namespace

std::unique_ptr<Backend> make_bf16_storage_backend() {
  return std::make_unique<Bf16StorageBackend>();
}

}  // namespace inkstone::testing
