// Turns off absl::Mutex's deadlock detection for a production binary.
// Debian's abseil is built without NDEBUG, so the detection (meant for debug
// builds) is on: every Lock() of every absl::Mutex, gRPC's own included,
// looks the mutex up in a process-wide lock graph. perf on matid-server at
// full load put ~2% of its CPU there (absl GraphCycles + Mutex::Lock; gone
// from the profile with this call, a gain within this VM's noise in
// throughput). Tests keep the detection. Call once at the start of main, before threads start.
#ifndef MATID_COMMON_MUTEX_DEADLOCK_DETECTION_H_
#define MATID_COMMON_MUTEX_DEADLOCK_DETECTION_H_

#include "absl/synchronization/mutex.h"

namespace matid {

inline void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace matid

#endif  // MATID_COMMON_MUTEX_DEADLOCK_DETECTION_H_
