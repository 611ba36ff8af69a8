// What a shadow version's answers say about it next to the serving
// (primary) version of the same model, on the same live images: how many
// were compared, top-1 agreement, the confusion between the two versions
// (flips per primary label, shadow label), top-1 score differences, the
// shadow's own latency, and how many sampled images were skipped and why.
// Plain counting, no I/O: the serving path records, the admin service and
// the promotion policy read a Snapshot.
// Thread-safety: every method may be called from any thread (one mutex,
// held for a few additions).
#ifndef MATID_SERVER_SHADOW_SHADOW_COMPARISON_H_
#define MATID_SERVER_SHADOW_SHADOW_COMPARISON_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace matid {

struct ShadowSnapshot {
  int64_t compared = 0;
  int64_t agreements = 0;  // same top-1 label
  // confusion[primary label][shadow label]: compared images, by top-1.
  std::vector<std::vector<int64_t>> confusion;
  // Shadow top-1 score minus primary top-1 score, summed.
  double score_difference_sum = 0;
  // The shadow's latency from queueing to its answer, p50 and p99 over the
  // most recent comparisons (kLatencyWindow).
  absl::Duration latency_p50;
  absl::Duration latency_p99;
  std::map<std::string, int64_t> skipped;  // by reason
  // Disagreeing images written to the disagreements folder, the most
  // recent of their paths (kRecentFrames), and those not written by reason
  // (folder_full, writer_busy, write_failed).
  int64_t frames_saved = 0;
  std::vector<std::string> recent_frames;  // oldest first
  std::map<std::string, int64_t> frames_not_saved;

  // compared > 0 ? agreements / compared : 0.
  double agreement() const;
};

class ShadowComparison {
 public:
  static constexpr size_t kLatencyWindow = 4096;
  static constexpr size_t kRecentFrames = 20;

  explicit ShadowComparison(int labels);

  // One image both versions answered. Labels outside [0, labels) are
  // counted as compared and disagreeing but left out of the confusion.
  void RecordCompared(int primary_label, float primary_score, int shadow_label, float shadow_score,
                      absl::Duration shadow_latency);
  // A sampled image the shadow did not see (reason: "primary_busy",
  // "shadow_queue_full", "shadow_failed", ...).
  void RecordSkipped(const std::string& reason);
  // A disagreeing image saved at `path`, or not saved for `not_saved`.
  void RecordFrame(const std::string& path, const std::string& not_saved);

  ShadowSnapshot Snapshot() const;

 private:
  const int labels_;
  mutable std::mutex mu_;
  ShadowSnapshot stats_;                   // guarded by mu_ (latencies aside)
  std::vector<absl::Duration> latencies_;  // guarded by mu_; ring of kLatencyWindow
  size_t next_latency_ = 0;                // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_SHADOW_SHADOW_COMPARISON_H_
