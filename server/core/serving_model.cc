#include "server/core/serving_model.h"

#include <utility>

namespace matid {

absl::StatusOr<std::unique_ptr<ServingModel>> ServingModel::Create(
    const ServingOptions& options, std::unique_ptr<ModelBackend> backend, const std::string& name,
    const std::string& version, ServerMetrics* metrics) {
  if (backend == nullptr) return absl::InvalidArgumentError("ServingModel needs a backend");
  ModelInfo info = backend->info();
  if (!name.empty()) info.name = name;
  ModelIdentity identity{info.name, version.empty() ? info.version : version, info.variant,
                         info.loaded_sha256.substr(0, 12)};
  std::unique_ptr<ServingModel> model(
      new ServingModel(std::move(backend), std::move(identity), metrics));
  auto batcher =
      Batcher::Create(options.batcher, model->backend_.get(), metrics, &model->statistics_);
  if (!batcher.ok()) return batcher.status();
  model->batcher_ = *std::move(batcher);
  model->classifier_ = std::make_unique<Classifier>(info, options.preprocess, options.default_top_k,
                                                    model->batcher_.get(), metrics,
                                                    &model->statistics_, &model->outcomes_);
  if (metrics != nullptr) metrics->SetModelLoaded(model->identity_, true);
  return model;
}

ServingModel::ServingModel(std::unique_ptr<ModelBackend> backend, ModelIdentity identity,
                           ServerMetrics* metrics)
    : backend_(std::move(backend)), identity_(std::move(identity)), metrics_(metrics) {}

ServingModel::~ServingModel() {
  if (batcher_ != nullptr) batcher_->Shutdown();
  if (metrics_ != nullptr && classifier_ != nullptr) metrics_->SetModelLoaded(identity_, false);
}

}  // namespace matid
