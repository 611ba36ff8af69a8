// The serving core between the RPC layer and the model: preprocess an image
// on the caller's thread, queue it on the batcher, turn the model's scores
// into top-k labels; offer a sample to a shadow version when one is set.
// Knows nothing of gRPC or protobuf.
// Thread-safety: all methods are const and may be called from many threads.
#ifndef MATID_SERVER_CORE_CLASSIFIER_H_
#define MATID_SERVER_CORE_CLASSIFIER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/backend/model_info.h"
#include "server/core/batcher.h"
#include "server/core/classification_tap.h"
#include "server/core/image.h"
#include "server/core/inference_statistics.h"
#include "server/core/metrics.h"
#include "server/core/preprocessor.h"
#include "server/core/version_outcomes.h"

namespace matid {

struct ScoredLabel {
  int index = 0;
  float score = 0;
};

struct Classification {
  std::vector<ScoredLabel> top;  // best first
  absl::Duration preprocess;
  InferenceTiming timing;
};

struct ClassifyCall {
  ImageRef image;  // borrowed: needed only until Classify*() returns
  int top_k = 0;   // 0: the default
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;  // or empty
};

using ClassifyDone = std::function<void(absl::StatusOr<Classification>)>;
using ClassifyManyDone = std::function<void(size_t item, absl::StatusOr<Classification>)>;
using ClassifyAllDone = std::function<void(std::vector<absl::StatusOr<Classification>>)>;

class Classifier {
 public:
  // `batcher`, `metrics`, `statistics` and `outcomes` (the last three
  // nullable) must outlive the classifier.
  Classifier(const ModelInfo& model, const PreprocessOptions& preprocess, int default_top_k,
             Batcher* batcher, ServerMetrics* metrics, InferenceStatistics* statistics = nullptr,
             VersionOutcomes* outcomes = nullptr);

  // `done` is called exactly once: inline when the image is refused (bad
  // input, queue full), otherwise later from the batcher's worker.
  void Classify(const ClassifyCall& call, ClassifyDone done) const;

  // Many images: each is preprocessed, the good ones are queued together
  // (all or none, so the call is not half-refused under load). `done` is
  // called exactly once per item, inline or from the batcher's worker.
  void ClassifyMany(const std::vector<ClassifyCall>& calls, ClassifyManyDone done) const;

  // ClassifyMany, gathered: `done` is called once, after the last item is
  // answered, with every item's result in the order of `calls` (the split
  // and gather of BatchClassify and the Open Inference Protocol's ModelInfer).
  void ClassifyAll(const std::vector<ClassifyCall>& calls, ClassifyAllDone done) const;

  const ModelInfo& model() const { return model_; }

  // Offers each preprocessed image to `tap` (a shadow version, see
  // classification_tap.h) from now on; nullptr stops. Safe from any thread.
  void SetShadow(std::shared_ptr<const ClassificationTap> tap);

 private:
  // Preprocesses into a task whose completion calls `done`; on refusal calls
  // nothing and returns the error.
  absl::StatusOr<InferenceTask> Prepare(const ClassifyCall& call, ClassifyDone done) const;
  std::vector<ScoredLabel> TopK(const std::vector<float>& scores, int top_k) const;
  void Finish(const ClassifyDone& done, absl::StatusOr<Classification> result,
              const ImageTimes& times = {}) const;

  // Constant after construction.
  const ModelInfo model_;
  const Preprocessor preprocessor_;
  const int default_top_k_;
  Batcher* const batcher_;
  ServerMetrics* const metrics_;           // or nullptr if not recorded
  InferenceStatistics* const statistics_;  // or nullptr if not recorded
  VersionOutcomes* const outcomes_;        // or nullptr if not recorded
  const LabelCounters predictions_;

  mutable std::mutex shadow_mu_;
  std::shared_ptr<const ClassificationTap> shadow_;  // guarded by shadow_mu_; or nullptr
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_CLASSIFIER_H_
