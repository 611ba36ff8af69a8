// The routing table of the model manager: each model's versions (state,
// reason, folder stamp, the lease of a loaded one), its default version,
// which version shadows it and which is a rollback target, and the retired
// versions still finishing their requests. Resolve() is the request path.
// A retired version is released when its last lease drops: the leases hand
// it back (version_leases.h) and ReleaseReturned(), on the manager's thread,
// frees it. State changes are checked (IsLegalTransition) and published
// through the monitor. Only the manager's thread changes the table.
// Thread-safety: every method may be called from any thread (one mutex; the
// table calls nothing back while holding it, except the monitor's Record).
#ifndef MATID_SERVER_REPOSITORY_SERVING_TABLE_H_
#define MATID_SERVER_REPOSITORY_SERVING_TABLE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/model_version_state.h"
#include "server/core/serving_model.h"
#include "server/repository/version_leases.h"
#include "server/repository/version_state_monitor.h"
#include "server/router/model_router.h"

namespace matid {

// What the table knows of a version, copied out for the version plan.
struct VersionRecord {
  ModelVersionState state = ModelVersionState::kLoading;
  std::string reason;  // why FAILED
  std::string stamp;   // VersionDirStamp when it was last tried
};

class ServingTable {
 public:
  // `default_model` serves requests naming no model (empty: the only one);
  // `fixed`: one model from --model_dir (no versions to name). `leases` and
  // `monitor` must outlive the table.
  ServingTable(std::string default_model, bool fixed, VersionLeases* leases,
               VersionStateMonitor* monitor);

  // ModelRouter's contracts (model_router.h).
  absl::StatusOr<std::shared_ptr<const ServingModel>> Resolve(absl::string_view model,
                                                              int64_t version) const;
  std::vector<ModelVersionStatus> Statuses() const;
  // Every loaded version, serving or retired.
  std::vector<std::shared_ptr<ServingModel>> Loaded() const;
  // The memory estimate of every loaded version, retired ones included.
  int64_t LoadedBytes() const;

  // The model's default version (0: none).
  int64_t DefaultVersion(const std::string& model) const;
  // The loaded version (nullptr: not loaded or not held).
  std::shared_ptr<ServingModel> Version(const std::string& model, int64_t version) const;
  std::map<int64_t, VersionRecord> Records(const std::string& model) const;
  std::vector<std::string> Models() const;

  // Makes the model's entry (routes nothing yet).
  void AddModel(const std::string& model);
  // Moves a version to `state` (a new version gets a slot); false, logged as
  // a bug, when the move is not legal.
  bool SetState(const std::string& model, int64_t version, ModelVersionState state,
                const std::string& reason);
  void SetStamp(const std::string& model, int64_t version, const std::string& stamp);
  // A LOADING version loaded: leased and AVAILABLE (routed to by name).
  void Install(const std::string& model, int64_t version, std::unique_ptr<ServingModel> serving,
               int64_t bytes);

  // --model_dir's one version: AVAILABLE as version 1 and the default, not
  // published (its metrics carry the model's own version label).
  void InstallFixed(const std::string& model, std::unique_ptr<ServingModel> serving);

  // In one step: the default version, then each of `retire` out of routing.
  void Route(const std::string& model, int64_t default_version, const std::vector<int64_t>& retire);
  // Out of routing; a loaded one is released when its last request is done.
  void Retire(const std::string& model, const std::vector<int64_t>& versions);
  // Retires every loaded version of the model; returns their numbers.
  std::vector<int64_t> RetireLoaded(const std::string& model);
  // Retires every version of each model not in `present`; returns those models.
  std::vector<std::string> RetireModelsExcept(const std::set<std::string>& present);
  // For Statuses(): the version shadowing the default and the rollback
  // target (0: none).
  void SetRoles(const std::string& model, int64_t shadow_version, int64_t rollback_target);

  // Frees the versions whose last lease was dropped; false when there were none.
  bool ReleaseReturned();
  // Drops every lease the table holds (the manager is going).
  void Clear();

 private:
  struct Slot {
    ModelVersionState state = ModelVersionState::kLoading;
    std::string reason;
    std::string stamp;
    std::shared_ptr<ServingModel> model;  // the lease, while AVAILABLE
    int64_t bytes = 0;                    // memory estimate while loaded
  };
  struct Routes {
    std::map<int64_t, Slot> versions;
    int64_t default_version = 0;  // 0: none available
    int64_t shadow_version = 0;
    int64_t rollback_target = 0;
  };
  struct Retired {
    std::string model;
    int64_t version = 0;
    std::weak_ptr<ServingModel> serving;    // its lease, until the last request drops it
    const ServingModel* address = nullptr;  // to know it when it is handed back
    int64_t bytes = 0;
    ModelIdentity identity;
  };

  void RetireLocked(const std::string& model, Routes& routes, int64_t version);
  std::string ServedNamesLocked() const;

  const std::string default_model_;
  const bool fixed_;
  VersionLeases* const leases_;
  VersionStateMonitor* const monitor_;

  mutable std::mutex mu_;
  std::map<std::string, Routes, std::less<>> models_;  // guarded by mu_
  std::vector<Retired> retired_;                       // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_SERVING_TABLE_H_
