// The model versions' state changes and events, published in one place:
// each state goes to the metrics (matid_model_version_state) as it changes,
// each batch of changes to the change listener (grpc.health.v1's per-model
// status), each promotion, rollback and closed window to the metrics and the
// event listener; and any thread may wait for a condition on the states
// (WaitUntil), woken by each change instead of polling.
// Thread-safety: every method may be called from any thread; the listeners
// are called with no lock of the monitor held.
#ifndef MATID_SERVER_REPOSITORY_VERSION_STATE_MONITOR_H_
#define MATID_SERVER_REPOSITORY_VERSION_STATE_MONITOR_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/event_message.h"
#include "server/core/metrics.h"

namespace matid {

class VersionStateMonitor {
 public:
  explicit VersionStateMonitor(ServerMetrics* metrics) : metrics_(metrics) {}  // or nullptr

  // Set before changes matter.
  void SetChangeListener(std::function<void()> listener);
  void SetEventListener(std::function<void(EventMessage)> listener);

  // A version's state as it changes ("" once it is gone).
  void Record(const std::string& model, int64_t version, absl::string_view state);
  // After a batch of changes: tells the change listener.
  void Changed();
  // A promotion, rollback or closed rollback window.
  void Event(EventMessage event);

  // Returns true once `holds()` is true, evaluated now and after each
  // change; false when `timeout` passes first (a real-time bound: a test's
  // safety net, not a wait for time to pass).
  bool WaitUntil(const std::function<bool()>& holds, absl::Duration timeout) const;

 private:
  void Wake();

  ServerMetrics* const metrics_;  // or nullptr
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t changes_ = 0;                              // guarded by mu_
  std::function<void()> listener_;                    // guarded by mu_
  std::function<void(EventMessage)> event_listener_;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_VERSION_STATE_MONITOR_H_
