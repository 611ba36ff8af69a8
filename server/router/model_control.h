// Operator changes to which versions serve, for the admin service and the
// Open Inference Protocol's repository extension (server/api/). Implemented
// by the model manager (server/repository/model_manager.h); the services
// see only this interface and ModelRouter.
// Thread-safety: implementations allow every method from any thread; each
// change blocks its caller until the change has been applied.
#ifndef MATID_SERVER_ROUTER_MODEL_CONTROL_H_
#define MATID_SERVER_ROUTER_MODEL_CONTROL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/shadow/promotion_rules.h"
#include "server/shadow/shadow_comparison.h"

namespace matid {

// How a model's shadow version compares with its default version so far.
struct ShadowReport {
  std::string model;
  std::string primary_version;
  std::string shadow_version;
  double fraction = 0;
  std::vector<std::string> labels;
  ShadowSnapshot comparison;
  std::optional<PromotionRule> promote_when;  // none: promoted by an operator only
  std::string disagreements_dir;              // empty: disagreeing images are not saved
};

class ModelControl {
 public:
  virtual ~ModelControl() = default;

  // Rescans the repository and returns when a rescan that started after
  // this call is done.
  virtual void ReloadAndWait() = 0;

  // With a repository only (FAILED_PRECONDITION otherwise). Each writes the
  // model's version policy durably, rescans and waits. NOT_FOUND for an
  // unknown model or version folder; FAILED_PRECONDITION when a named
  // version ends FAILED (with its reason, the serving version stays) or the
  // change would leave nothing to serve.
  // Pin: serve exactly `versions` (empty: back to latest).
  virtual absl::Status Pin(const std::string& model, std::vector<int64_t> versions) = 0;
  // Load: serve `version` beside what serves now.
  virtual absl::Status Load(const std::string& model, int64_t version) = 0;
  // Unload: stop serving `version`; its admitted requests finish first.
  virtual absl::Status Unload(const std::string& model, int64_t version) = 0;
  // SetShadow: `version` classifies `fraction` (0, 1] of the default
  // version's images beside it, for comparison; version 0 stops.
  // FAILED_PRECONDITION with the reason when it cannot shadow (FAILED, or
  // takes other inputs or labels); the policy is put back. `promote_when`
  // (none: by an operator only) and `rollback_when` (none: the defaults)
  // are written with it.
  virtual absl::Status SetShadow(const std::string& model, int64_t version, double fraction,
                                 std::optional<PromotionRule> promote_when,
                                 std::optional<RollbackRule> rollback_when) = 0;
  // Promote: the running shadow version becomes the one version served
  // (pinned); the version it replaces stays loaded as the rollback target
  // for the shadow's rollback window. FAILED_PRECONDITION when the model
  // has no running shadow.
  virtual absl::Status Promote(const std::string& model) = 0;
  // Rollback: back to the version the last promotion replaced, while its
  // window is open; FAILED_PRECONDITION otherwise.
  virtual absl::Status Rollback(const std::string& model) = 0;
  // The comparison so far; FAILED_PRECONDITION when the model has no shadow
  // (saying why, when one is configured but cannot run).
  virtual absl::StatusOr<ShadowReport> Shadow(const std::string& model) const = 0;
};

}  // namespace matid

#endif  // MATID_SERVER_ROUTER_MODEL_CONTROL_H_
