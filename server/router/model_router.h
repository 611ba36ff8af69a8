// The request path's only view of the model lifecycle: resolve a model and
// version to the loaded version that serves it, and report what is loaded.
// The API services (server/api/) see this interface and ModelControl, never
// the manager that implements them (server/repository/model_manager.h);
// scripts/check_layout.py makes that a build error.
//
// The handle Resolve returns keeps its version alive while a request holds
// it, so a version swapped out under a request finishes that request.
// Thread-safety: implementations allow every method from any thread;
// Resolve is on the request path and must be cheap.
#ifndef MATID_SERVER_ROUTER_MODEL_ROUTER_H_
#define MATID_SERVER_ROUTER_MODEL_ROUTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/model_info.h"
#include "server/core/model_version_state.h"
#include "server/core/serving_model.h"

namespace matid {

struct ModelVersionStatus {
  std::string model;
  std::string version;
  ModelVersionState state = ModelVersionState::kLoading;
  std::string reason;  // why FAILED
  bool is_default = false;
  bool is_shadow = false;           // classifies a sample beside the default version
  bool is_rollback_target = false;  // kept loaded for a rollback window
  ModelIdentity identity;           // variant and sha256 once loaded
};

class ModelRouter {
 public:
  virtual ~ModelRouter() = default;

  // The version that serves a request for `model` ("" = the default model)
  // at `version` (0 = the model's default version). NOT_FOUND naming the
  // models (or the model's available versions) when there is none.
  virtual absl::StatusOr<std::shared_ptr<const ServingModel>> Resolve(absl::string_view model,
                                                                      int64_t version) const = 0;

  // The default model's default version, or nullptr.
  virtual std::shared_ptr<const ServingModel> DefaultModel() const = 0;

  // Every model version known, by model then version.
  virtual std::vector<ModelVersionStatus> Statuses() const = 0;

  // Queue depth and in-flight images summed over every loaded version.
  virtual int queue_depth() const = 0;
  virtual int in_flight() const = 0;
};

}  // namespace matid

#endif  // MATID_SERVER_ROUTER_MODEL_ROUTER_H_
