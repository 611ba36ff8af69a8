// Lowers the calling thread's CPU priority, for work that must not take the
// cores from serving: loading and warming up a new model version (nice 10:
// it must still finish under load), shadow classification (SCHED_IDLE: it
// runs only when a core would otherwise be idle). Both apply per thread on
// Linux and are inherited by the threads started from this one; they cannot
// be raised back without privileges, so call them only on a thread
// dedicated to that work.
#ifndef MATID_SERVER_BACKEND_THREAD_PRIORITY_H_
#define MATID_SERVER_BACKEND_THREAD_PRIORITY_H_

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace matid {

inline void LowerThisThreadsPriority() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

// SCHED_IDLE (nice 19 where the kernel refuses it).
inline void RunThisThreadOnlyWhenIdle() {
  sched_param param{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  }
}

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_THREAD_PRIORITY_H_
