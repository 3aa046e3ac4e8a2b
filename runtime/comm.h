// The processes of a data-parallel job and the collectives between them.
//
// One interface, three implementations, chosen from how the process was launched (detect_launch):
//   single  one process (the default): every collective is the identity;
//   mpi     mpirun / srun: OpenMPI collectives over host memory, the CPU backend's ranks;
//   nccl    GPU ranks: NCCL collectives over device memory on the backend's stream (a side stream for
//           the overlapped gradient reduction). Its unique id travels over MPI under mpirun, or through
//           a file in a shared folder under a torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK).
//
// Every rank calls the collectives in the same order with the same sizes. None of them waits forever:
// a collective that has not completed within the timeout (a rank died, hangs or took another path)
// ends the whole job through abort() with a message naming the collective and the timeout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace inkstone {

class Backend;

// Who this process is in its job, read from the launcher's environment before anything else runs
// (the backend binds the GPU of local_rank).
struct LaunchInfo {
  enum class Launcher { Single, Mpi, Env };  // Env: torchrun-style RANK / WORLD_SIZE / LOCAL_RANK
  Launcher launcher = Launcher::Single;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;  // ranks on this node, when the launcher says (0: unknown)
  std::string run_id;  // names the rendezvous file of an Env launch (TORCHELASTIC_RUN_ID, SLURM_JOB_ID...)
};

// Reads OMPI_COMM_WORLD_* / PMIX_RANK / SLURM_* (an MPI launch) or RANK / WORLD_SIZE / LOCAL_RANK.
// Throws inkstone::Error on inconsistent values (a rank outside [0, world_size), say).
LaunchInfo detect_launch();

struct CommOptions {
  double timeout_s = 300;            // per collective, before the job is ended
  std::filesystem::path rendezvous;  // Env launch on GPUs: a folder every rank sees (the NCCL id file)
};

enum class ReduceOp { Sum, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string name()
      const = 0;  // "single process", "mpi (Open MPI v4.1.4)", "nccl 2.27.3 over mpi" ...
  // True for the lone process of a plain launch, whose collectives are all no-ops and are skipped. A
  // launcher's job of one rank (mpirun -np 1, WORLD_SIZE=1) is not single: it runs every collective.
  virtual bool single() const { return false; }
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;

  // ---- Host values, for decisions every rank must take together (skip a step, stop, checkpoint) ----
  virtual void all_reduce(std::span<double> values, ReduceOp op) = 0;
  // `bytes` has the same size on every rank; afterwards every rank holds root's.
  virtual void broadcast(std::span<std::byte> bytes, int root) = 0;

  // ---- Buffers of the backend (host memory for the CPU, device memory for CUDA), F32 or BF16 ----
  // Starts summing `t` in place over all ranks. May return before it is done (NCCL: on a side stream
  // that first waits for the work already queued on the compute stream); wait_reductions() makes
  // every started sum complete and visible to what runs next. `t` must stay untouched until then.
  virtual void start_all_reduce_sum(Tensor t) = 0;
  virtual void wait_reductions() = 0;
  // buffer[offsets[r], offsets[r + 1]) holds rank r's part on rank r (offsets: world_size + 1
  // element indices, non-decreasing); afterwards every rank holds every part. In place.
  virtual void all_gather(Tensor buffer, std::span<const int64_t> offsets) = 0;

  // Every later collective waits at most `seconds` before ending the job; messages name `key`, the
  // setting that says so (a checkpoint's closing barrier waits longer than a step's collectives).
  virtual void set_timeout(double seconds, const std::string& key) = 0;

  // Ends every process of the job, after printing "inkstone: error: rank R: message" on this one.
  [[noreturn]] virtual void abort(const std::string& message, int exit_code) = 0;
};

// The communicator of `launch` for ranks computing on `backend`: single for a single launch, MPI for
// CPU ranks under mpirun / srun, NCCL for GPU ranks. Throws inkstone::Error naming what is missing
// (a build without MPI launched by mpirun, CPU ranks under a torchrun-style launch, no rendezvous).
std::unique_ptr<Communicator> make_communicator(const LaunchInfo& launch, Backend& backend,
                                                const CommOptions& options);

// Splits `elements` into world_size contiguous parts whose boundaries are multiples of `align`:
// offsets[r] .. offsets[r + 1] is rank r's (ZeRO-1 shards, the parts of all_gather).
std::vector<int64_t> even_parts(int64_t elements, int world_size, int64_t align);

}  // namespace inkstone
