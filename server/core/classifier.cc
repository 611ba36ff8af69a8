#include "server/core/classifier.h"

#include <algorithm>
#include <atomic>
#include <numeric>
#include <utility>

#include "server/core/metrics.h"

namespace matid {
namespace {

// A failure of the model itself (what a rollback rule counts), as opposed to
// an image that waited past its deadline, was cancelled or met a drain.
bool IsModelFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return false;
    default:
      return true;
  }
}

}  // namespace

Classifier::Classifier(const ModelInfo& model, const PreprocessOptions& preprocess,
                       int default_top_k, Batcher* batcher, ServerMetrics* metrics,
                       InferenceStatistics* statistics, VersionOutcomes* outcomes)
    : model_(model),
      preprocessor_(model.input, preprocess),
      default_top_k_(default_top_k),
      batcher_(batcher),
      metrics_(metrics),
      statistics_(statistics),
      outcomes_(outcomes),
      predictions_(metrics != nullptr ? metrics->PredictionCounters(model) : LabelCounters()) {}

void Classifier::Finish(const ClassifyDone& done, absl::StatusOr<Classification> result,
                        const ImageTimes& times) const {
  if (statistics_ != nullptr) statistics_->RecordImage(result.ok(), times);
  if (metrics_ != nullptr) {
    metrics_->RecordImage(result.status());
    if (result.ok() && !result->top.empty()) {
      predictions_.Increment(result->top.front().index);
    }
  }
  done(std::move(result));
}

absl::StatusOr<InferenceTask> Classifier::Prepare(const ClassifyCall& call,
                                                  ClassifyDone done) const {
  const absl::Time start = absl::Now();
  InferenceTask task;
  task.input.resize(preprocessor_.spec().tensor_size());
  absl::Status prepared = preprocessor_.Run(call.image, task.input.data());
  const absl::Duration preprocess = absl::Now() - start;
  if (metrics_ != nullptr) metrics_->RecordPreprocess(preprocess);
  if (!prepared.ok()) return prepared;

  task.deadline = call.deadline;
  task.is_cancelled = call.is_cancelled;
  const int top_k = call.top_k > 0 ? call.top_k : default_top_k_;
  ClassificationTap::PrimaryAnswer shadow;
  {
    std::shared_ptr<const ClassificationTap> tap;
    {
      std::lock_guard<std::mutex> lock(shadow_mu_);
      tap = shadow_;
    }
    if (tap != nullptr) {
      shadow = tap->Offer(
          task.input, batcher_->queue_depth(),
          call.image.kind == ImageRef::Kind::kEncoded ? call.image.encoded : absl::string_view());
    }
  }
  task.done = [this, start, preprocess, top_k, shadow = std::move(shadow),
               done = std::move(done)](absl::StatusOr<InferenceResult> inferred) {
    ImageTimes times;
    times.preprocess = preprocess;
    if (!inferred.ok()) {
      if (outcomes_ != nullptr && IsModelFailure(inferred.status())) outcomes_->RecordFailure();
      times.total = absl::Now() - start;
      Finish(done, inferred.status(), times);
      return;
    }
    const absl::Time output_start = absl::Now();
    Classification classification;
    classification.top = TopK(inferred->scores, top_k);
    classification.preprocess = preprocess;
    classification.timing = inferred->timing;
    if (!classification.top.empty()) {
      const ScoredLabel& top = classification.top.front();
      if (outcomes_ != nullptr) outcomes_->RecordAnswer(top.score);
      if (shadow) shadow(top.index, top.score);
    }
    const absl::Time end = absl::Now();
    times.total = end - start;
    times.queue = inferred->timing.queue_wait;
    times.infer = inferred->timing.inference;
    times.output = end - output_start;
    times.ran = true;
    Finish(done, std::move(classification), times);
  };
  return task;
}

void Classifier::Classify(const ClassifyCall& call, ClassifyDone done) const {
  // Shed before preprocessing: under overload a refusal should cost nothing.
  absl::Status room = batcher_->CheckRoom(1);
  if (!room.ok()) {
    Finish(done, room);
    return;
  }
  absl::StatusOr<InferenceTask> task = Prepare(call, done);
  if (!task.ok()) {
    Finish(done, task.status());
    return;
  }
  absl::Status queued = batcher_->Submit(*std::move(task));
  if (!queued.ok()) Finish(done, queued);
}

void Classifier::ClassifyMany(const std::vector<ClassifyCall>& calls, ClassifyManyDone done) const {
  // Item i's completion, as a single-image callback.
  auto item_done = [&done](size_t i) -> ClassifyDone {
    return [done, i](absl::StatusOr<Classification> r) { done(i, std::move(r)); };
  };
  absl::Status room = batcher_->CheckRoom(calls.size());
  if (!room.ok()) {  // shed before preprocessing, as in Classify
    for (size_t i = 0; i < calls.size(); ++i) Finish(item_done(i), room);
    return;
  }
  std::vector<InferenceTask> tasks;
  std::vector<size_t> queued_items;
  for (size_t i = 0; i < calls.size(); ++i) {
    absl::StatusOr<InferenceTask> task = Prepare(calls[i], item_done(i));
    if (!task.ok()) {
      Finish(item_done(i), task.status());
      continue;
    }
    tasks.push_back(*std::move(task));
    queued_items.push_back(i);
  }
  if (tasks.empty()) return;
  absl::Status queued = batcher_->SubmitAll(std::move(tasks));
  if (!queued.ok()) {
    for (size_t i : queued_items) Finish(item_done(i), queued);
  }
}

void Classifier::ClassifyAll(const std::vector<ClassifyCall>& calls, ClassifyAllDone done) const {
  // Shared by the item callbacks (ClassifyMany copies its callback per item,
  // so the callback holds only this pointer).
  struct Gather {
    std::vector<absl::StatusOr<Classification>> results;
    std::atomic<size_t> remaining;
    ClassifyAllDone done;
  };
  auto gather = std::make_shared<Gather>();
  gather->results.resize(calls.size(), absl::UnknownError("not answered"));
  gather->remaining.store(calls.size());
  gather->done = std::move(done);
  if (calls.empty()) return gather->done({});
  ClassifyMany(calls, [gather](size_t i, absl::StatusOr<Classification> result) {
    gather->results[i] = std::move(result);
    if (gather->remaining.fetch_sub(1) == 1) gather->done(std::move(gather->results));
  });
}

void Classifier::SetShadow(std::shared_ptr<const ClassificationTap> tap) {
  std::shared_ptr<const ClassificationTap> old;
  {
    std::lock_guard<std::mutex> lock(shadow_mu_);
    old = std::move(shadow_);
    shadow_ = std::move(tap);
  }
  // `old` is released here, outside the lock (it may drain its queue).
}

std::vector<ScoredLabel> Classifier::TopK(const std::vector<float>& scores, int top_k) const {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min(order.size(), static_cast<size_t>(top_k));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<ScoredLabel> top;
  top.reserve(k);
  for (size_t i = 0; i < k; ++i) top.push_back({order[i], scores[order[i]]});
  return top;
}

}  // namespace matid
