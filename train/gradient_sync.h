// Data parallelism's gradient reduction: the model's gradient buffer summed over every rank, in
// buckets that start while the backward pass is still running.
//
// The buffer is cut into contiguous buckets of whole tensors, about bucket_mb each, from its end
// (ln_f, then h.{L-1} ... h.0, then wpe and wte: the order in which the backward pass finishes them).
// Given to GPT2::backward as `layer_done`, on_layer_done(l) starts every bucket whose tensors are all
// final once block h.l is done; finish() starts the rest and waits for all. On GPUs (NCCL) the sums
// run on a side stream that overlaps the remaining backward kernels; on CPU ranks MPI progresses them
// while the rank waits. The trainer scales each rank's loss by its share of the global targets, so
// the sum is the gradient of the global mean loss: nothing is divided afterwards.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/comm.h"
#include "runtime/gpt2.h"

namespace inkstone {

class GradientSync {
 public:
  GradientSync(const GPT2& model, Communicator& comm, double bucket_mb);

  void on_layer_done(int layer);  // the hook for the last micro-batch's backward
  void finish();                  // every bucket summed and visible to the next op

  struct Bucket {
    int64_t first = 0, count = 0;  // elements of the gradient buffer
    int ready_after = -1;          // the block whose completion makes it final; -1: the embeddings
    bool started = false;
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void start(Bucket& bucket);

  const GPT2& model_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;  // in the order they become final
};

}  // namespace inkstone
