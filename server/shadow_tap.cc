#include "server/shadow_tap.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/serving_model.h"

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

// One image's two answers; whichever comes second records the comparison.
struct Pair {
  std::mutex mu;
  bool primary_done = false;      // guarded by mu
  bool shadow_done = false;       // guarded by mu
  bool failed = false;            // guarded by mu: either side failed
  int primary_label = -1;         // guarded by mu
  float primary_score = 0;        // guarded by mu
  int shadow_label = -1;          // guarded by mu
  float shadow_score = 0;         // guarded by mu
  absl::Duration shadow_latency;  // guarded by mu
};

}  // namespace

void ShadowTap::Sink::Skipped(const std::string& reason) const {
  comparison->RecordSkipped(reason);
  counters.Skipped(reason);
}

absl::StatusOr<std::unique_ptr<ShadowTap>> ShadowTap::Create(
    const ModelInfo& primary, std::shared_ptr<const ServingModel> shadow, double fraction,
    const BatcherOptions& batcher, std::shared_ptr<ShadowComparison> comparison,
    ShadowCounters counters) {
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
  options.idle_priority = true;
  auto sink = std::make_shared<Sink>();
  sink->comparison = std::move(comparison);
  sink->counters = std::move(counters);
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

ShadowTap::PrimaryAnswer ShadowTap::Offer(const std::vector<float>& input,
                                          int primary_queue_depth) const {
  if (!Sampled()) return {};
  if (primary_queue_depth > 0) {
    sink_->Skipped("primary_busy");
    return {};
  }
  auto pair = std::make_shared<Pair>();
  auto record = [sink = sink_](Pair& p) {  // p.mu held; both sides are in
    if (p.failed) return;
    const bool agree = p.primary_label == p.shadow_label;
    sink->comparison->RecordCompared(p.primary_label, p.primary_score, p.shadow_label,
                                     p.shadow_score, p.shadow_latency);
    sink->counters.Compared(agree, p.primary_label, p.shadow_label,
                            static_cast<double>(p.shadow_score) - p.primary_score,
                            p.shadow_latency);
  };
  InferenceTask task;
  task.input = input;
  const absl::Time queued = absl::Now();
  task.done = [pair, record, sink = sink_, queued](absl::StatusOr<InferenceResult> result) {
    std::lock_guard<std::mutex> lock(pair->mu);
    pair->shadow_done = true;
    if (!result.ok() || result->scores.empty()) {
      pair->failed = true;
      sink->Skipped("shadow_failed");
      return;
    }
    const auto best = std::max_element(result->scores.begin(), result->scores.end());
    pair->shadow_label = static_cast<int>(best - result->scores.begin());
    pair->shadow_score = *best;
    pair->shadow_latency = absl::Now() - queued;
    if (pair->primary_done) record(*pair);
  };
  if (!batcher_->Submit(std::move(task)).ok()) {  // its queue is full, or it is stopping
    sink_->Skipped("shadow_busy");
    return {};
  }
  return [pair, record, sink = sink_](bool ok, int label, float score) {
    std::lock_guard<std::mutex> lock(pair->mu);
    pair->primary_done = true;
    if (!ok) {
      if (!pair->failed) sink->Skipped("primary_failed");
      pair->failed = true;
      return;
    }
    pair->primary_label = label;
    pair->primary_score = score;
    if (pair->shadow_done) record(*pair);
  };
}

}  // namespace matid
