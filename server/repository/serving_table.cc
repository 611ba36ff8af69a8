#include "server/repository/serving_table.h"

#include <malloc.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "server/core/refusal.h"

namespace matid {

ServingTable::ServingTable(std::string default_model, bool fixed, VersionLeases* leases,
                           VersionStateMonitor* monitor)
    : default_model_(std::move(default_model)), fixed_(fixed), leases_(leases), monitor_(monitor) {}

std::string ServingTable::ServedNamesLocked() const {
  std::vector<std::string> served;
  for (const auto& [name, routes] : models_) {
    if (routes.default_version != 0) served.push_back(name);
  }
  return absl::StrJoin(served, ", ");
}

absl::StatusOr<std::shared_ptr<const ServingModel>> ServingTable::Resolve(absl::string_view model,
                                                                          int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  absl::string_view name = model;
  if (name.empty()) {
    if (!default_model_.empty()) {
      name = default_model_;
    } else if (models_.size() == 1) {
      name = models_.begin()->first;
    } else {
      return Refusal(absl::InvalidArgumentError(absl::StrCat(
                         "several models are served (", ServedNamesLocked(),
                         "): name one in the request's model field, or start the server with "
                         "--default_model")),
                     "model_not_named");
    }
  }
  const auto found = models_.find(name);
  if (found == models_.end()) {
    return Refusal(absl::NotFoundError(absl::StrCat(
                       "model '", name, "' is not served; models: ", ServedNamesLocked())),
                   "model_not_found");
  }
  const Routes& routes = found->second;
  if (version == 0) {
    if (routes.default_version == 0) {
      return Refusal(absl::UnavailableError(
                         absl::StrCat("model '", name, "' has no available version (see Health)")),
                     "model_unavailable");
    }
    return routes.versions.at(routes.default_version).model;
  }
  const auto slot = routes.versions.find(version);
  if (fixed_ || slot == routes.versions.end() ||
      slot->second.state != ModelVersionState::kAvailable) {
    std::vector<std::string> available;
    for (const auto& [number, candidate] : routes.versions) {
      if (candidate.state == ModelVersionState::kAvailable) {
        available.push_back(candidate.model->identity().version);
      }
    }
    return Refusal(
        absl::NotFoundError(absl::StrCat(
            "model '", name, "' has no available version ", version,
            "; available: ", absl::StrJoin(available, ", "),
            fixed_ ? " (served from --model_dir: pin versions with --model_repository)" : "")),
        "model_not_found");
  }
  return slot->second.model;
}

std::vector<ModelVersionStatus> ServingTable::Statuses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelVersionStatus> statuses;
  for (const auto& [name, routes] : models_) {
    for (const auto& [version, slot] : routes.versions) {
      ModelVersionStatus status;
      status.model = name;
      status.version = absl::StrCat(version);
      status.state = slot.state;
      status.reason = slot.reason;
      status.is_default = version == routes.default_version;
      status.is_shadow = version == routes.shadow_version;
      status.is_rollback_target =
          version == routes.rollback_target && version != routes.default_version;
      if (slot.model != nullptr) {
        status.identity = slot.model->identity();
        status.version = status.identity.version;
      }
      statuses.push_back(std::move(status));
    }
  }
  for (const Retired& retired : retired_) {
    const auto routes = models_.find(retired.model);
    if (routes != models_.end() && routes->second.versions.count(retired.version) > 0) continue;
    ModelVersionStatus status;
    status.model = retired.model;
    status.identity = retired.identity;
    status.version = status.identity.version;
    status.state = ModelVersionState::kUnloading;
    statuses.push_back(std::move(status));
  }
  return statuses;
}

std::vector<std::shared_ptr<ServingModel>> ServingTable::Loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ServingModel>> loaded;
  for (const auto& [name, routes] : models_) {
    for (const auto& [version, slot] : routes.versions) {
      if (slot.model != nullptr) loaded.push_back(slot.model);
    }
  }
  for (const Retired& retired : retired_) {
    if (auto serving = retired.serving.lock()) loaded.push_back(std::move(serving));
  }
  return loaded;
}

int64_t ServingTable::LoadedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t total = 0;
  for (const auto& [name, routes] : models_) {
    for (const auto& [version, slot] : routes.versions) {
      if (slot.model != nullptr) total += slot.bytes;
    }
  }
  for (const Retired& retired : retired_) total += retired.bytes;
  return total;
}

int64_t ServingTable::DefaultVersion(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto routes = models_.find(model);
  return routes == models_.end() ? 0 : routes->second.default_version;
}

std::shared_ptr<ServingModel> ServingTable::Version(const std::string& model,
                                                    int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto routes = models_.find(model);
  if (routes == models_.end()) return nullptr;
  const auto slot = routes->second.versions.find(version);
  return slot == routes->second.versions.end() ? nullptr : slot->second.model;
}

std::map<int64_t, VersionRecord> ServingTable::Records(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<int64_t, VersionRecord> records;
  const auto routes = models_.find(model);
  if (routes == models_.end()) return records;
  for (const auto& [version, slot] : routes->second.versions) {
    records.emplace(version, VersionRecord{slot.state, slot.reason, slot.stamp});
  }
  return records;
}

std::vector<std::string> ServingTable::Models() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, routes] : models_) names.push_back(name);
  return names;
}

void ServingTable::AddModel(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  models_.try_emplace(model);
}

bool ServingTable::SetState(const std::string& model, int64_t version, ModelVersionState state,
                            const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& versions = models_.try_emplace(model).first->second.versions;
    const auto found = versions.find(version);
    const std::optional<ModelVersionState> from =
        found == versions.end() ? std::nullopt : std::optional(found->second.state);
    if (!IsLegalTransition(from, state)) {
      LogError("bug: model %s version %d: %s -> %s is not a legal transition; not made", model,
               version, from.has_value() ? ModelVersionStateName(*from) : "(new)",
               ModelVersionStateName(state));
      return false;
    }
    Slot& slot = versions.try_emplace(version).first->second;  // a new version's slot
    slot.state = state;
    slot.reason = reason;
  }
  monitor_->Record(model, version, ModelVersionStateName(state));
  return true;
}

void ServingTable::SetStamp(const std::string& model, int64_t version, const std::string& stamp) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto routes = models_.find(model);
  if (routes == models_.end()) return;
  const auto slot = routes->second.versions.find(version);
  if (slot != routes->second.versions.end()) slot->second.stamp = stamp;
}

void ServingTable::Install(const std::string& model, int64_t version,
                           std::unique_ptr<ServingModel> serving, int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot =
        models_.try_emplace(model).first->second.versions.try_emplace(version).first->second;
    slot.model = leases_->Lease(std::move(serving));
    slot.bytes = bytes;
  }
  SetState(model, version, ModelVersionState::kAvailable, "");
}

void ServingTable::InstallFixed(const std::string& model, std::unique_ptr<ServingModel> serving) {
  std::lock_guard<std::mutex> lock(mu_);
  Routes& routes = models_.try_emplace(model).first->second;
  Slot& slot = routes.versions.try_emplace(1).first->second;
  slot.state = ModelVersionState::kAvailable;  // loaded already: no transition
  slot.model = leases_->Lease(std::move(serving));
  routes.default_version = 1;
}

void ServingTable::Route(const std::string& model, int64_t default_version,
                         const std::vector<int64_t>& retire) {
  std::lock_guard<std::mutex> lock(mu_);
  Routes& routes = models_.try_emplace(model).first->second;
  if (default_version != routes.default_version) {
    LogInfo("model %s: version %d serves new requests%s", model, default_version,
            routes.default_version != 0 ? absl::StrCat(" (was ", routes.default_version, ")") : "");
    routes.default_version = default_version;
  }
  for (int64_t version : retire) RetireLocked(model, routes, version);
}

void ServingTable::Retire(const std::string& model, const std::vector<int64_t>& versions) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto routes = models_.find(model);
  if (routes == models_.end()) return;
  for (int64_t version : versions) RetireLocked(model, routes->second, version);
}

std::vector<int64_t> ServingTable::RetireLoaded(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> loaded;
  const auto routes = models_.find(model);
  if (routes == models_.end()) return loaded;
  for (const auto& [version, slot] : routes->second.versions) {
    if (slot.model != nullptr) loaded.push_back(version);
  }
  for (int64_t version : loaded) RetireLocked(model, routes->second, version);
  return loaded;
}

std::vector<std::string> ServingTable::RetireModelsExcept(const std::set<std::string>& present) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> gone;
  for (auto& [name, routes] : models_) {
    if (present.count(name) > 0) continue;
    if (routes.default_version != 0) LogInfo("model %s left the repository", name);
    routes.default_version = 0;
    std::vector<int64_t> versions;
    for (const auto& [version, slot] : routes.versions) versions.push_back(version);
    for (int64_t version : versions) RetireLocked(name, routes, version);
    gone.push_back(name);
  }
  return gone;
}

void ServingTable::SetRoles(const std::string& model, int64_t shadow_version,
                            int64_t rollback_target) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto routes = models_.find(model);
  if (routes == models_.end()) return;
  routes->second.shadow_version = shadow_version;
  routes->second.rollback_target = rollback_target;
}

void ServingTable::RetireLocked(const std::string& model, Routes& routes, int64_t version) {
  const auto slot = routes.versions.find(version);
  if (slot == routes.versions.end()) return;
  if (routes.default_version == version) routes.default_version = 0;
  if (slot->second.model == nullptr) {  // FAILED or never loaded: nothing to release
    routes.versions.erase(slot);
    monitor_->Record(model, version, "");
    return;
  }
  LogInfo("model %s version %d: UNLOADING (released when its last request is done)", model,
          version);
  const std::shared_ptr<ServingModel>& lease = slot->second.model;
  retired_.push_back({model, version, lease, lease.get(), slot->second.bytes, lease->identity()});
  // Its lease goes with the slot: when the last request drops its own, the
  // version is handed back and released (ReleaseReturned).
  routes.versions.erase(slot);
  monitor_->Record(model, version, "UNLOADING");
}

bool ServingTable::ReleaseReturned() {
  std::vector<std::unique_ptr<ServingModel>> released = leases_->TakeReleased();
  if (released.empty()) return false;
  std::set<const ServingModel*> addresses;
  for (const auto& model : released) addresses.insert(model.get());
  released.clear();  // drains (nothing is queued) and frees each model
  // Hand the freed weights back to the kernel: the server keeps freed memory
  // on its heaps (malloc_tuning.h), so without this every arena a load
  // touched would hold its high-water mark across swaps.
  malloc_trim(0);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (addresses.count(it->address) == 0) {
      ++it;
      continue;
    }
    LogInfo("model %s version %d: released", it->model, it->version);
    const auto routes = models_.find(it->model);
    const bool reloaded = routes != models_.end() && routes->second.versions.count(it->version) > 0;
    if (!reloaded) monitor_->Record(it->model, it->version, "");
    it = retired_.erase(it);
  }
  for (auto it = models_.begin(); it != models_.end();) {
    it = it->second.versions.empty() && it->second.default_version == 0 ? models_.erase(it)
                                                                        : std::next(it);
  }
  return true;
}

void ServingTable::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  models_.clear();
}

}  // namespace matid
