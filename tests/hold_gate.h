// A gate tests put in a worker's path to reach queueing states without
// sleeping: while closed, Pass() blocks; every Pass() is counted on
// arrival, so a test can wait until a worker stands at the gate.
// Thread-safe.
#ifndef MATID_TESTS_HOLD_GATE_H_
#define MATID_TESTS_HOLD_GATE_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace matid {

class HoldGate {
 public:
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  // Notifies under the lock: a released worker may finish and destroy the
  // gate's owner (a model being swapped out) as soon as Open() unlocks.
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
    changed_.notify_all();
  }
  // Counts the arrival, then waits while the gate is closed.
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrivals_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return !closed_; });
  }
  // Blocks until Pass() has been reached `count` times in all.
  void WaitForArrivals(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this, count] { return arrivals_ >= count; });
  }
  // The same, for at most `timeout`; false when the arrivals did not come.
  bool WaitForArrivalsFor(int count, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, timeout, [this, count] { return arrivals_ >= count; });
  }

 private:
  // std::mutex: visible to ThreadSanitizer (see server/core/batch_scheduler.h).
  std::mutex mu_;
  std::condition_variable changed_;  // closed_ or arrivals_ changed
  bool closed_ = false;              // guarded by mu_
  int arrivals_ = 0;                 // guarded by mu_
};

}  // namespace matid

#endif  // MATID_TESTS_HOLD_GATE_H_
