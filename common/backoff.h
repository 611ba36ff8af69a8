// Exponential backoff with full jitter for reconnect and retry loops:
// each Next() returns a random delay in [0, cap], where cap doubles from
// `initial` up to `max`; Reset() after a success. Not thread-safe: one
// retry loop owns one instance.
#ifndef MATID_COMMON_BACKOFF_H_
#define MATID_COMMON_BACKOFF_H_

#include <algorithm>
#include <random>

#include "absl/time/time.h"

namespace matid {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max)
      : initial_(initial), max_(max), cap_(initial), random_(std::random_device{}()) {}

  absl::Duration Next() {
    std::uniform_int_distribution<int64_t> pick(0, absl::ToInt64Microseconds(cap_));
    const absl::Duration delay = absl::Microseconds(pick(random_));
    cap_ = std::min(cap_ * 2, max_);
    return delay;
  }

  void Reset() { cap_ = initial_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Duration cap_;
  std::mt19937_64 random_;
};

}  // namespace matid

#endif  // MATID_COMMON_BACKOFF_H_
