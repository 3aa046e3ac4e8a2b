#include "train/data_parallel.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "runtime/error.h"

namespace inkstone {

int grad_accum_per_rank(const RunConfig& config, int world_size) {
  const int accum = config.train.grad_accum;
  if (config.distributed.hold_fixed == "grad_accum" || world_size == 1) return accum;
  if (accum % world_size != 0) {
    fail(
        "{}: train.grad_accum {} cannot be shared by {} ranks (distributed.hold_fixed: global_batch gives "
        "each "
        "rank grad_accum / ranks micro-batches); set train.grad_accum to a multiple of {}, or "
        "distributed.hold_fixed: grad_accum",
        config.source, accum, world_size, world_size);
  }
  return accum / world_size;
}

namespace {

// Whether every rank passed the same value: two exact 32-bit halves as doubles, min == max for both.
bool same_on_every_rank(Communicator& comm, uint64_t value) {
  std::array<double, 2> low{double(value & 0xffffffffu), double(value >> 32)}, high = low;
  comm.all_reduce(low, ReduceOp::Min);
  comm.all_reduce(high, ReduceOp::Max);
  return low == high;
}

// FNV-1a over the parameter buffer's bytes, downloaded in pieces (a GPU's buffer may be gigabytes).
uint64_t weights_hash(GPT2& model) {
  const Tensor all = model.parameter_buffer();
  const int64_t element = static_cast<int64_t>(dtype_size(all.dtype));
  const int64_t piece = (int64_t{64} << 20) / element;
  std::vector<unsigned char> host(static_cast<size_t>(piece * element));
  uint64_t hash = 14695981039346656037ull;
  for (int64_t first = 0; first < all.numel(); first += piece) {
    const int64_t n = std::min(piece, all.numel() - first);
    model.backend().download(host.data(),
                             Tensor(static_cast<char*>(all.data) + first * element, all.dtype, {n}));
    for (size_t i = 0; i < static_cast<size_t>(n * element); ++i) hash = (hash ^ host[i]) * 1099511628211ull;
  }
  return hash;
}

}  // namespace

void check_same_config(Communicator& comm, const std::string& config_yaml) {
  if (comm.single() || same_on_every_rank(comm, std::hash<std::string>{}(config_yaml))) return;
  fail(
      "the ranks of this job were started with different configs (a file or a key=value override differs); "
      "launch every rank with the same config and overrides");
}

void check_same_weights(Communicator& comm, GPT2& model) {
  if (comm.single() || same_on_every_rank(comm, weights_hash(model))) return;
  fail(
      "the ranks of this job hold different weights (a checkpoint or init_from path each rank reads "
      "differently?); every rank must see the same files");
}

double agreed_norm(Communicator& comm, double norm) {
  if (comm.single()) return norm;
  comm.broadcast(std::as_writable_bytes(std::span(&norm, 1)), 0);
  return norm;
}

std::optional<std::filesystem::path> broadcast_path(Communicator& comm,
                                                    const std::optional<std::filesystem::path>& path) {
  if (comm.single()) return path;
  const std::string text = path ? path->string() : std::string();
  std::array<double, 2> header{path ? 1.0 : 0.0, static_cast<double>(text.size())};
  if (comm.rank() != 0) header = {0, 0};
  comm.all_reduce(header, ReduceOp::Sum);  // rank 0's values, the only non-zero ones
  std::vector<std::byte> bytes(static_cast<size_t>(header[1]));
  if (comm.rank() == 0) std::memcpy(bytes.data(), text.data(), text.size());
  comm.broadcast(bytes, 0);
  if (header[0] == 0) return std::nullopt;
  return std::filesystem::path(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

int any_stop_signal(Communicator& comm, int local_signal) {
  if (comm.single()) return local_signal;
  std::array<double, 1> signal{static_cast<double>(local_signal)};
  comm.all_reduce(signal, ReduceOp::Max);
  return static_cast<int>(signal[0]);
}

bool planted_failure(int rank, int64_t step) {
  static const char* plan = std::getenv("INKSTONE_TEST_FAIL");
  if (plan == nullptr) return false;
  int at_rank = -1;
  long long at_step = -1;
  char kind[8] = {};
  if (std::sscanf(plan, "%d:%lld:%7s", &at_rank, &at_step, kind) != 3 || at_rank != rank || at_step != step) {
    return false;
  }
  if (std::strcmp(kind, "nan") == 0) return true;
  if (std::strcmp(kind, "hang") == 0) {
    for (;;) pause();  // stops answering, as a stuck rank would
  }
  fail("a failure planted by INKSTONE_TEST_FAIL at step {}", step);
}

}  // namespace inkstone
