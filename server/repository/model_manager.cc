#include "server/repository/model_manager.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "server/core/refusal.h"

namespace matid {
absl::Status ValidateModelManagerOptions(const ModelManagerOptions& options) {
  if (options.repository.empty()) {
    return absl::InvalidArgumentError("--model_repository is empty");
  }
  if (options.max_model_memory_bytes < 0) {
    return absl::InvalidArgumentError("--max_model_memory_mb must be >= 0 (0: no budget)");
  }
  if (options.poll_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--repository_poll_seconds must be >= 0 (0: no polling)");
  }
  return absl::OkStatus();
}

ModelManager::ModelManager(const ModelManagerOptions& options, BackendLoader loader,
                           ServerMetrics* metrics)
    : options_(options), loader_(std::move(loader)), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::CreateFixed(
    const ServingOptions& options, std::unique_ptr<ModelBackend> backend, ServerMetrics* metrics) {
  ModelManagerOptions manager_options;
  manager_options.serving = options;
  std::unique_ptr<ModelManager> manager(new ModelManager(manager_options, nullptr, metrics));
  auto serving = ServingModel::Create(options, std::move(backend), "", "", metrics);
  if (!serving.ok()) return serving.status();
  const ModelIdentity identity = (*serving)->identity();
  Entry& entry = manager->models_[identity.name];
  Slot& slot = entry.versions[1];
  slot.state = ModelVersionState::kAvailable;
  slot.model = std::shared_ptr<ServingModel>(*std::move(serving));
  entry.default_version = 1;
  if (metrics != nullptr) {
    metrics->RecordModelLoad(identity.name, identity.version, true);
    metrics->SetModelVersionState(identity.name, identity.version, "AVAILABLE");
  }
  return manager;
}

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::CreateFromRepository(
    const ModelManagerOptions& options, BackendLoader loader, ServerMetrics* metrics) {
  absl::Status valid = ValidateModelManagerOptions(options);
  if (!valid.ok()) return valid;
  auto scan = ScanModelRepository(options.repository);
  if (!scan.ok()) return scan.status();
  if (scan->empty()) {
    return absl::NotFoundError(absl::StrCat("model repository ", options.repository,
                                            " has no model folders (expected NAME/VERSION/)"));
  }
  std::unique_ptr<ModelManager> manager(new ModelManager(options, std::move(loader), metrics));
  manager->fixed_ = false;
  if (!options.shadow_disagreements_dir.empty()) {
    auto folder = DisagreementFolder::Create(options.shadow_disagreements_dir,
                                             options.shadow_disagreements_max_files,
                                             options.shadow_disagreements_max_mb);
    if (!folder.ok()) return folder.status();
    manager->disagreements_ = *std::move(folder);
  }
  manager->Reconcile();
  std::vector<std::string> problems;
  bool any_available = false;
  for (const ModelVersionStatus& status : manager->Statuses()) {
    if (status.state == ModelVersionState::kAvailable) any_available = true;
    if (status.state == ModelVersionState::kFailed) {
      problems.push_back(absl::StrCat(status.model, "/", status.version, ": ", status.reason));
    }
  }
  if (!any_available) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no model version in ", options.repository, " could be loaded",
        problems.empty() ? " (no version folders)" : ": ", absl::StrJoin(problems, "; ")));
  }
  if (!options.default_model.empty() &&
      manager->Resolve("", 0).status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("--default_model=", options.default_model,
                                            " is not a model of ", options.repository));
  }
  manager->thread_ = std::thread([m = manager.get()] { m->Run(); });
  return manager;
}

ModelManager::~ModelManager() { Shutdown(); }

void ModelManager::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  reload_done_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Queued requests hold references to their version, and the last one
  // must not be dropped on that version's own batcher worker (it would join
  // itself): drain every version while this manager still holds it.
  std::vector<std::shared_ptr<ServingModel>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, entry] : models_) {
      for (auto& [version, slot] : entry.versions) {
        if (slot.model != nullptr) all.push_back(slot.model);
      }
    }
    for (Retired& retired : retired_) {
      if (retired.serving != nullptr) all.push_back(retired.serving);
    }
  }
  for (auto& model : all) model->Drain();
}

absl::StatusOr<std::shared_ptr<const ServingModel>> ModelManager::Resolve(absl::string_view model,
                                                                          int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto names = [this] {
    std::vector<std::string> served;
    for (const auto& [name, entry] : models_) {
      if (entry.default_version != 0) served.push_back(name);
    }
    return absl::StrJoin(served, ", ");
  };
  absl::string_view name = model;
  if (name.empty()) {
    if (!options_.default_model.empty()) {
      name = options_.default_model;
    } else if (models_.size() == 1) {
      name = models_.begin()->first;
    } else {
      return Refusal(absl::InvalidArgumentError(absl::StrCat(
                         "several models are served (", names(),
                         "): name one in the request's model field, or start the server with "
                         "--default_model")),
                     "model_not_named");
    }
  }
  auto found = models_.find(name);
  if (found == models_.end()) {
    return Refusal(
        absl::NotFoundError(absl::StrCat("model '", name, "' is not served; models: ", names())),
        "model_not_found");
  }
  const Entry& entry = found->second;
  if (version == 0) {
    if (entry.default_version == 0) {
      return Refusal(absl::UnavailableError(
                         absl::StrCat("model '", name, "' has no available version (see Health)")),
                     "model_unavailable");
    }
    return entry.versions.at(entry.default_version).model;
  }
  auto slot = entry.versions.find(version);
  if (fixed_ || slot == entry.versions.end() ||
      slot->second.state != ModelVersionState::kAvailable) {
    std::vector<std::string> available;
    for (const auto& [number, candidate] : entry.versions) {
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

std::shared_ptr<const ServingModel> ModelManager::DefaultModel() const {
  auto model = Resolve("", 0);
  return model.ok() ? *std::move(model) : nullptr;
}

std::vector<ModelVersionStatus> ModelManager::Statuses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelVersionStatus> statuses;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      ModelVersionStatus status;
      status.model = name;
      status.version = absl::StrCat(version);
      status.state = slot.state;
      status.reason = slot.reason;
      status.is_default = version == entry.default_version;
      status.is_shadow = entry.tap != nullptr && version == entry.shadow_version;
      status.is_rollback_target =
          entry.rollback.version == version && version != entry.default_version;
      if (slot.model != nullptr) {
        status.identity = slot.model->identity();
        status.version = status.identity.version;
      }
      statuses.push_back(std::move(status));
    }
  }
  for (const Retired& retired : retired_) {
    const auto entry = models_.find(retired.model);
    if (entry != models_.end() && entry->second.versions.count(retired.version) > 0) continue;
    ModelVersionStatus status;
    status.model = retired.model;
    status.identity = retired.identity;
    status.version = status.identity.version;
    status.state = ModelVersionState::kUnloading;
    statuses.push_back(std::move(status));
  }
  return statuses;
}

void ModelManager::RequestReload() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++reloads_requested_;
  }
  wake_.notify_all();
}

void ModelManager::ReloadAndWait() {
  std::unique_lock<std::mutex> lock(mu_);
  if (fixed_) return;
  const uint64_t wanted = ++reloads_requested_;
  wake_.notify_all();
  reload_done_.wait(lock, [&] { return reloads_done_ >= wanted || stop_; });
}

void ModelManager::SetChangeListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

void ModelManager::SetEventListener(std::function<void(EventMessage)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  event_listener_ = std::move(listener);
}

uint64_t ModelManager::rule_checks_done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rule_checks_done_;
}

int ModelManager::queue_depth() const {
  int depth = 0;
  for (const auto& model : Loaded()) depth += model->batcher().queue_depth();
  return depth;
}

int ModelManager::in_flight() const {
  int count = 0;
  for (const auto& model : Loaded()) count += model->batcher().in_flight();
  return count;
}

std::vector<std::shared_ptr<const ServingModel>> ModelManager::Loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const ServingModel>> loaded;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) loaded.push_back(slot.model);
    }
  }
  for (const Retired& retired : retired_) {
    if (retired.serving != nullptr) loaded.push_back(retired.serving);
  }
  return loaded;
}

void ModelManager::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  const bool polling = options_.poll_interval > absl::ZeroDuration();
  absl::Time next_poll = polling ? absl::Now() + options_.poll_interval : absl::InfiniteFuture();
  absl::Time next_rule_check = absl::Now() + options_.rule_check_interval;
  while (!stop_) {
    if (WatchingLocked() && absl::Now() >= next_rule_check) {
      lock.unlock();
      CheckRules();
      lock.lock();
      ++rule_checks_done_;
      next_rule_check = absl::Now() + options_.rule_check_interval;
      continue;
    }
    if (reloads_requested_ > reloads_started_ || absl::Now() >= next_poll) {
      const uint64_t started = reloads_requested_;
      reloads_started_ = started;
      lock.unlock();
      Reconcile();
      ReleaseUnused();
      lock.lock();
      reloads_done_ = started;
      reload_done_.notify_all();
      if (polling) next_poll = absl::Now() + options_.poll_interval;
      continue;
    }
    // Retired versions are released as soon as their last request is done.
    absl::Time wake_at =
        retired_.empty() ? next_poll : std::min(next_poll, absl::Now() + absl::Milliseconds(20));
    if (WatchingLocked()) wake_at = std::min(wake_at, next_rule_check);
    if (wake_at == absl::InfiniteFuture()) {
      wake_.wait(lock);
    } else {
      wake_.wait_for(
          lock, absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), wake_at - absl::Now())));
    }
    if (!retired_.empty()) {
      lock.unlock();
      ReleaseUnused();
      lock.lock();
    }
  }
}

void ModelManager::Reconcile() {
  auto scan = ScanModelRepository(options_.repository);
  if (!scan.ok()) {
    LogWarning(
        "%s", absl::StrCat("cannot rescan: ", scan.status().message(), "; serving what is loaded"));
    return;
  }
  std::set<std::string> present;
  for (const RepositoryModel& model : *scan) {
    present.insert(model.name);
    ReconcileModel(model);
  }
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, entry] : models_) {
      if (present.count(name) > 0) continue;
      if (entry.default_version != 0)
        LogInfo("%s", absl::StrCat("model ", name, " left the repository"));
      entry.default_version = 0;
      std::vector<int64_t> versions;
      for (const auto& [version, slot] : entry.versions) versions.push_back(version);
      for (int64_t version : versions) RetireLocked(name, version);
      gone.push_back(name);
    }
  }
  for (const std::string& name : gone) UpdateShadow(name, 0, 0, "");
  NotifyChanged();
}

void ModelManager::ReconcileModel(const RepositoryModel& model) {
  if (!AcceptPolicy(model)) return;
  std::vector<int64_t> wanted = LoadWantedVersions(model);
  const int64_t rollback_target = LoadRollbackTarget(model, wanted);
  ShadowChoice shadow = LoadShadowVersion(model, wanted);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = models_[model.name];
    if (wanted.empty() && entry.default_version != 0 &&
        ContainsVersion(model.versions, entry.default_version)) {
      wanted.push_back(entry.default_version);  // nothing wanted loads: the old one keeps serving
    }
    const int64_t new_default =
        wanted.empty() ? 0 : *std::max_element(wanted.begin(), wanted.end());
    if (shadow.wanted != 0 && shadow.wanted == new_default) {
      shadow.version = 0;
      shadow.problem = absl::StrCat("shadow version ", shadow.wanted,
                                    " is the default version: nothing to compare it with");
    }
    SetDefaultVersionLocked(model.name, entry, new_default);
    std::vector<int64_t> unwanted;
    for (const auto& [version, slot] : entry.versions) {
      if (slot.state == ModelVersionState::kAvailable && !ContainsVersion(wanted, version) &&
          version != shadow.version && version != rollback_target) {
        unwanted.push_back(version);
      }
    }
    for (int64_t version : unwanted) RetireLocked(model.name, version);
    entry.promote_when = model.policy.promote_when;
    SetRollbackWindowLocked(entry, model.policy.rollback);
  }
  UpdateShadow(model.name, shadow.version, model.policy.shadow_fraction, shadow.problem);
}

bool ModelManager::AcceptPolicy(const RepositoryModel& model) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = models_[model.name];
  if (!model.policy_status.ok()) {
    const std::string problem(model.policy_status.message());
    if (entry.policy_error != problem) {
      LogWarning("%s; model %s keeps its versions", problem, model.name);
    }
    entry.policy_error = problem;
    return false;
  }
  entry.policy_error.clear();
  std::vector<int64_t> gone;
  for (const auto& [version, slot] : entry.versions) {
    if (!ContainsVersion(model.versions, version)) gone.push_back(version);
  }
  for (int64_t version : gone) RetireLocked(model.name, version);
  return true;
}

// The versions the policy wants served that load: the newest that loads
// (latest), or each listed one (FAILED when its folder is missing).
std::vector<int64_t> ModelManager::LoadWantedVersions(const RepositoryModel& model) {
  std::vector<int64_t> wanted;
  if (model.policy.latest()) {
    for (auto version = model.versions.rbegin(); version != model.versions.rend(); ++version) {
      if (EnsureLoaded(model.name, *version)) {
        wanted.push_back(*version);
        break;
      }
    }
    return wanted;
  }
  for (int64_t version : model.policy.versions) {
    if (!ContainsVersion(model.versions, version)) {
      SetState(
          model.name, version, ModelVersionState::kFailed,
          absl::StrCat("version_policy.json names version ", version, " but ",
                       VersionDir(options_.repository, model.name, version), " does not exist"));
    } else if (EnsureLoaded(model.name, version)) {
      wanted.push_back(version);
    }
  }
  return wanted;
}

// A rollback window's target: kept loaded, routed to only when named. 0
// when there is none or it does not load.
int64_t ModelManager::LoadRollbackTarget(const RepositoryModel& model,
                                         const std::vector<int64_t>& wanted) {
  const int64_t target = model.policy.rollback.version;
  if (target == 0 || ContainsVersion(wanted, target)) return target;
  if (!ContainsVersion(model.versions, target) || !EnsureLoaded(model.name, target)) return 0;
  return target;
}

// The shadow version, if the policy names one: loaded beside the serving
// versions, never routed to by default.
ModelManager::ShadowChoice ModelManager::LoadShadowVersion(const RepositoryModel& model,
                                                           const std::vector<int64_t>& wanted) {
  ShadowChoice choice;
  choice.wanted = model.policy.shadow_version;
  if (choice.wanted == 0 || ContainsVersion(wanted, choice.wanted)) return choice;
  if (!ContainsVersion(model.versions, choice.wanted)) {
    choice.problem =
        absl::StrCat("shadow version ", choice.wanted, ": ",
                     VersionDir(options_.repository, model.name, choice.wanted), " does not exist");
  } else if (EnsureLoaded(model.name, choice.wanted)) {
    choice.version = choice.wanted;
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry& entry = models_[model.name];
    const auto slot = entry.versions.find(choice.wanted);
    choice.problem =
        absl::StrCat("shadow version ", choice.wanted,
                     " FAILED: ", slot != entry.versions.end() ? slot->second.reason : "");
  }
  return choice;
}

void ModelManager::SetDefaultVersionLocked(const std::string& model, Entry& entry,
                                           int64_t version) {
  if (version == entry.default_version) return;
  LogInfo("model %s: version %d serves new requests%s", model, version,
          entry.default_version != 0 ? absl::StrCat(" (was ", entry.default_version, ")") : "");
  entry.default_version = version;
}

void ModelManager::SetRollbackWindowLocked(Entry& entry, const RollbackWindow& window) {
  if (window.version != entry.rollback.version ||
      window.promoted_version != entry.rollback.promoted_version ||
      window.until != entry.rollback.until) {
    // A new window (or the server started inside one): count from now.
    const auto promoted = entry.versions.find(window.promoted_version);
    entry.rollback_baseline = promoted != entry.versions.end() && promoted->second.model != nullptr
                                  ? promoted->second.model->outcomes()
                                  : OutcomeSnapshot();
  }
  entry.rollback = window;
}

}  // namespace matid
