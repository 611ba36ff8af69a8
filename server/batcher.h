// Dynamic batcher: one bounded queue of preprocessed images and worker
// threads (one by default) that run them through the model in batches of up
// to max_batch_size. Work-conserving: when the model is idle a batch starts at
// once with whatever is waiting; with max_queue_delay_us > 0 a worker
// waits up to that long for a fuller batch. Expired or cancelled tasks are
// answered before inference and never run. A full queue refuses at once
// (RESOURCE_EXHAUSTED): load is shed, the queue never grows unbounded.
//
// Thread-safety: Submit*, queue_depth and in_flight may be called from any
// thread. Shutdown() may be called from any thread except a worker (that
// is, not from a task's done callback).
#ifndef MATID_SERVER_BATCHER_H_
#define MATID_SERVER_BATCHER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/model_backend.h"

namespace matid {

class ServerMetrics;

struct BatcherOptions {
  // Most images in one forward pass. 1 switches batching off.
  int max_batch_size = 8;
  // How long the oldest queued image may wait for a fuller batch, in
  // microseconds. 0 (default) never waits while the model is idle: lowest
  // latency; larger values trade latency for throughput under light load.
  int64_t max_queue_delay_us = 0;
  // Most images waiting (not yet running). Beyond it Submit refuses with
  // RESOURCE_EXHAUSTED. Bounds memory: each waiting image holds one tensor.
  int max_queue_size = 128;
  // Threads running batches side by side, each taking the next batch from
  // the one queue (like model instances sharing one loaded model). 1 keeps
  // one batch at a time; 2 lets a small model use both cores of a 2-core
  // box with one LibTorch thread each, instead of one batch on two threads.
  int workers = 1;
};

absl::Status ValidateBatcherOptions(const BatcherOptions& options);

struct InferenceTiming {
  absl::Duration queue_wait;  // from Submit to the start of its batch
  absl::Duration inference;   // the batch's forward pass
  int batch_size = 0;
};

struct InferenceResult {
  std::vector<float> scores;  // one probability per label
  InferenceTiming timing;
};

using InferenceDone = std::function<void(absl::StatusOr<InferenceResult>)>;

struct InferenceTask {
  std::vector<float> input;                      // one preprocessed image, tensor_size() floats
  absl::Time deadline = absl::InfiniteFuture();  // not run after this
  std::function<bool()> is_cancelled;            // or empty if the caller cannot leave
  // Called exactly once, from the worker thread, once the task is accepted.
  // Gets DEADLINE_EXCEEDED or CANCELLED when the task was dropped unrun.
  InferenceDone done;
};

class Batcher {
 public:
  // `backend` must outlive the batcher; `metrics` may be nullptr.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(const BatcherOptions& options,
                                                         ModelBackend* backend,
                                                         ServerMetrics* metrics);

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
  absl::Status CheckRoom(size_t images) const;

  // Refuses new tasks, runs every queued one, then joins the worker.
  // Idempotent.
  void Shutdown();

  int queue_depth() const;  // waiting, not yet running
  int in_flight() const;    // waiting plus running

  const BatcherOptions& options() const { return options_; }

 private:
  struct QueuedTask {
    InferenceTask task;
    absl::Time enqueued_at;
  };

  Batcher(const BatcherOptions& options, ModelBackend* backend, ServerMetrics* metrics);

  void WorkerLoop();
  // Blocks until a batch is due; returns empty when shut down and drained.
  // `finished`: size of the caller's previous batch, now done.
  std::vector<QueuedTask> NextBatch(int finished);
  // `input`: the calling worker's reusable batch buffer.
  void RunBatch(std::vector<QueuedTask> batch, std::vector<float>* input);
  absl::Status CheckInput(const InferenceTask& task) const;
  void UpdateQueueGauge();                       // mu_ must be held
  absl::Status RoomLocked(size_t images) const;  // mu_ must be held

  // Constant after construction.
  const BatcherOptions options_;
  ModelBackend* const backend_;
  ServerMetrics* const metrics_;  // or nullptr if not recorded
  const size_t tensor_size_;

  // std::mutex rather than absl::Mutex: Debian's absl is not built for
  // ThreadSanitizer, which then cannot see absl::Mutex's ordering.
  mutable std::mutex mu_;
  std::condition_variable work_available_;
  std::deque<QueuedTask> queue_;  // guarded by mu_
  int running_ = 0;               // guarded by mu_: images in the workers' batches
  bool stopping_ = false;         // guarded by mu_

  std::vector<std::thread> workers_;  // joined by Shutdown()
  std::mutex shutdown_mu_;            // serialises Shutdown() callers
};

}  // namespace matid

#endif  // MATID_SERVER_BATCHER_H_
