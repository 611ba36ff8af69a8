// Sends a sample of the serving (primary) version's preprocessed images to a
// shadow version of the same model and compares the two answers, without
// ever delaying or failing the primary's: the shadow runs on a worker of
// its own that only gets a core the serving path leaves idle (SCHED_IDLE),
// with a small queue; an image is offered
// to it only when the primary's queue is empty (spare capacity), and every
// sampled image it does not get is counted with the reason. No second
// decode: the shadow gets a copy of the primary's input tensor, so both
// versions must take the same input (checked in Create).
// Thread-safety: Offer and the PrimaryAnswer it returns may be called from
// any thread. Destroying the tap drains its queue and joins its worker: do
// it from a thread that is not that worker (its callbacks never hold it).
#ifndef MATID_SERVER_SHADOW_TAP_H_
#define MATID_SERVER_SHADOW_TAP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/batcher.h"
#include "server/metrics.h"
#include "server/model_info.h"
#include "server/shadow_comparison.h"

namespace matid {

class ServingModel;

class ShadowTap {
 public:
  // `primary` and `shadow` are the two loaded versions; the tap keeps the
  // shadow alive. `fraction` of the offered images are sampled; `batcher`
  // gives the shadow's batch size (its queue holds two batches) and
  // whether its worker runs under SCHED_IDLE.
  // FAILED_PRECONDITION when the two versions take different inputs or
  // have different labels.
  static absl::StatusOr<std::unique_ptr<ShadowTap>> Create(
      const ModelInfo& primary, std::shared_ptr<const ServingModel> shadow, double fraction,
      const BatcherOptions& batcher, std::shared_ptr<ShadowComparison> comparison,
      ShadowCounters counters);

  ~ShadowTap();

  // Called with the primary's top-1 for an offered image, when it has one;
  // dropping it uncalled counts the image as skipped (primary_failed).
  using PrimaryAnswer = std::function<void(int label, float score)>;

  // One preprocessed image of the primary (`primary_queue_depth`: images
  // waiting in the primary's queue now). When sampled and there is room,
  // queues a copy for the shadow and returns the function to give the
  // primary's answer to; otherwise returns an empty function.
  PrimaryAnswer Offer(const std::vector<float>& input, int primary_queue_depth) const;

  const ShadowComparison& comparison() const { return *sink_->comparison; }

 private:
  class Pair;
  // What the callbacks record into; outlives the tap while images are out.
  struct Sink {
    std::shared_ptr<ShadowComparison> comparison;
    ShadowCounters counters;
    void Skipped(const std::string& reason) const;
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

#endif  // MATID_SERVER_SHADOW_TAP_H_
