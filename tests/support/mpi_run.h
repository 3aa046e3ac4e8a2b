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

// One part of a job whose ranks differ (mpirun's "A : B" form): `ranks` processes of inkstone ARGS with
// NAME=VALUE settings of their own.
struct MpiApp {
  int ranks = 1;
  std::vector<std::string> args;
  std::vector<std::string> env;  // "NAME=VALUE"
};
CommandResult run_mpi(const std::vector<MpiApp>& apps);

}  // namespace inkstone::testing
