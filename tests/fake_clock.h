// A clock for tests: it stands still until Advance(), which moves it and
// wakes whoever waits for a deadline by it (see common/clock.h). Starts at
// 2026-01-01 00:00 UTC. Thread-safety: every method may be called from any
// thread.
#ifndef MATID_TESTS_FAKE_CLOCK_H_
#define MATID_TESTS_FAKE_CLOCK_H_

#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "common/clock.h"

namespace matid {

class FakeClock : public Clock {
 public:
  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  int Subscribe(std::function<void()> jumped) override {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_[++last_id_] = std::move(jumped);
    return last_id_;
  }
  absl::Duration RealWaitFor(absl::Duration clock_time) const override {
    // It moves only when Advance() wakes the waiter.
    return clock_time <= absl::ZeroDuration() ? absl::ZeroDuration() : absl::InfiniteDuration();
  }
  void Unsubscribe(int id) override {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.erase(id);
  }
  void Advance(absl::Duration by) {
    std::vector<std::function<void()>> to_call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ += by;
      for (const auto& [id, jumped] : subscribers_) to_call.push_back(jumped);
    }
    for (const auto& jumped : to_call) jumped();
  }

 private:
  mutable std::mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1767225600);  // guarded by mu_
  std::map<int, std::function<void()>> subscribers_;    // guarded by mu_
  int last_id_ = 0;                                     // guarded by mu_
};

}  // namespace matid

#endif  // MATID_TESTS_FAKE_CLOCK_H_
