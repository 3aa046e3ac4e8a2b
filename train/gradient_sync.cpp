#include "train/gradient_sync.h"

#include <algorithm>
#include <string>

#include "kernels/tensor.h"

namespace inkstone {
namespace {

// The block a tensor belongs to ("h.7.mlp.c_fc.weight" -> 7); ln_f counts as n_layer (final before
// any block), wte and wpe as -1 (final only at the very end: wte also collects the lm head's gradient
// first, but the embedding's last).
int layer_of(const std::string& name, int n_layer) {
  if (name.starts_with("h.")) return std::stoi(name.substr(2));
  if (name.starts_with("ln_f.")) return n_layer;
  return -1;
}

}  // namespace

GradientSync::GradientSync(const GPT2& model, Communicator& comm, double bucket_mb)
    : model_(model), comm_(comm) {
  const std::vector<ParamInfo>& table = model.parameters();
  const int64_t total = model.gradient_buffer().numel();
  const auto element = static_cast<double>(dtype_size(model.compute_dtype()));
  const auto bucket_elements = static_cast<int64_t>(std::max(1.0, bucket_mb * 1024 * 1024 / element));
  // Walk the tensors from the end of the buffer; each bucket spans whole tensors and the alignment
  // gaps between them (zero, harmless to sum), so together the buckets tile the buffer.
  int64_t end = total;
  Bucket open{.first = total, .count = 0, .ready_after = model.shape().n_layer};
  for (auto p = table.rbegin(); p != table.rend(); ++p) {
    open.first = p->offset;
    open.count = end - p->offset;
    open.ready_after = std::min(open.ready_after, layer_of(p->name, model.shape().n_layer));
    if (open.count >= bucket_elements || std::next(p) == table.rend()) {
      if (std::next(p) == table.rend()) {  // the first tensor's bucket reaches back to element 0
        open.count += open.first;
        open.first = 0;
      }
      buckets_.push_back(open);
      end = open.first;
      open = Bucket{.first = end, .count = 0, .ready_after = model.shape().n_layer};
    }
  }
}

void GradientSync::start(Bucket& bucket) {
  const Tensor grads = model_.gradient_buffer();
  const size_t element = dtype_size(grads.dtype);
  comm_.start_all_reduce_sum(
      Tensor(static_cast<char*>(grads.data) + bucket.first * static_cast<int64_t>(element), grads.dtype,
             {bucket.count}));
  bucket.started = true;
}

void GradientSync::on_layer_done(int layer) {
  if (comm_.single()) return;
  for (Bucket& bucket : buckets_) {
    if (!bucket.started && bucket.ready_after >= layer) start(bucket);
  }
}

void GradientSync::finish() {
  if (comm_.single()) return;
  for (Bucket& bucket : buckets_) {
    if (!bucket.started) start(bucket);
  }
  comm_.wait_reductions();
  for (Bucket& bucket : buckets_) bucket.started = false;
}

}  // namespace inkstone
