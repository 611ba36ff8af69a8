// Lowers the calling thread's CPU priority (nice 10), for heavy work that
// must not take the cores from serving: loading and warming up a new model
// version. Nice applies per thread on Linux and is inherited by the threads
// started from this one; it cannot be raised back without privileges, so
// call it only on a thread dedicated to that work.
#ifndef MATID_SERVER_THREAD_PRIORITY_H_
#define MATID_SERVER_THREAD_PRIORITY_H_

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace matid {

inline void LowerThisThreadsPriority() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

}  // namespace matid

#endif  // MATID_SERVER_THREAD_PRIORITY_H_
