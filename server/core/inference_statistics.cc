#include "server/core/inference_statistics.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace matid {

void DurationStatistic::Add(absl::Duration d) {
  ++count;
  ns += static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(d)));
}

void InferenceStatistics::RecordImage(bool ok, const ImageTimes& times) {
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (ok) {
    stats_.success.Add(times.total);
    ++stats_.inference_count;
    stats_.last_inference = now;
  } else {
    stats_.fail.Add(times.total);
  }
  if (!times.ran) return;
  stats_.queue.Add(times.queue);
  stats_.compute_input.Add(times.preprocess);
  stats_.compute_infer.Add(times.infer);
  stats_.compute_output.Add(times.output);
}

void InferenceStatistics::RecordBatch(int batch_size, absl::Duration input, absl::Duration infer,
                                      absl::Duration output) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.execution_count;
  BatchStatistics& batch = stats_.batches[batch_size];
  batch.compute_input.Add(input);
  batch.compute_infer.Add(infer);
  batch.compute_output.Add(output);
}

InferenceStatisticsSnapshot InferenceStatistics::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace matid
