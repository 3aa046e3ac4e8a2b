// Jobs of several inkstone processes under OpenMPI's mpirun, for the data-parallel tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "support/test_support.h"

namespace inkstone::testing {

// Why multi-rank tests cannot run here ("" when they can): a build without MPI, or no mpirun on PATH.
std::string mpi_unavailable_reason();

// `mpirun -np ranks inkstone ARGS...` (as root too, oversubscribing the cores), with `env` exported
// to every rank. Captures the job's stdout and stderr; returns its exit code.
CommandResult run_mpi(int ranks, const std::vector<std::string>& args,
                      const std::vector<std::pair<std::string, std::string>>& env = {});

}  // namespace inkstone::testing
