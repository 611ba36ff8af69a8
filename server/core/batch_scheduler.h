// Batch scheduler: one bounded queue of inference tasks and worker threads
// that form batches from it and hand each formed batch to a callback, as
// TF Serving's shared batch scheduler does. It knows nothing about models:
// what a batch does is the callback's business (see Batcher).
//
// Forming is work-conserving: when a worker is idle a batch starts at once
// with whatever is waiting; with max_queue_delay_us > 0 a worker waits up to
// that long after the oldest task's arrival for a fuller batch. A full queue
// refuses at once (RESOURCE_EXHAUSTED): load is shed, never queued unbounded.
//
// Thread-safety: Enqueue, CheckRoom, queue_depth and in_flight may be called
// from any thread. Shutdown() from any thread except a worker (that is, not
// from inside the callback). The callback runs on the worker threads, up to
// `workers` calls at once.
#ifndef MATID_SERVER_CORE_BATCH_SCHEDULER_H_
#define MATID_SERVER_CORE_BATCH_SCHEDULER_H_

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
#include "server/core/inference_task.h"

namespace matid {

struct BatcherOptions {
  // Most images in one forward pass. 1 switches batching off.
  int max_batch_size = 8;
  // How long the oldest queued image may wait for a fuller batch, in
  // microseconds. 0 (default) never waits while the model is idle: lowest
  // latency; larger values trade latency for throughput under light load.
  int64_t max_queue_delay_us = 0;
  // Most images waiting (not yet running). Beyond it Enqueue refuses with
  // RESOURCE_EXHAUSTED. Bounds memory: each waiting image holds one tensor.
  int max_queue_size = 128;
  // Threads running batches side by side, each taking the next batch from
  // the one queue (like model instances sharing one loaded model). 1 keeps
  // one batch at a time; 2 lets a small model use both cores of a 2-core
  // box with one LibTorch thread each, instead of one batch on two threads.
  int workers = 1;
  // Workers run under SCHED_IDLE (thread_priority.h), only when a core would
  // otherwise idle: for shadow work, which must leave the cores to serving.
  bool idle_priority = false;
};

absl::Status ValidateBatcherOptions(const BatcherOptions& options);

struct QueuedTask {
  InferenceTask task;
  absl::Time enqueued_at;
};

class BatchScheduler {
 public:
  // Runs one formed batch (1..max_batch_size tasks, oldest first). Must
  // answer every task's `done`.
  using BatchCallback = std::function<void(std::vector<QueuedTask> batch)>;
  // Told the number of waiting tasks whenever it changes; may be empty.
  using QueueDepthCallback = std::function<void(int depth)>;

  static absl::StatusOr<std::unique_ptr<BatchScheduler>> Create(
      const BatcherOptions& options, BatchCallback run_batch,
      QueueDepthCallback queue_depth_changed = nullptr);

  // Drains like Shutdown().
  ~BatchScheduler();

  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues all tasks or none, so a multi-image request is not half-refused.
  // Refusals (tasks untouched, `done` never called): RESOURCE_EXHAUSTED
  // (queue full), UNAVAILABLE (shutting down).
  absl::Status Enqueue(std::vector<InferenceTask> tasks);

  // Whether `images` more tasks would be accepted now, with the refusal
  // Enqueue would give. A hint: the queue may change before Enqueue.
  absl::Status CheckRoom(size_t images) const;

  // Refuses new tasks, runs every queued one, then joins the workers.
  // Idempotent.
  void Shutdown();

  int queue_depth() const;  // waiting, not yet running
  int in_flight() const;    // waiting plus running

  const BatcherOptions& options() const { return options_; }

 private:
  BatchScheduler(const BatcherOptions& options, BatchCallback run_batch,
                 QueueDepthCallback queue_depth_changed);

  void WorkerLoop();
  // Blocks until a batch is due; returns empty when shut down and drained.
  // `finished`: size of the caller's previous batch, now done.
  std::vector<QueuedTask> NextBatch(int finished);
  absl::Status RoomLocked(size_t images) const;  // mu_ must be held
  void QueueDepthChanged();                      // mu_ must be held

  // Constant after construction.
  const BatcherOptions options_;
  const BatchCallback run_batch_;
  const QueueDepthCallback queue_depth_changed_;

  // std::mutex rather than absl::Mutex: Debian's absl is not built for
  // ThreadSanitizer, which then cannot see absl::Mutex's ordering.
  mutable std::mutex mu_;
  std::condition_variable work_available_;
  std::deque<QueuedTask> queue_;  // guarded by mu_
  int running_ = 0;               // guarded by mu_: tasks in the workers' batches
  bool stopping_ = false;         // guarded by mu_

  std::vector<std::thread> workers_;  // joined by Shutdown()
  std::mutex shutdown_mu_;            // serialises Shutdown() callers
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_BATCH_SCHEDULER_H_
