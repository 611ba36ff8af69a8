// The shadow and promotion controller of the model manager. Per model it
// holds the shadow tap the default version offers images to (shadow_tap.h),
// the policy's promotion rule and its open rollback window. After each
// reconcile the manager hands it the model's policy and plan (Apply); on
// the manager's thread it checks the rules by the injected clock
// (CheckRules). A rule that holds, or an operator's call, promotes the
// shadow, rolls back or closes the window by one update of the policy store
// (policy_store.h), then has the manager rescan; each is logged and
// reported as an event through the state monitor.
// Thread-safety: every method may be called from any thread (one mutex,
// never held while it rescans or creates a tap); Apply, Forget and
// CheckRules run on the manager's thread only.
#ifndef MATID_SERVER_REPOSITORY_PROMOTION_CONTROLLER_H_
#define MATID_SERVER_REPOSITORY_PROMOTION_CONTROLLER_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "server/core/metrics.h"
#include "server/core/serving_model.h"
#include "server/repository/model_repository.h"
#include "server/repository/policy_store.h"
#include "server/repository/serving_table.h"
#include "server/repository/version_state_monitor.h"
#include "server/router/model_control.h"
#include "server/shadow/disagreement_folder.h"
#include "server/shadow/promotion_rules.h"
#include "server/shadow/shadow_tap.h"

namespace matid {

class PromotionController {
 public:
  // Who asks: an operator's call waits for the manager's thread to rescan;
  // the manager's own thread rescans itself.
  enum class Caller { kOperator, kManagerThread };

  // What the controller works with; each must outlive it.
  struct Wiring {
    BatcherOptions shadow_batcher;                      // a shadow tap's own batcher
    Clock* clock = nullptr;                             // the rules' time
    ServingTable* table = nullptr;                      // the versions
    VersionStateMonitor* monitor = nullptr;             // events
    ServerMetrics* metrics = nullptr;                   // or nullptr
    std::shared_ptr<DisagreementFolder> disagreements;  // or nullptr
    // The policy store's update (FAILED_PRECONDITION without a repository).
    std::function<absl::StatusOr<RepositoryModel>(const std::string& model,
                                                  const PolicyStore::Change& change)>
        update_policy;
    std::function<void(Caller)> rescan;  // reconcile now, or wait for the manager's thread
  };
  explicit PromotionController(Wiring wiring) : wiring_(std::move(wiring)) {}

  // After a reconcile of `model`: its policy's rule and window, then the
  // shadow the plan chose (0: none) with why the policy's does not run.
  void Apply(const std::string& model, const VersionPolicy& policy, int64_t shadow_version,
             const std::string& shadow_problem);
  // The model left the repository: its shadow stops.
  void Forget(const std::string& model);
  // Drops every tap (the manager is going).
  void Clear();

  // A rule to check (a shadow with a promotion rule, or an open window).
  bool Watching() const;
  // Acts on the rules whose figures say so.
  void CheckRules();

  // An operator's or a rule's promotion of the shadow / rollback; errors
  // name what is missing (no shadow, not running, no open window).
  absl::Status Promote(const std::string& model, const std::string& trigger,
                       const std::string& reason, Caller caller);
  absl::Status RollBack(const std::string& model, const std::string& trigger,
                        const std::string& reason, std::map<std::string, double> figures,
                        Caller caller);

  // ModelControl::Shadow's report.
  absl::StatusOr<ShadowReport> Report(const std::string& model) const;
  // Why `version` does not run as the model's shadow; nullopt when it does.
  std::optional<std::string> ShadowNotRunning(const std::string& model, int64_t version) const;

 private:
  struct Control {
    // The tap and what it was made for (also when making it failed, so that
    // is not retried on every rescan).
    std::shared_ptr<const ShadowTap> tap;
    std::weak_ptr<ServingModel> tap_primary;
    std::weak_ptr<ServingModel> tap_shadow;
    int64_t shadow_version = 0;  // the tap's (0: no shadow)
    double shadow_fraction = 0;
    std::string shadow_problem;                 // why the configured shadow does not run
    std::optional<PromotionRule> promote_when;  // the policy's, with a shadow
    RollbackWindow rollback;                    // the policy's open window (version 0: none)
    OutcomeSnapshot rollback_baseline;          // the promoted version's outcomes when first seen
    std::string rule_problem;                   // the last failure acting on a rule (logged once)
  };

  void CloseWindow(const std::string& model, const RollbackWindow& window);
  void UpdateShadow(const std::string& model, int64_t shadow_version, double fraction,
                    std::string problem);
  Control& ControlLocked(const std::string& model);  // made when new; mu_ held

  const Wiring wiring_;
  mutable std::mutex mu_;
  std::map<std::string, Control, std::less<>> controls_;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_PROMOTION_CONTROLLER_H_
