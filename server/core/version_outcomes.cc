#include "server/core/version_outcomes.h"

#include <algorithm>
#include <cmath>

namespace matid {
namespace {

int Bucket(float score) {
  if (!(score > 0)) return 0;  // also NaN
  return std::min(OutcomeSnapshot::kBuckets - 1, static_cast<int>(std::floor(score * 100.0f)));
}

}  // namespace

int64_t OutcomeSnapshot::AnsweredBelow(float threshold) const {
  int64_t below = 0;
  const int limit = std::clamp(static_cast<int>(std::ceil(threshold * 100.0f)), 0, kBuckets);
  for (int i = 0; i < limit; ++i) below += score_buckets[i];
  return below;
}

OutcomeSnapshot OutcomeSnapshot::Since(const OutcomeSnapshot& earlier) const {
  OutcomeSnapshot delta;
  delta.answered = answered - earlier.answered;
  delta.failed = failed - earlier.failed;
  for (int i = 0; i < kBuckets; ++i)
    delta.score_buckets[i] = score_buckets[i] - earlier.score_buckets[i];
  return delta;
}

void VersionOutcomes::RecordAnswer(float top_score) {
  buckets_[Bucket(top_score)].fetch_add(1, std::memory_order_relaxed);
  answered_.fetch_add(1, std::memory_order_relaxed);
}

void VersionOutcomes::RecordFailure() { failed_.fetch_add(1, std::memory_order_relaxed); }

OutcomeSnapshot VersionOutcomes::Snapshot() const {
  OutcomeSnapshot snapshot;
  snapshot.answered = answered_.load(std::memory_order_relaxed);
  snapshot.failed = failed_.load(std::memory_order_relaxed);
  for (int i = 0; i < OutcomeSnapshot::kBuckets; ++i) {
    snapshot.score_buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  return snapshot;
}

}  // namespace matid
