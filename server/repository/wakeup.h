// Wakes the model manager's thread: whatever it should look at again (a
// reload request, a released version, a jump of its clock, shutdown) calls
// Notify(); the thread reads generation() before it looks, and waits with
// WaitForChange(seen, ...), so a notification that comes while it is
// looking is never lost. Notify() takes only this object's own lock, so it
// may be called with any other lock held. Thread-safety: every method may
// be called from any thread.
#ifndef MATID_SERVER_REPOSITORY_WAKEUP_H_
#define MATID_SERVER_REPOSITORY_WAKEUP_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/time/time.h"

namespace matid {

class Wakeup {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
    }
    changed_.notify_all();
  }
  uint64_t generation() const {
    std::lock_guard<std::mutex> lock(mu_);
    return generation_;
  }
  // Returns once a Notify() came after `seen` was read, or after `timeout`
  // (absl::InfiniteDuration(): only a Notify()).
  void WaitForChange(uint64_t seen, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    const auto changed = [&] { return generation_ != seen; };
    if (timeout == absl::InfiniteDuration()) {
      changed_.wait(lock, changed);
    } else {
      changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), changed);
    }
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  uint64_t generation_ = 0;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_WAKEUP_H_
