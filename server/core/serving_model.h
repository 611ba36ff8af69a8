// One loaded model version, ready for requests: its backend, its own
// batcher (queue and workers) and the classifier in front of them. A model
// swap loads a new ServingModel beside the old one; requests hold a
// shared_ptr to the one that admitted them, so each finishes on its version.
// Destroying it drains: every queued image runs, then the workers stop and
// the model is freed.
// Thread-safety: the accessors are const and safe from any thread; destroy
// it from a thread that is not one of its batcher's workers.
#ifndef MATID_SERVER_CORE_SERVING_MODEL_H_
#define MATID_SERVER_CORE_SERVING_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/backend/model_backend.h"
#include "server/backend/model_info.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/core/inference_statistics.h"
#include "server/core/metrics.h"
#include "server/core/preprocessor.h"
#include "server/core/version_outcomes.h"

namespace matid {

struct ServingOptions {
  BatcherOptions batcher;
  PreprocessOptions preprocess;
  int default_top_k = 5;
};

class ServingModel {
 public:
  // `name` and `version` are the repository's model folder and version;
  // empty: the metadata's (--model_dir). `metrics` may be nullptr and must
  // outlive the model.
  static absl::StatusOr<std::unique_ptr<ServingModel>> Create(const ServingOptions& options,
                                                              std::unique_ptr<ModelBackend> backend,
                                                              const std::string& name,
                                                              const std::string& version,
                                                              ServerMetrics* metrics);

  ~ServingModel();

  ServingModel(const ServingModel&) = delete;
  ServingModel& operator=(const ServingModel&) = delete;

  const ModelIdentity& identity() const { return identity_; }
  // The backend's metadata, named as identity() names the model.
  const ModelInfo& info() const { return classifier_->model(); }
  const Classifier& classifier() const { return *classifier_; }
  // The loaded model, for a shadow tap that runs it on its own worker.
  ModelBackend* backend() const { return backend_.get(); }
  // Offers a sample of this version's images to a shadow version (nullptr:
  // stop); see shadow_tap.h.
  void SetShadow(std::shared_ptr<const ClassificationTap> tap) {
    classifier_->SetShadow(std::move(tap));
  }
  const Batcher& batcher() const { return *batcher_; }
  // Cumulative per-image and per-batch statistics (Open Inference Protocol).
  InferenceStatisticsSnapshot statistics() const { return statistics_.Snapshot(); }
  // Its answers' outcomes since it was loaded (for the rollback rule).
  OutcomeSnapshot outcomes() const { return outcomes_.Snapshot(); }

  // Runs every queued image and stops the workers; later requests get
  // UNAVAILABLE. For shutdown, before the last reference is dropped.
  void Drain() { batcher_->Shutdown(); }

 private:
  ServingModel(std::unique_ptr<ModelBackend> backend, ModelIdentity identity,
               ServerMetrics* metrics);

  // Destroyed in reverse order: classifier, batcher (drains), backend.
  const std::unique_ptr<ModelBackend> backend_;
  const ModelIdentity identity_;
  ServerMetrics* const metrics_;
  InferenceStatistics statistics_;  // before the batcher, which records into it
  VersionOutcomes outcomes_;        // before the classifier, which records into it
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<Classifier> classifier_;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_SERVING_MODEL_H_
