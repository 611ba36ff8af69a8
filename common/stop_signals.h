// SIGTERM/SIGINT for the programs' main(): construct StopSignals at the top
// of main, before any thread starts (threads inherit the blocked mask), then
// Wait() takes the signal synchronously — no async-signal handler. Wait() may
// be called from one thread at a time.
#ifndef MATID_COMMON_STOP_SIGNALS_H_
#define MATID_COMMON_STOP_SIGNALS_H_

#include <pthread.h>
#include <signal.h>

namespace matid {

class StopSignals {
 public:
  // Blocks SIGTERM and SIGINT in this thread and every thread started later.
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }

  // Blocks until SIGTERM or SIGINT arrives; returns which.
  int Wait() const {
    int signal_number = 0;
    sigwait(&set_, &signal_number);
    return signal_number;
  }

  static const char* Name(int signal_number) {
    return signal_number == SIGTERM ? "SIGTERM" : "SIGINT";
  }

 private:
  sigset_t set_;
};

}  // namespace matid

#endif  // MATID_COMMON_STOP_SIGNALS_H_
