#include "server/shadow/shadow_tap.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/serving_model.h"

namespace matid {
namespace {

bool SameInput(const InputSpec& a, const InputSpec& b) {
  return a.width == b.width && a.height == b.height && a.color == b.color && a.resize == b.resize &&
         a.mean == b.mean && a.std == b.std;
}

std::string InputText(const InputSpec& spec) {
  return absl::StrCat(spec.width, "x", spec.height, " ", ColorModeName(spec.color), " ",
                      ResizeModeName(spec.resize), " mean [", absl::StrJoin(spec.mean, ","),
                      "] std [", absl::StrJoin(spec.std, ","), "]");
}

}  // namespace

// One offered image's two answers: whichever comes second records the
// comparison. A pair that ends without one (a side failed, or was never
// answered: the primary's image refused after it was offered) is counted
// as skipped when the last of its holders lets go.
class ShadowTap::Pair {
 public:
  // `encoded` and `tensor`: the image, kept only to save a disagreement.
  Pair(std::shared_ptr<const Sink> sink, std::string encoded, std::vector<float> tensor)
      : sink_(std::move(sink)), encoded_(std::move(encoded)), tensor_(std::move(tensor)) {}
  ~Pair() {
    if (compared_) return;
    sink_->Skipped(!skip_reason_.empty() ? skip_reason_
                   : !shadow_done_       ? "shadow_failed"
                                         : "primary_failed");
  }

  void PrimaryAnswered(int label, float score) {
    std::lock_guard<std::mutex> lock(mu_);
    primary_done_ = true;
    primary_label_ = label;
    primary_score_ = score;
    if (shadow_done_) RecordLocked();
  }
  // `scores` empty: the shadow failed.
  void ShadowAnswered(const std::vector<float>& scores, absl::Duration latency) {
    if (scores.empty()) return;  // counted as shadow_failed when the pair ends
    const auto best = std::max_element(scores.begin(), scores.end());
    std::lock_guard<std::mutex> lock(mu_);
    shadow_done_ = true;
    shadow_label_ = static_cast<int>(best - scores.begin());
    shadow_score_ = *best;
    shadow_latency_ = latency;
    if (primary_done_) RecordLocked();
  }
  // Ends the pair unanswered for `reason` (set before anything is queued).
  void Skip(std::string reason) { skip_reason_ = std::move(reason); }

 private:
  void RecordLocked() {  // mu_ held; both sides are in
    compared_ = true;
    sink_->comparison->RecordCompared(primary_label_, primary_score_, shadow_label_, shadow_score_,
                                      shadow_latency_);
    sink_->counters.Compared(primary_label_ == shadow_label_, primary_label_, shadow_label_,
                             static_cast<double>(shadow_score_) - primary_score_, shadow_latency_);
    if (primary_label_ != shadow_label_ && sink_->folder != nullptr) {
      sink_->Disagreed(primary_label_, primary_score_, shadow_label_, shadow_score_,
                       std::move(encoded_), std::move(tensor_));
    }
  }

  const std::shared_ptr<const Sink> sink_;
  std::string skip_reason_;    // only before the pair is shared
  std::string encoded_;        // guarded by mu_ once shared
  std::vector<float> tensor_;  // guarded by mu_ once shared
  std::mutex mu_;
  bool primary_done_ = false;  // guarded by mu_, like every field below
  bool shadow_done_ = false;
  bool compared_ = false;
  int primary_label_ = -1;
  float primary_score_ = 0;
  int shadow_label_ = -1;
  float shadow_score_ = 0;
  absl::Duration shadow_latency_;
};

void ShadowTap::Sink::Skipped(const std::string& reason) const {
  comparison->RecordSkipped(reason);
  counters.Skipped(reason);
}

void ShadowTap::Sink::Disagreed(int primary_label, float primary_score, int shadow_label,
                                float shadow_score, std::string encoded,
                                std::vector<float> tensor) const {
  auto name = [this](int label) {
    return label >= 0 && label < static_cast<int>(labels.size()) ? labels[label]
                                                                 : absl::StrCat(label);
  };
  Disagreement d = names;
  d.primary_label = name(primary_label);
  d.primary_score = primary_score;
  d.shadow_label = name(shadow_label);
  d.shadow_score = shadow_score;
  d.time = absl::Now();
  d.encoded = std::move(encoded);
  d.tensor = std::move(tensor);
  // The comparison and counters outlive the write: the callback holds them.
  d.done = [comparison = comparison, counters = counters](const std::string& path,
                                                          const std::string& not_saved) {
    comparison->RecordFrame(path, not_saved);
    counters.Frame(not_saved.empty() ? "saved" : not_saved);
  };
  folder->Save(std::move(d));
}

absl::StatusOr<std::unique_ptr<ShadowTap>> ShadowTap::Create(
    const ModelInfo& primary, const std::string& primary_version,
    std::shared_ptr<const ServingModel> shadow, double fraction, const BatcherOptions& batcher,
    std::shared_ptr<ShadowComparison> comparison, ShadowCounters counters,
    std::shared_ptr<DisagreementFolder> folder) {
  if (shadow == nullptr || comparison == nullptr) {
    return absl::InvalidArgumentError("ShadowTap needs a shadow version and a comparison");
  }
  const ModelInfo& info = shadow->info();
  if (!SameInput(primary.input, info.input)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the shadow takes ", InputText(info.input), " but the serving version takes ",
                     InputText(primary.input), ": they cannot share preprocessed images"));
  }
  if (primary.labels != info.labels) {
    return absl::FailedPreconditionError(
        absl::StrCat("the shadow has labels [", absl::StrJoin(info.labels, ", "),
                     "] but the serving version has [", absl::StrJoin(primary.labels, ", "),
                     "]: their answers cannot be compared"));
  }
  BatcherOptions options;
  options.max_batch_size = batcher.max_batch_size;
  options.max_queue_size = 2 * batcher.max_batch_size;
  options.workers = 1;
  options.idle_priority = batcher.idle_priority;
  auto sink = std::make_shared<Sink>();
  sink->comparison = std::move(comparison);
  sink->counters = std::move(counters);
  sink->folder = std::move(folder);
  sink->names.model = primary.name;
  sink->names.primary_version = primary_version;
  sink->names.shadow_version = shadow->identity().version;
  sink->names.input = primary.input;
  sink->labels = primary.labels;
  std::unique_ptr<ShadowTap> tap(new ShadowTap(std::move(shadow), fraction, std::move(sink)));
  // Not counted in the server's queue and inference metrics: those are the
  // serving path's.
  auto queue = Batcher::Create(options, tap->shadow_->backend(), nullptr);
  if (!queue.ok()) return queue.status();
  tap->batcher_ = *std::move(queue);
  return tap;
}

ShadowTap::ShadowTap(std::shared_ptr<const ServingModel> shadow, double fraction,
                     std::shared_ptr<const Sink> sink)
    : shadow_(std::move(shadow)), fraction_(fraction), sink_(std::move(sink)) {}

ShadowTap::~ShadowTap() {
  if (batcher_ != nullptr) batcher_->Shutdown();
}

bool ShadowTap::Sampled() const {
  // Exactly `fraction` of the offered images, spread evenly: image n is
  // sampled when floor((n + 1) * f) passes an integer.
  const uint64_t n = offered_.fetch_add(1);
  return std::floor(static_cast<double>(n + 1) * fraction_) >
         std::floor(static_cast<double>(n) * fraction_);
}

ShadowTap::PrimaryAnswer ShadowTap::Offer(const std::vector<float>& input, int primary_queue_depth,
                                          absl::string_view encoded) const {
  if (!Sampled()) return {};
  if (primary_queue_depth > 0) {
    sink_->Skipped("primary_busy");
    return {};
  }
  // Kept to save the image should the two disagree: its bytes as sent, or
  // for raw pixels and tensors the model's input.
  const bool keep = sink_->folder != nullptr;
  auto pair = std::make_shared<Pair>(sink_, keep ? std::string(encoded) : std::string(),
                                     keep && encoded.empty() ? input : std::vector<float>());
  InferenceTask task;
  task.input = input;
  const absl::Time queued = absl::Now();
  task.done = [pair, queued](absl::StatusOr<InferenceResult> result) {
    static const std::vector<float> kFailed;  // (a temporary here trips GCC 12's
                                              // -Wfree-nonheap-object)
    pair->ShadowAnswered(result.ok() ? result->scores : kFailed, absl::Now() - queued);
  };
  if (!batcher_->Submit(std::move(task)).ok()) {  // its queue is full, or it is stopping
    pair->Skip("shadow_busy");
    return {};
  }
  return [pair](int label, float score) { pair->PrimaryAnswered(label, score); };
}

}  // namespace matid
