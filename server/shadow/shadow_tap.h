// Sends a sample of the serving (primary) version's preprocessed images to a
// shadow version of the same model and compares the two answers, without
// ever delaying or failing the primary's: the shadow runs on a worker of
// its own that only gets a core the serving path leaves idle (SCHED_IDLE),
// with a small queue; an image is offered
// to it only when the primary's queue is empty (spare capacity), and every
// sampled image it does not get is counted with the reason. No second
// decode: the shadow gets a copy of the primary's input tensor, so both
// versions must take the same input (checked in Create). With a
// disagreements folder, the images the two answer differently (top-1) are
// saved there for labelling (see disagreement_folder.h).
// Thread-safety: Offer and the PrimaryAnswer it returns may be called from
// any thread. Destroying the tap drains its queue and joins its worker: do
// it from a thread that is not that worker (its callbacks never hold it).
#ifndef MATID_SERVER_SHADOW_SHADOW_TAP_H_
#define MATID_SERVER_SHADOW_SHADOW_TAP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/model_info.h"
#include "server/core/batcher.h"
#include "server/core/classification_tap.h"
#include "server/core/metrics.h"
#include "server/shadow/disagreement_folder.h"
#include "server/shadow/shadow_comparison.h"

namespace matid {

class ServingModel;

class ShadowTap : public ClassificationTap {
 public:
  // `primary` and `shadow` are the two loaded versions; the tap keeps the
  // shadow alive. `fraction` of the offered images are sampled; `batcher`
  // gives the shadow's batch size (its queue holds two batches) and
  // whether its worker runs under SCHED_IDLE. `primary_version` names the
  // primary in saved disagreements; `folder` may be nullptr (none saved).
  // FAILED_PRECONDITION when the two versions take different inputs or
  // have different labels.
  static absl::StatusOr<std::unique_ptr<ShadowTap>> Create(
      const ModelInfo& primary, const std::string& primary_version,
      std::shared_ptr<const ServingModel> shadow, double fraction, const BatcherOptions& batcher,
      std::shared_ptr<ShadowComparison> comparison, ShadowCounters counters,
      std::shared_ptr<DisagreementFolder> folder = nullptr);

  ~ShadowTap();

  // A PrimaryAnswer dropped uncalled counts the image as skipped
  // (primary_failed).
  // One preprocessed image of the primary (`primary_queue_depth`: images
  // waiting in the primary's queue now; `encoded`: the request's image
  // bytes, empty for raw pixels or tensors). When sampled and there is
  // room, queues a copy for the shadow and returns the function to give the
  // primary's answer to; otherwise returns an empty function.
  PrimaryAnswer Offer(const std::vector<float>& input, int primary_queue_depth,
                      absl::string_view encoded) const override;

  const ShadowComparison& comparison() const { return *sink_->comparison; }

 private:
  class Pair;
  // What the callbacks record into; outlives the tap while images are out.
  struct Sink {
    std::shared_ptr<ShadowComparison> comparison;
    ShadowCounters counters;
    // Disagreements, when saved: where, and what names them.
    std::shared_ptr<DisagreementFolder> folder;
    Disagreement names;  // model, versions, input; labels and answers per image
    std::vector<std::string> labels;
    void Skipped(const std::string& reason) const;
    void Disagreed(int primary_label, float primary_score, int shadow_label, float shadow_score,
                   std::string encoded, std::vector<float> tensor) const;
  };

  ShadowTap(std::shared_ptr<const ServingModel> shadow, double fraction,
            std::shared_ptr<const Sink> sink);
  bool Sampled() const;

  // Constant after construction.
  const std::shared_ptr<const ServingModel> shadow_;
  const double fraction_;
  const std::shared_ptr<const Sink> sink_;
  mutable std::atomic<uint64_t> offered_{0};
  std::unique_ptr<Batcher> batcher_;  // last: drained and joined first
};

}  // namespace matid

#endif  // MATID_SERVER_SHADOW_SHADOW_TAP_H_
