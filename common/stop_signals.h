// SIGTERM/SIGINT for the programs' main(): construct StopSignals at the top
// of main, before any thread starts (threads inherit the blocked mask), then
// Wait() takes the signal synchronously (through a signalfd) — no
// async-signal handler. With also_sighup, Wait() returns SIGHUP too (the
// server's "rescan the model repository"). Release() wakes a Wait() without a signal, for a
// program that ends by itself (a camera whose video ended). Wait() may be
// called from one thread at a time; Release() from any thread.
#ifndef MATID_COMMON_STOP_SIGNALS_H_
#define MATID_COMMON_STOP_SIGNALS_H_

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace matid {

class StopSignals {
 public:
  // Blocks SIGTERM and SIGINT (and SIGHUP if asked) in this thread and
  // every thread started later.
  explicit StopSignals(bool also_sighup = false) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    if (also_sighup) sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    signal_fd_ = signalfd(-1, &set_, SFD_CLOEXEC);
    release_fd_ = eventfd(0, EFD_CLOEXEC);
  }
  ~StopSignals() {
    close(signal_fd_);
    close(release_fd_);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Blocks until SIGTERM or SIGINT (or SIGHUP, if asked for) arrives
  // (returns which) or Release() was called (returns 0).
  int Wait() const {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {release_fd_, POLLIN, 0}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        return static_cast<int>(info.ssi_signo);
      }
    }
    return 0;
  }

  void Release() const {
    const uint64_t one = 1;
    (void)!write(release_fd_, &one, sizeof one);
  }

  static const char* Name(int signal_number) {
    return signal_number == SIGTERM ? "SIGTERM" : signal_number == SIGHUP ? "SIGHUP" : "SIGINT";
  }

 private:
  sigset_t set_;
  int signal_fd_ = -1;
  int release_fd_ = -1;
};

}  // namespace matid

#endif  // MATID_COMMON_STOP_SIGNALS_H_
