// Dynamic batcher: runs the batches a BatchScheduler forms through the
// model. Per batch it answers expired or cancelled tasks without running
// them, copies the live inputs into the worker's batch buffer, runs one
// forward pass and hands each caller its scores. Queueing, batch forming
// and load shedding are BatchScheduler's (see batch_scheduler.h).
//
// Thread-safety: Submit*, CheckRoom, queue_depth and in_flight may be called
// from any thread. Shutdown() may be called from any thread except a worker
// (that is, not from a task's done callback).
#ifndef MATID_SERVER_CORE_BATCHER_H_
#define MATID_SERVER_CORE_BATCHER_H_

#include <atomic>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/model_backend.h"
#include "server/core/batch_scheduler.h"
#include "server/core/inference_statistics.h"
#include "server/core/inference_task.h"

namespace matid {

class ServerMetrics;

class Batcher {
 public:
  // `backend` must outlive the batcher; `metrics` and `statistics` (per
  // batch size, see inference_statistics.h) may be nullptr, else outlive it.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(const BatcherOptions& options,
                                                         ModelBackend* backend,
                                                         ServerMetrics* metrics,
                                                         InferenceStatistics* statistics = nullptr);

  // Drains like Shutdown().
  ~Batcher();

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues one task. On OK its `done` will be called exactly once. Otherwise
  // `done` is never called: RESOURCE_EXHAUSTED (queue full), UNAVAILABLE
  // (shutting down) or INVALID_ARGUMENT (input of the wrong size).
  absl::Status Submit(InferenceTask task);

  // Queues all tasks or none (same errors as Submit), so a multi-image
  // request is not half-refused.
  absl::Status SubmitAll(std::vector<InferenceTask> tasks);

  // Whether `images` more tasks would be accepted now, with the refusal
  // Submit would give (RESOURCE_EXHAUSTED, UNAVAILABLE). A hint: the queue
  // may change before Submit. Lets callers shed load before preprocessing.
  absl::Status CheckRoom(size_t images) const { return scheduler_->CheckRoom(images); }

  // Refuses new tasks, runs every queued one, then joins the workers.
  // Idempotent.
  void Shutdown() { scheduler_->Shutdown(); }

  int queue_depth() const { return scheduler_->queue_depth(); }  // waiting, not yet running
  int in_flight() const { return scheduler_->in_flight(); }      // waiting plus running

  const BatcherOptions& options() const { return scheduler_->options(); }

 private:
  Batcher(ModelBackend* backend, ServerMetrics* metrics, InferenceStatistics* statistics);

  // Runs on a scheduler worker.
  void RunBatch(std::vector<QueuedTask> batch);
  // Answers the tasks that are out of time or whose caller left; returns
  // the others.
  static std::vector<QueuedTask> AnswerExpired(std::vector<QueuedTask> batch, absl::Time now);
  absl::Status CheckInput(const InferenceTask& task) const;

  // Constant after construction.
  ModelBackend* const backend_;
  ServerMetrics* const metrics_;           // or nullptr if not recorded
  InferenceStatistics* const statistics_;  // or nullptr if not recorded
  const size_t tensor_size_;
  std::atomic<int> reported_queue_depth_{0};  // last depth added to the metrics

  // Declared last: destroyed (drained, workers joined) first.
  std::unique_ptr<BatchScheduler> scheduler_;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_BATCHER_H_
