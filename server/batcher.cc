#include "server/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/metrics.h"
#include "server/refusal.h"

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

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(const BatcherOptions& options,
                                                         ModelBackend* backend,
                                                         ServerMetrics* metrics) {
  absl::Status valid = ValidateBatcherOptions(options);
  if (!valid.ok()) return valid;
  if (backend == nullptr) {
    return absl::InvalidArgumentError("Batcher needs a model backend");
  }
  std::unique_ptr<Batcher> batcher(new Batcher(options, backend, metrics));
  for (int i = 0; i < options.workers; ++i) {
    batcher->workers_.emplace_back([b = batcher.get()] { b->WorkerLoop(); });
  }
  return batcher;
}

Batcher::Batcher(const BatcherOptions& options, ModelBackend* backend, ServerMetrics* metrics)
    : options_(options),
      backend_(backend),
      metrics_(metrics),
      tensor_size_(backend->info().input.tensor_size()) {}

Batcher::~Batcher() { Shutdown(); }

absl::Status Batcher::CheckInput(const InferenceTask& task) const {
  if (task.input.size() != tensor_size_) {
    return absl::InvalidArgumentError(absl::StrCat("task input has ", task.input.size(),
                                                   " floats; the model takes ", tensor_size_));
  }
  return absl::OkStatus();
}

absl::Status Batcher::Submit(InferenceTask task) {
  std::vector<InferenceTask> one;
  one.push_back(std::move(task));
  return SubmitAll(std::move(one));
}

absl::Status Batcher::SubmitAll(std::vector<InferenceTask> tasks) {
  for (const auto& task : tasks) {
    absl::Status valid = CheckInput(task);
    if (!valid.ok()) return valid;
  }
  const absl::Time now = absl::Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status room = RoomLocked(tasks.size());
    if (!room.ok()) return room;
    for (auto& task : tasks) queue_.push_back({std::move(task), now});
    UpdateQueueGauge();
  }
  work_available_.notify_one();
  return absl::OkStatus();
}

absl::Status Batcher::CheckRoom(size_t images) const {
  std::lock_guard<std::mutex> lock(mu_);
  return RoomLocked(images);
}

absl::Status Batcher::RoomLocked(size_t images) const {
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

void Batcher::Shutdown() {
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

int Batcher::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

int Batcher::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size()) + running_;
}

void Batcher::UpdateQueueGauge() {
  if (metrics_ != nullptr) {
    metrics_->SetQueueDepth(static_cast<int>(queue_.size()));
  }
}

void Batcher::WorkerLoop() {
  std::vector<float> input;  // this worker's batch buffer, reused
  int finished = 0;
  while (true) {
    std::vector<QueuedTask> batch = NextBatch(finished);
    if (batch.empty()) return;
    finished = static_cast<int>(batch.size());
    RunBatch(std::move(batch), &input);
  }
}

std::vector<Batcher::QueuedTask> Batcher::NextBatch(int finished) {
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
    UpdateQueueGauge();
    return batch;
  }
}

void Batcher::RunBatch(std::vector<QueuedTask> batch, std::vector<float>* input) {
  const absl::Time start = absl::Now();

  // Answer the callers who are gone or out of time; never run the model for them.
  std::vector<QueuedTask> live;
  live.reserve(batch.size());
  for (auto& queued : batch) {
    const absl::Duration waited = start - queued.enqueued_at;
    // Deadline first: gRPC also cancels a call whose deadline passed, and the
    // deadline is the reason worth counting (found by tests/overload_test.py).
    if (queued.task.deadline <= start) {
      queued.task.done(Refusal(absl::DeadlineExceededError(absl::StrCat(
                                   "deadline passed after ", absl::FormatDuration(waited),
                                   " in the inference queue; the model was not run")),
                               "deadline_expired"));
    } else if (queued.task.is_cancelled && queued.task.is_cancelled()) {
      queued.task.done(
          Refusal(absl::CancelledError("request was cancelled while queued"), "cancelled"));
    } else {
      live.push_back(std::move(queued));
    }
  }
  if (live.empty()) return;

  const int batch_size = static_cast<int>(live.size());
  input->resize(batch_size * tensor_size_);
  for (int i = 0; i < batch_size; ++i) {
    std::copy(live[i].task.input.begin(), live[i].task.input.end(),
              input->begin() + i * tensor_size_);
  }
  absl::StatusOr<std::vector<float>> scores = backend_->Infer(*input, batch_size);
  const absl::Duration inference = absl::Now() - start;
  if (metrics_ != nullptr) metrics_->RecordBatch(batch_size, inference);

  const size_t classes = backend_->info().labels.size();
  if (scores.ok() && scores->size() != batch_size * classes) {
    scores = absl::InternalError(absl::StrCat("model returned ", scores->size(), " scores for ",
                                              batch_size, " images of ", classes, " labels"));
  }
  for (int i = 0; i < batch_size; ++i) {
    QueuedTask& queued = live[i];
    const absl::Duration waited = start - queued.enqueued_at;
    if (metrics_ != nullptr) metrics_->RecordQueueWait(waited);
    if (!scores.ok()) {
      queued.task.done(scores.status());
      continue;
    }
    InferenceResult result;
    result.scores.assign(scores->begin() + i * classes, scores->begin() + (i + 1) * classes);
    result.timing = {waited, inference, batch_size};
    queued.task.done(std::move(result));
  }
}

}  // namespace matid
