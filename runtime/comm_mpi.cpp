// The MPI communicator: CPU ranks under mpirun / srun, and the host side of NCCL's GPU ranks.
//
// Every collective is non-blocking (MPI_I*) and waited for by polling MPI_Test against a deadline,
// so a rank that died or hangs ends the job (MPI_Abort) with a message instead of blocking it.
// Polling spins briefly, then sleeps in short naps so that a waiting rank leaves the cores to the
// ranks still computing.
#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include "runtime/comm_backends.h"
#include "runtime/error.h"

namespace inkstone {
namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) fail("MPI: {} failed: {}", call, mpi_error(code));
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const LaunchInfo& launch, const CommOptions& options) : timeout_s_(options.timeout_s) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    // Errors come back as codes (turned into messages here), not as MPI's own abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    if (rank_ != launch.rank || size_ != launch.world_size) {
      fail(
          "MPI says rank {} of {}, the launcher's environment rank {} of {}; launch with mpirun or srun only",
          rank_, size_, launch.rank, launch.world_size);
    }
    // The local rank is the rank among the processes sharing this node's memory.
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string v(version, static_cast<size_t>(length));
    library_ = v.substr(0, v.find_first_of(",\n"));
  }

  ~MpiCommunicator() override {
    if (!owns_mpi_) return;
    // Unwinding from an error: MPI_Finalize would wait for ranks that are waiting for this one in a
    // collective. End the job instead; the error itself was reported by whoever caught it.
    if (std::uncaught_exceptions() > 0) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }

  std::string name() const override { return fmt::format("mpi ({})", library_); }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce(std::span<double> values, ReduceOp op) override {
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), count_of(values.size()), MPI_DOUBLE, mpi_op(op),
                         MPI_COMM_WORLD, &request),
          "MPI_Iallreduce");
    wait(&request, 1, "an all-reduce of decision values");
  }

  void broadcast(std::span<std::byte> bytes, int root) override {
    MPI_Request request;
    check(MPI_Ibcast(bytes.data(), count_of(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD, &request),
          "MPI_Ibcast");
    wait(&request, 1, "a broadcast");
  }

  void start_all_reduce_sum(Tensor t) override {
    if (t.dtype != DType::F32)
      fail("internal: the MPI communicator reduces F32 buffers only (the CPU's dtype)");
    // MPI counts are ints: a buffer beyond 2^31 floats goes in pieces.
    constexpr int64_t kPiece = int64_t{1} << 30;
    for (int64_t first = 0; first < t.numel(); first += kPiece) {
      const int64_t n = std::min(kPiece, t.numel() - first);
      pending_.emplace_back();
      check(MPI_Iallreduce(MPI_IN_PLACE, t.as<float>() + first, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD, &pending_.back()),
            "MPI_Iallreduce");
    }
  }

  void wait_reductions() override {
    if (pending_.empty()) return;
    wait(pending_.data(), static_cast<int>(pending_.size()), "the gradient all-reduce");
    pending_.clear();
  }

  void all_gather(Tensor buffer, std::span<const int64_t> offsets) override {
    if (buffer.dtype != DType::F32) fail("internal: the MPI communicator gathers F32 buffers only");
    std::vector<int> counts(size_), displacements(size_);
    for (int r = 0; r < size_; ++r) {
      counts[r] = count_of(static_cast<size_t>(offsets[r + 1] - offsets[r]));
      displacements[r] = count_of(static_cast<size_t>(offsets[r]));
    }
    MPI_Request request;
    check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer.data, counts.data(),
                          displacements.data(), MPI_FLOAT, MPI_COMM_WORLD, &request),
          "MPI_Iallgatherv");
    wait(&request, 1, "the parameter all-gather");
  }

  void set_timeout(double seconds, const std::string& key) override {
    timeout_s_ = seconds;
    timeout_key_ = key;
  }

  [[noreturn]] void abort(const std::string& message, int exit_code) override {
    fmt::print(stderr, "inkstone: error: rank {}: {}\n", rank_, message);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  static int count_of(size_t n) {
    if (n > static_cast<size_t>(INT_MAX)) fail("internal: an MPI message of {} elements is too large", n);
    return static_cast<int>(n);
  }

  // Polls until every request completes; past the deadline the job ends: a rank died, hangs, or took
  // another path through the program.
  void wait(MPI_Request* requests, int n, const char* what) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s_);
    for (int spins = 0;; ++spins) {
      int done = 0;
      const int code = MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS) abort(fmt::format("{} failed: {}", what, mpi_error(code)), 1);
      if (done) return;
      if (Clock::now() > deadline) {
        abort(fmt::format("{} did not complete within {} s ({}): a rank died, hangs or stopped taking part; "
                          "ending the job",
                          what, timeout_s_, timeout_key_),
              1);
      }
      if (spins < 2000) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }

  double timeout_s_;
  std::string timeout_key_ = "distributed.timeout_s";
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::string library_;
  std::vector<MPI_Request> pending_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(launch, options);
}

}  // namespace inkstone
