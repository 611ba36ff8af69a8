// The models a server serves and their versions: routes each request to a
// loaded version, and (with a repository) keeps what is loaded in line with
// REPOSITORY/<model>/<version>/ and each model's version policy.
//
// A reload (poll, SIGHUP, RequestReload) rescans the repository on the
// manager's own thread. A new version is loaded, warmed up and checked
// beside the serving one (the loader should work at lower CPU priority, as
// the torch backend's low_priority_load does, so serving keeps its cores);
// then new requests go to it atomically. Requests
// already admitted hold the old version and finish on it; the old version is
// released (its queue drained, its memory freed) when the last of them is
// done. A version that fails to load, warm up or pass its smoke checks
// (one score per label; its golden images, see golden_check.h) is
// FAILED with the reason, logged and counted, and is tried again only when
// its folder changes; the previous version keeps serving.
//
// A shadow version (see shadow_tap.h) is promoted by an operator or, when
// the model's policy has a promotion rule, by itself once the rule holds;
// the version it replaces stays loaded for the rollback window, within which
// the promoted version is rolled back when its rollback rule is crossed
// (promotion_rules.h). The manager's thread checks the rules every
// rule_check_interval. Each promotion, rollback and closed window is logged,
// counted and handed to the event listener (common/event_message.h).
//
// Inside, the lifecycle is in pieces: a pure version plan decides
// (version_plan.h), a policy store is the one writer of version_policy.json
// (policy_store.h), leases hand a version back when its last request is done
// (version_leases.h), and a state monitor publishes every change
// (version_state_monitor.h), a serving table routes and releases
// (serving_table.h), and a promotion controller runs the shadow and the
// rules (promotion_controller.h). This class owns the thread, the wiring and
// the shutdown order.
//
// Thread-safety: every public method may be called from any thread.
// Resolve() is on the request path: one uncontended mutex and a shared_ptr
// copy.
#ifndef MATID_SERVER_REPOSITORY_MODEL_MANAGER_H_
#define MATID_SERVER_REPOSITORY_MODEL_MANAGER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/event_message.h"
#include "server/backend/model_backend.h"
#include "server/core/metrics.h"
#include "server/core/model_version_state.h"
#include "server/core/serving_model.h"
#include "server/repository/model_repository.h"
#include "server/repository/policy_store.h"
#include "server/repository/promotion_controller.h"
#include "server/repository/serving_table.h"
#include "server/repository/version_leases.h"
#include "server/repository/version_plan.h"
#include "server/repository/version_state_monitor.h"
#include "server/repository/wakeup.h"
#include "server/router/model_control.h"
#include "server/router/model_router.h"
#include "server/shadow/disagreement_folder.h"
#include "server/shadow/promotion_rules.h"
#include "server/shadow/shadow_comparison.h"
#include "server/shadow/shadow_tap.h"

namespace matid {

struct ModelManagerOptions {
  std::string repository;     // REPOSITORY/<model>/<version>/
  std::string default_model;  // serves requests naming no model; empty: the only model
  ServingOptions serving;
  // How often the repository is rescanned; zero: only on RequestReload().
  absl::Duration poll_interval = absl::ZeroDuration();
  // Memory budget for loaded versions, estimated by the size of each
  // version's `model_file` (its weights; activations come on top); 0: none.
  // A version that would not fit beside the loaded ones is refused (FAILED,
  // retried on every rescan) unless unload_first_over_memory: then the
  // model's serving versions are unloaded first (their requests finish) and
  // requests for the model get UNAVAILABLE until the new one is loaded.
  int64_t max_model_memory_bytes = 0;
  bool unload_first_over_memory = false;
  std::string model_file = "model.pt";
  // A shadow version's worker runs only when a core would otherwise idle
  // (SCHED_IDLE), so it never takes CPU from serving; false: normal
  // priority (tests that count every comparison on a busy machine).
  bool shadow_idle_priority = true;
  // How often promotion and rollback rules are checked while a model has one.
  absl::Duration rule_check_interval = absl::Seconds(1);
  // Where images a shadow disagrees on are saved (empty: not saved), and
  // how many and how many megabytes are kept (see disagreement_folder.h).
  std::string shadow_disagreements_dir;
  int shadow_disagreements_max_files = 1000;
  int64_t shadow_disagreements_max_mb = 1024;
  // The time polls, rule checks and rollback windows go by; nullptr: the
  // real clock. Tests pass a fake one and step it (tests/fake_clock.h).
  Clock* clock = nullptr;
};

absl::Status ValidateModelManagerOptions(const ModelManagerOptions& options);

// Loads one version folder into a backend (the torch backend in the server,
// fakes in tests). Called on the manager's thread only.
using BackendLoader =
    std::function<absl::StatusOr<std::unique_ptr<ModelBackend>>(const std::string& version_dir)>;

class ModelManager : public ModelRouter, public ModelControl {
 public:
  // Serves one model that is loaded already (--model_dir): no repository,
  // nothing reloads.
  static absl::StatusOr<std::unique_ptr<ModelManager>> CreateFixed(
      const ServingOptions& options, std::unique_ptr<ModelBackend> backend, ServerMetrics* metrics);

  // Scans and loads the repository before returning; fails when no model
  // version could be loaded (naming each failure), otherwise serves what
  // loaded and keeps watching. `metrics` may be nullptr.
  static absl::StatusOr<std::unique_ptr<ModelManager>> CreateFromRepository(
      const ModelManagerOptions& options, BackendLoader loader, ServerMetrics* metrics);

  // Shutdown(), then releases every version.
  ~ModelManager();

  // Stops watching the repository and drains every version: queued images
  // run, later requests get UNAVAILABLE. Idempotent.
  void Shutdown();

  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // ModelRouter (see model_router.h for each method's contract).
  absl::StatusOr<std::shared_ptr<const ServingModel>> Resolve(absl::string_view model,
                                                              int64_t version) const override;
  std::shared_ptr<const ServingModel> DefaultModel() const override;
  std::vector<ModelVersionStatus> Statuses() const override;
  int queue_depth() const override;
  int in_flight() const override;

  // Rescans the repository soon, on the manager's thread; returns at once.
  void RequestReload();

  // ModelControl (see model_control.h): operator changes, with a repository
  // only. Each writes the model's version_policy.json atomically (so it
  // survives a restart), rescans and waits.
  void ReloadAndWait() override;
  absl::Status Pin(const std::string& model, std::vector<int64_t> versions) override;
  absl::Status Load(const std::string& model, int64_t version) override;
  absl::Status Unload(const std::string& model, int64_t version) override;
  absl::Status SetShadow(const std::string& model, int64_t version, double fraction,
                         std::optional<PromotionRule> promote_when,
                         std::optional<RollbackRule> rollback_when) override;
  absl::Status Promote(const std::string& model) override;
  absl::Status Rollback(const std::string& model) override;
  absl::StatusOr<ShadowReport> Shadow(const std::string& model) const override;

  // Called on the manager's thread after versions changed state (for the
  // grpc.health.v1 per-model status). Set before changes matter.
  void SetChangeListener(std::function<void()> listener);
  // Called with each promotion, rollback and closed rollback window (box_id
  // and message_id left for the listener to fill), on the thread that made
  // the change. Set before changes matter.
  void SetEventListener(std::function<void(EventMessage)> listener);

  // How many times the manager's thread has checked the promotion and
  // rollback rules (every rule_check_interval while a rule is watched), so
  // that a caller can wait for checks rather than for time.
  uint64_t rule_checks_done() const;
  // Waits until rule_checks_done() >= count; false after `timeout` (real
  // time: a test's safety net).
  bool WaitForRuleChecks(uint64_t count, absl::Duration timeout) const;

  // Waits until `holds(Statuses())` is true, evaluated now and after each
  // state change; false after `timeout` (real time: a test's safety net).
  bool WaitUntil(const std::function<bool(const std::vector<ModelVersionStatus>&)>& holds,
                 absl::Duration timeout) const;

 private:
  using Caller = PromotionController::Caller;

  ModelManager(const ModelManagerOptions& options, BackendLoader loader, ServerMetrics* metrics,
               bool fixed, std::shared_ptr<DisagreementFolder> disagreements);

  void Run(absl::Time started);  // the manager thread; deadlines count from `started`
  // Reconciles now (the manager's thread) or waits for the manager's thread
  // to (an operator).
  void Rescan(Caller caller);
  // The policy store's read-modify-write; FAILED_PRECONDITION without a
  // repository.
  absl::StatusOr<RepositoryModel> UpdatePolicy(const std::string& model,
                                               const PolicyStore::Change& change);
  // The versions to serve, chosen from the repository as scanned under the
  // store's lock; nullopt: nothing to change.
  using VersionChoice = std::function<absl::StatusOr<std::optional<std::vector<int64_t>>>(
      const RepositoryModel& scanned)>;
  // Pin, Load and Unload: chooses and writes the policy in one update of
  // the store (so concurrent changes each keep the other's), then rescans.
  absl::Status ChangeVersions(const std::string& model, const VersionChoice& choose);
  int64_t DefaultVersion(const std::string& model) const;
  void Reconcile();
  // One model's reconcile: plans (version_plan.h), acts on the plan one load
  // at a time and plans again, then routes (the serving table, in one step)
  // and hands the policy to the promotion controller.
  void ReconcileModel(const RepositoryModel& model);
  // What the plan needs to know of the model's versions: the available ones,
  // and the FAILED ones not to be tried again now (folder unchanged, folder
  // gone, or tried in this pass: `tried`).
  std::map<int64_t, HeldVersion> HeldVersions(const RepositoryModel& model,
                                              const std::set<int64_t>& tried) const;
  // False (and logged once) when the policy cannot be read.
  bool AcceptPolicy(const std::string& model, const std::string& problem);
  // The plan's last step: the default and the retired versions, then the
  // rules and the shadow.
  void Route(const RepositoryModel& model, const VersionPlan& plan);
  // Loads one version within the memory budget: AVAILABLE or FAILED after.
  void LoadOne(const std::string& model, int64_t version);
  // Loads `dir` and checks its golden images; nothing is routed to it yet.
  absl::StatusOr<std::unique_ptr<ServingModel>> LoadVersion(const std::string& model,
                                                            int64_t version,
                                                            const std::string& dir);
  // Frees the versions whose last lease was dropped (on the manager's thread).
  void ReleaseUnused();
  void NotifyChanged();
  // Makes room for `needed` bytes under the memory budget, unloading the
  // model's versions first when allowed and waiting for their release; the
  // refusal otherwise.
  absl::Status MakeRoom(const std::string& model, int64_t needed);

  const ModelManagerOptions options_;
  Clock& clock_;
  const BackendLoader loader_;
  ServerMetrics* const metrics_;           // or nullptr
  const bool fixed_;                       // --model_dir: one model, no repository
  std::unique_ptr<PolicyStore> policies_;  // or nullptr (fixed); set before serving
  VersionStateMonitor monitor_;
  Wakeup wakeup_;  // the manager thread's
  int clock_subscription_ = 0;
  // Before the table: outlives every lease the table holds.
  std::shared_ptr<VersionLeases> leases_;
  ServingTable table_;
  PromotionController promotions_;  // the shadow taps and the rules

  // Lock order: the policy store's, the promotion controller's, the table's,
  // the leases', the monitor's; mu_ is taken with none of them held.
  mutable std::mutex mu_;                             // std::mutex: visible to ThreadSanitizer
  std::map<std::string, std::string> policy_errors_;  // guarded by mu_: last problem, logged once
  bool stop_ = false;                                 // guarded by mu_
  uint64_t reloads_requested_ = 0;                    // guarded by mu_
  uint64_t reloads_started_ = 0;                      // guarded by mu_
  uint64_t reloads_done_ = 0;                         // guarded by mu_
  uint64_t rule_checks_done_ = 0;                     // guarded by mu_
  std::condition_variable reload_done_;
  mutable std::condition_variable rule_checked_;

  std::thread thread_;  // last: started after everything above exists
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_MODEL_MANAGER_H_
