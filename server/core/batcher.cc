#include "server/core/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/metrics.h"
#include "server/core/refusal.h"

namespace matid {

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(const BatcherOptions& options,
                                                         ModelBackend* backend,
                                                         ServerMetrics* metrics,
                                                         InferenceStatistics* statistics) {
  absl::Status valid = ValidateBatcherOptions(options);
  if (!valid.ok()) return valid;
  if (backend == nullptr) {
    return absl::InvalidArgumentError("Batcher needs a model backend");
  }
  std::unique_ptr<Batcher> batcher(new Batcher(backend, metrics, statistics));
  BatchScheduler::QueueDepthCallback queue_depth_changed;
  if (metrics != nullptr) {
    // The gauge sums every loaded version's queue (two batchers during a
    // model swap): each adds the change since its last report.
    queue_depth_changed = [metrics, b = batcher.get()](int depth) {
      metrics->AddQueueDepth(depth - b->reported_queue_depth_.exchange(depth));
    };
  }
  auto scheduler = BatchScheduler::Create(
      options,
      [b = batcher.get()](std::vector<QueuedTask> batch) { b->RunBatch(std::move(batch)); },
      std::move(queue_depth_changed));
  if (!scheduler.ok()) return scheduler.status();
  batcher->scheduler_ = *std::move(scheduler);
  return batcher;
}

Batcher::Batcher(ModelBackend* backend, ServerMetrics* metrics, InferenceStatistics* statistics)
    : backend_(backend),
      metrics_(metrics),
      statistics_(statistics),
      tensor_size_(backend->info().input.tensor_size()) {}

Batcher::~Batcher() {
  if (scheduler_ != nullptr) scheduler_->Shutdown();  // null only when Create failed
}

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
  return scheduler_->Enqueue(std::move(tasks));
}

std::vector<QueuedTask> Batcher::AnswerExpired(std::vector<QueuedTask> batch, absl::Time now) {
  std::vector<QueuedTask> live;
  live.reserve(batch.size());
  for (auto& queued : batch) {
    const absl::Duration waited = now - queued.enqueued_at;
    // Deadline first: gRPC also cancels a call whose deadline passed, and the
    // deadline is the reason worth counting (found by tests/overload_test.py).
    if (queued.task.deadline <= now) {
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
  return live;
}

void Batcher::RunBatch(std::vector<QueuedTask> batch) {
  const absl::Time start = absl::Now();
  std::vector<QueuedTask> live = AnswerExpired(std::move(batch), start);
  if (live.empty()) return;

  // Each scheduler worker keeps its own batch buffer across batches.
  thread_local std::vector<float> input;
  const int batch_size = static_cast<int>(live.size());
  input.resize(batch_size * tensor_size_);
  for (int i = 0; i < batch_size; ++i) {
    std::copy(live[i].task.input.begin(), live[i].task.input.end(),
              input.begin() + i * tensor_size_);
  }
  const absl::Time forward_start = absl::Now();
  absl::StatusOr<std::vector<float>> scores = backend_->Infer(input, batch_size);
  const absl::Duration forward = absl::Now() - forward_start;
  if (metrics_ != nullptr) metrics_->RecordBatch(batch_size, forward);

  const size_t classes = backend_->info().labels.size();
  if (scores.ok() && scores->size() != batch_size * classes) {
    scores = absl::InternalError(absl::StrCat("model returned ", scores->size(), " scores for ",
                                              batch_size, " images of ", classes, " labels"));
  }
  // Each image's answer is built first and handed out after the batch is
  // recorded, so a caller that has its answer also sees the batch counted.
  const absl::Time output_start = absl::Now();
  std::vector<absl::StatusOr<InferenceResult>> results;
  results.reserve(batch_size);
  for (int i = 0; i < batch_size; ++i) {
    if (!scores.ok()) {
      results.push_back(scores.status());
      continue;
    }
    InferenceResult result;
    result.scores.assign(scores->begin() + i * classes, scores->begin() + (i + 1) * classes);
    result.timing = {start - live[i].enqueued_at, forward, batch_size};
    results.push_back(std::move(result));
  }
  if (statistics_ != nullptr) {
    statistics_->RecordBatch(batch_size, forward_start - start, forward,
                             absl::Now() - output_start);
  }
  for (int i = 0; i < batch_size; ++i) {
    if (metrics_ != nullptr) metrics_->RecordQueueWait(start - live[i].enqueued_at);
    live[i].task.done(std::move(results[i]));
  }
}

}  // namespace matid
