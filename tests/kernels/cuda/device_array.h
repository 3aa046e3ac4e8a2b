// A device copy of a float vector as one flat tensor of F32 or BF16, optionally placed `offset`
// elements into its allocation: offset 1 breaks 16-byte alignment, which sends the vectorised kernels
// down their scalar path.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/gpu_test_util.h"
#include "kernels/tensor.h"

namespace inkstone::testing {

struct DeviceArray {
  GpuBuffer buffer;
  Tensor view;

  DeviceArray(DType dtype, const std::vector<float>& values, int64_t offset = 0)
      : buffer(dtype, {static_cast<int64_t>(values.size()) + offset}) {
    std::vector<float> padded(static_cast<size_t>(offset), 0.0f);
    padded.insert(padded.end(), values.begin(), values.end());
    buffer.upload(padded);
    view = Tensor(static_cast<char*>(buffer.view().data) + offset * dtype_size(dtype), dtype,
                  {static_cast<int64_t>(values.size())});
  }
  // The view's contents widened to float.
  std::vector<float> download() const {
    const std::vector<float> all = buffer.download();
    return std::vector<float>(all.end() - view.numel(), all.end());
  }
};

}  // namespace inkstone::testing
