// Cumulative inference statistics of one loaded model version, in the shape
// the Open Inference Protocol's ModelStatistics (Triton's) reports them:
// per image, success/fail counts and durations, queue wait, compute input
// (preprocessing), compute infer (the batch's forward pass) and compute
// output (scores to answers); per executed batch size, the same compute
// phases. Images of every API are counted (each is one inference).
// Thread-safety: every method may be called from any thread (one mutex,
// held for a few additions).
#ifndef MATID_SERVER_CORE_INFERENCE_STATISTICS_H_
#define MATID_SERVER_CORE_INFERENCE_STATISTICS_H_

#include <cstdint>
#include <map>
#include <mutex>

#include "absl/time/time.h"

namespace matid {

struct DurationStatistic {
  uint64_t count = 0;
  uint64_t ns = 0;  // cumulative
  void Add(absl::Duration d);
};

struct BatchStatistics {
  DurationStatistic compute_input;   // copying the images into the batch
  DurationStatistic compute_infer;   // the forward pass
  DurationStatistic compute_output;  // handing each image its scores
};

struct InferenceStatisticsSnapshot {
  absl::Time last_inference = absl::UnixEpoch();  // UnixEpoch: none yet
  uint64_t inference_count = 0;                   // images answered successfully
  uint64_t execution_count = 0;                   // batches run
  DurationStatistic success;                      // whole time in the server, successful images
  DurationStatistic fail;  // refused or failed images (refused before queueing: 0 ns)
  DurationStatistic queue;
  DurationStatistic compute_input;
  DurationStatistic compute_infer;
  DurationStatistic compute_output;
  std::map<int, BatchStatistics> batches;  // by batch size
};

// How one image went through the server, for RecordImage.
struct ImageTimes {
  absl::Duration total;       // from preprocessing to its answer
  absl::Duration preprocess;  // zero if not reached
  absl::Duration queue;       // zero if not queued
  absl::Duration infer;       // its batch's forward pass; zero if not run
  absl::Duration output;      // turning scores into its answer
  bool ran = false;           // reached the model
};

class InferenceStatistics {
 public:
  void RecordImage(bool ok, const ImageTimes& times);
  void RecordBatch(int batch_size, absl::Duration input, absl::Duration infer,
                   absl::Duration output);
  InferenceStatisticsSnapshot Snapshot() const;

 private:
  mutable std::mutex mu_;
  InferenceStatisticsSnapshot stats_;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_INFERENCE_STATISTICS_H_
