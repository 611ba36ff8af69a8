#include "server/shadow/shadow_comparison.h"

#include <algorithm>

namespace matid {

double ShadowSnapshot::agreement() const {
  return compared > 0 ? static_cast<double>(agreements) / static_cast<double>(compared) : 0.0;
}

ShadowComparison::ShadowComparison(int labels) : labels_(labels) {
  stats_.confusion.assign(labels, std::vector<int64_t>(labels, 0));
  latencies_.reserve(kLatencyWindow);
}

void ShadowComparison::RecordCompared(int primary_label, float primary_score, int shadow_label,
                                      float shadow_score, absl::Duration shadow_latency) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.compared;
  if (primary_label == shadow_label) ++stats_.agreements;
  if (primary_label >= 0 && primary_label < labels_ && shadow_label >= 0 &&
      shadow_label < labels_) {
    ++stats_.confusion[primary_label][shadow_label];
  }
  stats_.score_difference_sum += static_cast<double>(shadow_score) - primary_score;
  if (latencies_.size() < kLatencyWindow) {
    latencies_.push_back(shadow_latency);
  } else {
    latencies_[next_latency_] = shadow_latency;
  }
  next_latency_ = (next_latency_ + 1) % kLatencyWindow;
}

void ShadowComparison::RecordSkipped(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.skipped[reason];
}

void ShadowComparison::RecordFrame(const std::string& path, const std::string& not_saved) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!not_saved.empty()) {
    ++stats_.frames_not_saved[not_saved];
    return;
  }
  ++stats_.frames_saved;
  stats_.recent_frames.push_back(path);
  if (stats_.recent_frames.size() > kRecentFrames) {
    stats_.recent_frames.erase(stats_.recent_frames.begin());
  }
}

ShadowSnapshot ShadowComparison::Snapshot() const {
  std::vector<absl::Duration> latencies;
  ShadowSnapshot snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot = stats_;
    latencies = latencies_;
  }
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    auto at = [&](double q) {
      const size_t i = static_cast<size_t>(q * static_cast<double>(latencies.size() - 1) + 0.5);
      return latencies[std::min(i, latencies.size() - 1)];
    };
    snapshot.latency_p50 = at(0.50);
    snapshot.latency_p99 = at(0.99);
  }
  return snapshot;
}

}  // namespace matid
