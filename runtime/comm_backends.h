// The implementations behind make_communicator (runtime/comm.h); only comm.cpp includes this.
#pragma once

#include <memory>

#include "runtime/comm.h"

namespace inkstone {

std::unique_ptr<Communicator> make_single_communicator();

#if INKSTONE_HAVE_MPI
// Initialises MPI (once per process); its destructor finalises it.
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, const CommOptions& options);
#endif

#if INKSTONE_HAVE_CUDA
// GPU ranks. `host` is the MPI communicator of an mpirun / srun launch: the NCCL unique id is broadcast
// over it and the host collectives use it. Under a torchrun-style launch `host` is null: rank 0 writes
// the id into options.rendezvous atomically, the others wait for the file (up to options.timeout_s),
// and the host collectives go through NCCL on a small device buffer.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommOptions& options,
                                                     std::unique_ptr<Communicator> host);
#endif

}  // namespace inkstone
