#include "runtime/backend.h"

#include <fmt/format.h>

#include <utility>

#include "runtime/cpu_backend.h"
#include "runtime/cuda_backend.h"
#include "runtime/error.h"
#if INKSTONE_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif

namespace inkstone {

std::unique_ptr<Backend> make_backend(const std::string& device, std::string* chosen, int local_rank) {
  auto say = [&](std::string line) {
    if (chosen) *chosen = std::move(line);
  };
  if (device == "cpu") {
    auto backend = make_cpu_backend();
    say(backend->describe());
    return backend;
  }
  if (device != "cuda" && device != "auto") fail("device '{}' is not one of cpu, cuda, auto", device);

#if INKSTONE_HAVE_CUDA
  const int gpus = cuda::device_count();
  if (gpus == 0) {
    if (device == "cuda")
      fail("device: cuda, but no CUDA GPU is visible to this process; use device: cpu or auto");
    auto backend = make_cpu_backend();
    say("device auto: no CUDA GPU found, using " + backend->describe());
    return backend;
  }
  // One process per GPU: a launcher's local rank picks the device (0 when run alone).
  if (local_rank >= gpus) {
    fail("this process is local rank {} but its node shows {} GPU{}; start at most one process per GPU",
         local_rank, gpus, gpus == 1 ? "" : "s");
  }
  auto backend = make_cuda_backend(local_rank);
  if (device == "auto") {
    say(fmt::format("device auto: found {} GPU{}, using {}", gpus, gpus == 1 ? "" : "s",
                    backend->describe()));
  } else {
    say(backend->describe());
  }
  return backend;
#else
  (void)local_rank;
  if (device == "cuda")
    fail(
        "device: cuda, but this inkstone was built without CUDA; rebuild with -DINKSTONE_CUDA=ON or use "
        "device: cpu");
  auto backend = make_cpu_backend();
  say("device auto: built without CUDA, using " + backend->describe());
  return backend;
#endif
}

DeviceTensor::DeviceTensor(Backend& backend, DType dtype, std::initializer_list<int64_t> shape)
    : backend_(&backend) {
  view_ = Tensor(nullptr, dtype, shape);
  view_.data = backend.allocate(view_.nbytes());
}

DeviceTensor::~DeviceTensor() {
  if (backend_ && view_.data) backend_->release(view_.data);
}

DeviceTensor::DeviceTensor(DeviceTensor&& other) noexcept
    : backend_(std::exchange(other.backend_, nullptr)), view_(std::exchange(other.view_, Tensor{})) {}

DeviceTensor& DeviceTensor::operator=(DeviceTensor&& other) noexcept {
  if (this != &other) {
    if (backend_ && view_.data) backend_->release(view_.data);
    backend_ = std::exchange(other.backend_, nullptr);
    view_ = std::exchange(other.view_, Tensor{});
  }
  return *this;
}

}  // namespace inkstone
