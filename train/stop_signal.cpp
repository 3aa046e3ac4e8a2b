#include "train/stop_signal.h"

#include <atomic>
#include <csignal>

namespace inkstone {
namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only touch lock-free atomics");

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  // The next SIGINT / SIGTERM takes the default action: a user pressing Ctrl-C twice means it.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGUSR1, SIG_DFL);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a write interrupted by the signal resumes instead of failing
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // mpirun forwards SIGUSR1 to every rank, where Ctrl-C / SIGTERM to mpirun kill them a second later.
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_signal() {
  return g_stop_signal.load();
}

}  // namespace inkstone
