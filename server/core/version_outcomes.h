// How one loaded model version's answers went, for the rollback rule: the
// images its model ran and answered, the images its model failed (an
// inference error, not a client's bad image, a deadline or shedding), and
// its answers' top-1 scores in 1% buckets, so that the share of answers
// under any confidence threshold can be read. Snapshots subtract, so a
// window can count from a promotion on.
// Thread-safety: Record* may be called from any thread (relaxed atomics,
// no lock); Snapshot too.
#ifndef MATID_SERVER_CORE_VERSION_OUTCOMES_H_
#define MATID_SERVER_CORE_VERSION_OUTCOMES_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace matid {

struct OutcomeSnapshot {
  static constexpr int kBuckets = 101;  // top-1 score * 100, rounded down
  int64_t answered = 0;
  int64_t failed = 0;
  std::array<int64_t, kBuckets> score_buckets{};

  // Answers whose top-1 score is under `threshold` (to the bucket: 1%).
  int64_t AnsweredBelow(float threshold) const;
  // What happened between `earlier` and this one.
  OutcomeSnapshot Since(const OutcomeSnapshot& earlier) const;
};

class VersionOutcomes {
 public:
  void RecordAnswer(float top_score);
  void RecordFailure();
  OutcomeSnapshot Snapshot() const;

 private:
  std::atomic<int64_t> answered_{0};
  std::atomic<int64_t> failed_{0};
  std::array<std::atomic<int64_t>, OutcomeSnapshot::kBuckets> buckets_{};
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_VERSION_OUTCOMES_H_
