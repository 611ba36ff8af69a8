#include "server/repository/version_state_monitor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace matid {

void VersionStateMonitor::SetChangeListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

void VersionStateMonitor::SetEventListener(std::function<void(EventMessage)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  event_listener_ = std::move(listener);
}

void VersionStateMonitor::Record(const std::string& model, int64_t version,
                                 absl::string_view state) {
  if (metrics_ != nullptr) {
    metrics_->SetModelVersionState(model, absl::StrCat(version), std::string(state));
  }
  Wake();
}

void VersionStateMonitor::Changed() {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = listener_;
  }
  if (listener) listener();
  Wake();
}

void VersionStateMonitor::Event(EventMessage event) {
  if (metrics_ != nullptr) metrics_->RecordModelEvent(event.model, event.type, event.trigger);
  std::function<void(EventMessage)> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = event_listener_;
  }
  if (listener) listener(std::move(event));
  Wake();
}

void VersionStateMonitor::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++changes_;
  }
  changed_.notify_all();
}

bool VersionStateMonitor::WaitUntil(const std::function<bool()>& holds,
                                    absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = changes_;
    }
    if (holds()) return true;
    std::unique_lock<std::mutex> lock(mu_);
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    changed_.wait_for(lock, absl::ToChronoNanoseconds(left), [&] { return changes_ != seen; });
  }
}

}  // namespace matid
