#include "server/core/batch_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/backend/thread_priority.h"
#include "server/core/refusal.h"

namespace matid {

absl::Status ValidateBatcherOptions(const BatcherOptions& options) {
  if (options.max_batch_size < 1 || options.max_batch_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size is ", options.max_batch_size, "; must be in 1..1024"));
  }
  if (options.max_queue_delay_us < 0 || options.max_queue_delay_us > 10'000'000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_queue_delay_us is ", options.max_queue_delay_us, "; must be in 0..10000000"));
  }
  if (options.workers < 1 || options.workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers is ", options.workers, "; must be in 1..64"));
  }
  if (options.max_queue_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_size is ", options.max_queue_size, "; must be >= 1"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BatchScheduler>> BatchScheduler::Create(
    const BatcherOptions& options, BatchCallback run_batch,
    QueueDepthCallback queue_depth_changed) {
  absl::Status valid = ValidateBatcherOptions(options);
  if (!valid.ok()) return valid;
  if (!run_batch) return absl::InvalidArgumentError("BatchScheduler needs a batch callback");
  std::unique_ptr<BatchScheduler> scheduler(
      new BatchScheduler(options, std::move(run_batch), std::move(queue_depth_changed)));
  for (int i = 0; i < options.workers; ++i) {
    scheduler->workers_.emplace_back([s = scheduler.get()] { s->WorkerLoop(); });
  }
  return scheduler;
}

BatchScheduler::BatchScheduler(const BatcherOptions& options, BatchCallback run_batch,
                               QueueDepthCallback queue_depth_changed)
    : options_(options),
      run_batch_(std::move(run_batch)),
      queue_depth_changed_(std::move(queue_depth_changed)) {}

BatchScheduler::~BatchScheduler() { Shutdown(); }

absl::Status BatchScheduler::Enqueue(std::vector<InferenceTask> tasks) {
  const absl::Time now = absl::Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status room = RoomLocked(tasks.size());
    if (!room.ok()) return room;
    for (auto& task : tasks) queue_.push_back({std::move(task), now});
    QueueDepthChanged();
  }
  work_available_.notify_one();
  return absl::OkStatus();
}

absl::Status BatchScheduler::CheckRoom(size_t images) const {
  std::lock_guard<std::mutex> lock(mu_);
  return RoomLocked(images);
}

absl::Status BatchScheduler::RoomLocked(size_t images) const {
  if (stopping_) {
    return Refusal(absl::UnavailableError("server is shutting down; not accepting new work"),
                   "shutting_down");
  }
  const size_t room = options_.max_queue_size - queue_.size();
  if (images > room) {
    return Refusal(
        absl::ResourceExhaustedError(absl::StrCat(
            "inference queue is full (", queue_.size(), " of ", options_.max_queue_size, " waiting",
            images > 1 ? absl::StrCat(", request needs ", images) : "", "); retry later")),
        "queue_full");
  }
  return absl::OkStatus();
}

void BatchScheduler::Shutdown() {
  std::lock_guard<std::mutex> serial(shutdown_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_available_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int BatchScheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

int BatchScheduler::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size()) + running_;
}

void BatchScheduler::QueueDepthChanged() {
  if (queue_depth_changed_) queue_depth_changed_(static_cast<int>(queue_.size()));
}

void BatchScheduler::WorkerLoop() {
  if (options_.idle_priority) RunThisThreadOnlyWhenIdle();
  int finished = 0;
  while (true) {
    std::vector<QueuedTask> batch = NextBatch(finished);
    if (batch.empty()) return;
    finished = static_cast<int>(batch.size());
    run_batch_(std::move(batch));
  }
}

std::vector<QueuedTask> BatchScheduler::NextBatch(int finished) {
  std::unique_lock<std::mutex> lock(mu_);
  running_ -= finished;
  const size_t max_batch = static_cast<size_t>(options_.max_batch_size);
  while (true) {
    work_available_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return {};  // stopping, and nothing left to drain

    if (options_.max_queue_delay_us > 0) {
      const absl::Time flush_at =
          queue_.front().enqueued_at + absl::Microseconds(options_.max_queue_delay_us);
      while (!stopping_ && !queue_.empty() && queue_.size() < max_batch && absl::Now() < flush_at) {
        work_available_.wait_for(lock, absl::ToChronoNanoseconds(flush_at - absl::Now()));
      }
      // Another worker may have taken everything while this one waited.
      if (queue_.empty()) continue;
    }
    const size_t count = std::min(queue_.size(), max_batch);
    std::vector<QueuedTask> batch;
    batch.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    running_ += static_cast<int>(count);
    QueueDepthChanged();
    // Enqueue woke one worker; what this one left is another worker's batch.
    if (!queue_.empty()) work_available_.notify_one();
    return batch;
  }
}

}  // namespace matid
