// Time as a parameter: code that decides by "N seconds passed" (the model
// manager's polls, rule checks and rollback windows) reads Now() from a
// Clock it is given, so its tests step a fake clock (tests/fake_clock.h)
// instead of sleeping. A thread that waits for a deadline by a clock
// subscribes to it: a clock that jumps calls the subscribers, so the waiter
// wakes and looks again; the real clock never jumps and calls nobody.
// Thread-safety: every method may be called from any thread.
#ifndef MATID_COMMON_CLOCK_H_
#define MATID_COMMON_CLOCK_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace matid {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Calls `jumped` (on the thread that moves the clock, with no lock of the
  // clock's held) after each jump, until Unsubscribe(the returned id).
  virtual int Subscribe(std::function<void()> jumped) = 0;
  // How long a subscribed waiter should sleep, in real time, for this much
  // of the clock's time to pass: the same for the real clock; forever for a
  // clock that moves only by jumps (the jump wakes the waiter).
  virtual absl::Duration RealWaitFor(absl::Duration clock_time) const { return clock_time; }
  virtual void Unsubscribe(int id) = 0;
};

// absl::Now(); never jumps. One for the process.
inline Clock& RealClock() {
  class Real : public Clock {
   public:
    absl::Time Now() const override { return absl::Now(); }
    int Subscribe(std::function<void()>) override { return 0; }
    void Unsubscribe(int) override {}
  };
  static Real clock;  // no state: safe to use until exit
  return clock;
}

}  // namespace matid

#endif  // MATID_COMMON_CLOCK_H_
