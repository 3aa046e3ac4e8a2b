// The NCCL communicator: GPU ranks, one process and one device each (the backend bound the device).
//
// Gradient sums run on a side stream that first waits for what the compute stream has queued, so the
// reduction of one bucket overlaps the backward pass of the next; wait_reductions() joins it back.
//
// No wait here can last forever. The communicator is non-blocking (config.blocking = 0) and every
// collective ends with the host polling an event against options.timeout_s: a collective whose peer
// died or hangs would otherwise spin in its kernel for ever, and the job must end with a message
// instead. A call on a non-blocking communicator may also answer ncclInProgress (the first
// collective sets up connections, a group launches); nothing else may be called on it until its
// state leaves ncclInProgress, which settle() waits for, with the same deadline.
#if INKSTONE_HAVE_CUDA

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>

#include "kernels/cuda/context.h"
#include "runtime/comm_backends.h"
#include "runtime/error.h"
#include "runtime/rendezvous_file.h"

namespace inkstone {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kGradientSum = "the gradient all-reduce (ncclAllReduce)";
constexpr const char* kAllGather = "the parameter all-gather (grouped ncclBroadcast)";
constexpr const char* kValueSum = "an all-reduce of decision values (ncclAllReduce)";
constexpr const char* kBroadcast = "a broadcast (ncclBroadcast)";

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Spins briefly (a collective that is nearly done returns at once), then naps so that a waiting rank
// leaves the CPU to the ranks still computing; the rhythm of the MPI communicator's waits.
void back_off(int spins) {
  if (spins < 2000) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail("CUDA: {} failed: {}", call, cudaGetErrorString(status));
}

// Before the communicator exists no peer waits on this rank, so setup errors are thrown.
void check_nccl_setup(ncclResult_t status, const char* call) {
  if (status != ncclSuccess) {
    fail("NCCL: {} failed: {}; run with NCCL_DEBUG=WARN for NCCL's own account", call,
         ncclGetErrorString(status));
  }
}

std::string nccl_version_string() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "(unknown version)";
  return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);  // NCCL >= 2.9 encodes X*10000+Y*100+Z
}

ncclDataType_t nccl_sum_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return ncclFloat;
    case DType::BF16:
      return ncclBfloat16;
    case DType::I32:
      break;
  }
  fail("internal: the NCCL communicator sums F32 or BF16 buffers, not {}", dtype_name(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

std::filesystem::path id_file(const LaunchInfo& launch, const CommOptions& options) {
  return options.rendezvous / ("nccl_id." + launch.run_id);
}

// Every rank gets rank 0's NCCL unique id: over MPI when there is a host communicator, through a
// file in the shared rendezvous folder otherwise, locally for a lone rank.
ncclUniqueId exchange_unique_id(const LaunchInfo& launch, const CommOptions& options, Communicator* host) {
  ncclUniqueId id{};
  if (host != nullptr) {
    if (launch.rank == 0) check_nccl_setup(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host->broadcast(std::as_writable_bytes(std::span(id.internal)), 0);
    return id;
  }
  if (launch.world_size == 1) {
    check_nccl_setup(ncclGetUniqueId(&id), "ncclGetUniqueId");
    return id;
  }
  if (options.rendezvous.empty()) {
    fail(
        "a torchrun-style launch of {} GPU ranks needs distributed.rendezvous: a folder every rank sees (a "
        "shared file system), where rank 0 leaves the NCCL id; set it in the config, or launch with mpirun",
        launch.world_size);
  }
  const std::filesystem::path file = id_file(launch, options);
  if (launch.rank == 0) {
    check_nccl_setup(ncclGetUniqueId(&id), "ncclGetUniqueId");
    publish_rendezvous_file(file, std::string_view(id.internal, sizeof id.internal));
    return id;
  }
  const std::optional<std::string> bytes = await_rendezvous_file(file, options.timeout_s);
  if (!bytes) {
    fail(
        "{}: rank 0's NCCL id did not appear within {} s (distributed.timeout_s); "
        "distributed.rendezvous must be a folder every rank sees and rank 0 must be running",
        file.string(), options.timeout_s);
  }
  if (bytes->size() != sizeof id.internal) {
    fail(
        "{}: holds {} bytes, not an NCCL id of {}; "
        "delete it (a leftover of another run?) and relaunch every rank",
        file.string(), bytes->size(), sizeof id.internal);
  }
  std::memcpy(id.internal, bytes->data(), sizeof id.internal);
  return id;
}

std::string describe(const LaunchInfo& launch, const CommOptions& options, const Communicator* host) {
  const std::string nccl = "nccl " + nccl_version_string();
  if (host != nullptr) return fmt::format("{} over {}", nccl, host->name());
  if (launch.world_size == 1) return nccl + " (one rank)";
  return fmt::format("{} (rendezvous {})", nccl, options.rendezvous.string());
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& launch, const CommOptions& options, std::unique_ptr<Communicator> host)
      : launch_(launch), timeout_s_(options.timeout_s), host_(std::move(host)) {
    const ncclUniqueId id = exchange_unique_id(launch, options, host_.get());
    const bool through_file = host_ == nullptr && launch.world_size > 1;
    try {
      check_cuda(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      check_cuda(cudaEventCreateWithFlags(&compute_event_, cudaEventDisableTiming),
                 "cudaEventCreateWithFlags");
      check_cuda(cudaEventCreateWithFlags(&side_event_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      init_comm(id, through_file ? id_file(launch, options) : std::filesystem::path());
    } catch (...) {
      release_cuda_resources();
      throw;
    }
    name_ = describe(launch, options, host_.get());
  }

  ~NcclCommunicator() override {
    // Never throws and never waits past the deadline: a destructor also runs while an error unwinds
    // the stack, perhaps because a peer died. What does not finish in time is aborted instead.
    if (comm_ != nullptr) {
      const Clock::time_point deadline = deadline_after(timeout_s_);
      bool clean = stream_idle_by(side_, deadline);
      if (clean) clean = settle(ncclCommFinalize(comm_), deadline) == ncclSuccess;
      if (clean) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    release_cuda_resources();
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string name() const override { return name_; }
  int rank() const override { return launch_.rank; }
  int world_size() const override { return launch_.world_size; }
  int local_rank() const override { return launch_.local_rank; }

  void all_reduce(std::span<double> values, ReduceOp op) override {
    if (host_ != nullptr) return host_->all_reduce(values, op);
    if (values.empty()) return;
    through_staging(std::as_writable_bytes(values), kValueSum, [&](void* buffer) {
      return ncclAllReduce(buffer, buffer, values.size(), ncclDouble, nccl_op(op), comm_, side_);
    });
  }

  void broadcast(std::span<std::byte> bytes, int root) override {
    if (root < 0 || root >= launch_.world_size) {
      fail("internal: broadcast from rank {} in a job of {}", root, launch_.world_size);
    }
    if (host_ != nullptr) return host_->broadcast(bytes, root);
    if (bytes.empty()) return;
    through_staging(bytes, kBroadcast, [&](void* buffer) {
      return ncclBroadcast(buffer, buffer, bytes.size(), ncclUint8, root, comm_, side_);
    });
  }

  void start_all_reduce_sum(Tensor t) override {
    const ncclDataType_t type = nccl_sum_type(t.dtype);
    if (t.numel() == 0) return;  // every rank has the same sizes, so every rank skips it
    check_cuda(cudaEventRecord(compute_event_, compute_stream()), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(side_, compute_event_, 0), "cudaStreamWaitEvent");
    call(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), type, ncclSum, comm_, side_),
         kGradientSum);
    reductions_pending_ = true;
  }

  void wait_reductions() override {
    if (!reductions_pending_) return;
    check_cuda(cudaEventRecord(side_event_, side_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(compute_stream(), side_event_, 0), "cudaStreamWaitEvent");
    // The compute stream alone would wait as long as NCCL does; the host's poll is what times out.
    wait_for(side_event_, kGradientSum);
    reductions_pending_ = false;
  }

  // The parts may differ in size (ncclAllGather wants equal ones), so each rank broadcasts its own in
  // place, all in one group: NCCL launches them together.
  void all_gather(Tensor buffer, std::span<const int64_t> offsets) override {
    check_parts(buffer, offsets);
    const size_t element = dtype_size(buffer.dtype);
    std::byte* base = static_cast<std::byte*>(buffer.data);
    call(ncclGroupStart(), kAllGather);
    for (int r = 0; r < launch_.world_size; ++r) {
      const size_t bytes = static_cast<size_t>(offsets[r + 1] - offsets[r]) * element;
      if (bytes == 0) continue;
      std::byte* part = base + static_cast<size_t>(offsets[r]) * element;
      call(ncclBroadcast(part, part, bytes, ncclUint8, r, comm_, compute_stream()), kAllGather);
    }
    call(ncclGroupEnd(), kAllGather);
    check_cuda(cudaEventRecord(compute_event_, compute_stream()), "cudaEventRecord");
    wait_for(compute_event_, kAllGather);
  }

  void set_timeout(double seconds, const std::string& key) override {
    timeout_s_ = seconds;
    timeout_key_ = key;
    if (host_) host_->set_timeout(seconds, key);
  }

  [[noreturn]] void abort(const std::string& message, int exit_code) override {
    // The host communicator's abort prints the same line; print it once.
    if (host_ == nullptr) {
      fmt::print(stderr, "inkstone: error: rank {}: {}\n", launch_.rank, message);
      std::fflush(stderr);
    }
    // Stops this rank's NCCL kernels and closes its connections, so the peers' waits fail now.
    if (comm_ != nullptr) ncclCommAbort(comm_);
    if (host_ != nullptr) host_->abort(message, exit_code);
    std::_Exit(exit_code);
  }

 private:
  static cudaStream_t compute_stream() { return static_cast<cudaStream_t>(cuda::stream()); }

  // Joins the job's communicator within the deadline; throws otherwise (no collective has started,
  // so no peer waits on this rank yet). Rank 0 then removes the id file: every rank has read it once
  // the communicator exists, and a file left behind would mislead the next run with the same id.
  void init_comm(const ncclUniqueId& id, const std::filesystem::path& file) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const Clock::time_point deadline = deadline_after(timeout_s_);
    ncclResult_t state = ncclCommInitRankConfig(&comm_, launch_.world_size, id, launch_.rank, &config);
    if (comm_ != nullptr) state = settle(state, deadline);
    if (launch_.rank == 0 && !file.empty()) {
      std::error_code ignored;
      std::filesystem::remove(file, ignored);
    }
    if (state == ncclSuccess) return;
    const std::string detail = ncclGetLastError(comm_);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    // A rank that read an id file left by an earlier run with the same run id joins a job that is gone.
    const std::string stale =
        file.empty() ? "" : fmt::format("; if {} was left by an earlier run, delete it", file.string());
    if (state == ncclInProgress) {
      fail(
          "NCCL: rank {} of {} did not join the job's communicator within {} s (distributed.timeout_s): "
          "a rank did not start, or cannot reach the others{}",
          launch_.rank, launch_.world_size, timeout_s_, stale);
    }
    fail(
        "NCCL: ncclCommInitRankConfig failed on rank {} of {}: {}{}{}{}; run with NCCL_DEBUG=WARN for NCCL's "
        "own account",
        launch_.rank, launch_.world_size, ncclGetErrorString(state), detail.empty() ? "" : ": ", detail,
        stale);
  }

  // Waits while the communicator's state is ncclInProgress: returns the state it settles in, or
  // ncclInProgress when the deadline passes first.
  ncclResult_t settle(ncclResult_t state, Clock::time_point deadline) const {
    for (int spins = 0; state == ncclInProgress && Clock::now() < deadline; ++spins) {
      back_off(spins);
      const ncclResult_t query = ncclCommGetAsyncError(comm_, &state);
      if (query != ncclSuccess) return query;
    }
    return state;
  }

  // An NCCL call once the communicator exists: its failure ends the job, since the peers wait on it.
  void call(ncclResult_t status, const char* collective) {
    status = settle(status, deadline_after(timeout_s_));
    if (status != ncclSuccess) end_job(collective, status);
  }

  [[noreturn]] void end_job(const char* collective, ncclResult_t status) {
    if (status == ncclInProgress) {
      abort(fmt::format("{} did not complete within {} s ({}): a rank died or hangs; ending the job",
                        collective, timeout_s_, timeout_key_),
            1);
    }
    const std::string detail = ncclGetLastError(comm_);
    abort(fmt::format("{} failed: NCCL {}{}{}: a rank died or hangs, or the network failed; ending the job",
                      collective, ncclGetErrorString(status), detail.empty() ? "" : ": ", detail),
          1);
  }

  // The host side of every collective's timeout: polls `event`, recorded after the collective, until
  // it completes, NCCL reports an error, or the deadline passes (then the job ends).
  void wait_for(cudaEvent_t event, const char* collective) {
    const Clock::time_point deadline = deadline_after(timeout_s_);
    for (int spins = 0;; ++spins) {
      const cudaError_t done = cudaEventQuery(event);
      if (done == cudaSuccess) return;
      if (done != cudaErrorNotReady) {
        abort(fmt::format("{} failed: CUDA {}; ending the job", collective, cudaGetErrorString(done)), 1);
      }
      ncclResult_t state = ncclSuccess;
      const ncclResult_t query = ncclCommGetAsyncError(comm_, &state);
      if (query != ncclSuccess) end_job(collective, query);
      if (state != ncclSuccess && state != ncclInProgress) end_job(collective, state);
      if (Clock::now() >= deadline) end_job(collective, ncclInProgress);
      back_off(spins);
    }
  }

  // Without a host communicator, host values travel through device memory on the side stream. The
  // staging buffer on the host is pinned: a copy to pageable memory would block the host with no
  // deadline behind a hung collective.
  template <class Collective>
  void through_staging(std::span<std::byte> bytes, const char* collective, Collective&& run) {
    reserve_staging(bytes.size(), collective);
    std::memcpy(host_staging_, bytes.data(), bytes.size());
    check_cuda(cudaMemcpyAsync(device_staging_, host_staging_, bytes.size(), cudaMemcpyHostToDevice, side_),
               "cudaMemcpyAsync (to the device)");
    call(run(device_staging_), collective);
    check_cuda(cudaMemcpyAsync(host_staging_, device_staging_, bytes.size(), cudaMemcpyDeviceToHost, side_),
               "cudaMemcpyAsync (to the host)");
    check_cuda(cudaEventRecord(side_event_, side_), "cudaEventRecord");
    wait_for(side_event_, collective);
    std::memcpy(bytes.data(), host_staging_, bytes.size());
  }

  // Allocated once, grown when a larger value comes (rarely after the first step).
  void reserve_staging(size_t bytes, const char* collective) {
    if (bytes <= staging_capacity_) return;
    const size_t capacity = std::max({bytes, 2 * staging_capacity_, size_t{4096}});
    if (device_staging_ != nullptr || host_staging_ != nullptr) {
      // cudaFree synchronises the device: first let the side stream drain, under the deadline.
      check_cuda(cudaEventRecord(side_event_, side_), "cudaEventRecord");
      wait_for(side_event_, collective);
      release_staging();
    }
    check_cuda(cudaMalloc(&device_staging_, capacity), "cudaMalloc (NCCL staging)");
    check_cuda(cudaMallocHost(&host_staging_, capacity), "cudaMallocHost (NCCL staging)");
    staging_capacity_ = capacity;
  }

  void release_staging() noexcept {
    if (device_staging_ != nullptr) cudaFree(device_staging_);
    if (host_staging_ != nullptr) cudaFreeHost(host_staging_);
    device_staging_ = host_staging_ = nullptr;
    staging_capacity_ = 0;
  }

  void release_cuda_resources() noexcept {
    release_staging();
    if (side_event_ != nullptr) cudaEventDestroy(side_event_);
    if (compute_event_ != nullptr) cudaEventDestroy(compute_event_);
    if (side_ != nullptr) cudaStreamDestroy(side_);
    side_event_ = compute_event_ = nullptr;
    side_ = nullptr;
  }

  static bool stream_idle_by(cudaStream_t stream, Clock::time_point deadline) {
    for (int spins = 0;; ++spins) {
      const cudaError_t status = cudaStreamQuery(stream);
      if (status != cudaErrorNotReady) return status == cudaSuccess;
      if (Clock::now() >= deadline) return false;
      back_off(spins);
    }
  }

  void check_parts(const Tensor& buffer, std::span<const int64_t> offsets) const {
    const size_t parts = static_cast<size_t>(launch_.world_size);
    bool valid = offsets.size() == parts + 1 && offsets[0] >= 0 && offsets[parts] <= buffer.numel();
    for (size_t r = 0; valid && r < parts; ++r) valid = offsets[r] <= offsets[r + 1];
    if (!valid) {
      fail(
          "internal: all_gather wants {} non-decreasing offsets within the buffer's {} elements; "
          "got {} offsets",
          parts + 1, buffer.numel(), offsets.size());
    }
  }

  const LaunchInfo launch_;
  double timeout_s_;
  std::string timeout_key_ = "distributed.timeout_s";
  const std::unique_ptr<Communicator> host_;  // MPI under mpirun / srun; null under a torchrun-style launch
  std::string name_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t side_ = nullptr;          // the gradient sums and the staged host collectives
  cudaEvent_t compute_event_ = nullptr;  // recorded on the compute stream
  cudaEvent_t side_event_ = nullptr;     // recorded on the side stream
  bool reductions_pending_ = false;
  void* device_staging_ = nullptr;
  void* host_staging_ = nullptr;
  size_t staging_capacity_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommOptions& options,
                                                     std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(launch, options, std::move(host));
}

}  // namespace inkstone

#endif  // INKSTONE_HAVE_CUDA
