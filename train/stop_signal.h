// SIGINT / SIGTERM / SIGUSR1 during training: the first one asks the run to stop after the current step
// (it then writes a checkpoint and exits 0); a second one ends the process at once, as it would without
// us. SIGUSR1 is for jobs under mpirun, which forwards it to every rank (its own SIGINT / SIGTERM
// handling kills the ranks a second after passing the signal on).
#pragma once

namespace inkstone {

void install_stop_handlers();
int stop_signal();  // 0 until a stop is asked for, then the signal's number

}  // namespace inkstone
