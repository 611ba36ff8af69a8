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
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : RealClock()),
      loader_(std::move(loader)),
      metrics_(metrics),
      monitor_(metrics),
      leases_(VersionLeases::Create([this] { wakeup_.Notify(); })) {
  clock_subscription_ = clock_.Subscribe([this] { wakeup_.Notify(); });
}

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::CreateFixed(
    const ServingOptions& options, std::unique_ptr<ModelBackend> backend, ServerMetrics* metrics) {
  ModelManagerOptions manager_options;
  manager_options.serving = options;
  std::unique_ptr<ModelManager> manager(new ModelManager(manager_options, nullptr, metrics));
  auto serving = ServingModel::Create(options, std::move(backend), "", "", metrics);
  if (!serving.ok()) return serving.status();
  const ModelIdentity identity = (*serving)->identity();
  {
    std::lock_guard<std::mutex> lock(manager->mu_);
    Entry& entry = manager->EntryLocked(identity.name);
    Slot& slot = entry.versions.try_emplace(1).first->second;
    slot.state = ModelVersionState::kAvailable;  // loaded already: no transition
    slot.model = manager->leases_->Lease(*std::move(serving));
    entry.default_version = 1;
  }
  if (metrics != nullptr) {  // labelled with the model's own version, not 1
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
  manager->policies_ = std::make_unique<PolicyStore>(options.repository);
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

ModelManager::~ModelManager() {
  Shutdown();
  clock_.Unsubscribe(clock_subscription_);
  // The table's leases are the last ones (Shutdown drained every request):
  // dropping them hands each version back, to be freed here.
  {
    std::lock_guard<std::mutex> lock(mu_);
    models_.clear();
  }
  leases_->TakeReleased();
  leases_->Close();
}

void ModelManager::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wakeup_.Notify();
  reload_done_.notify_all();
  rule_checked_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Drain every version: queued images run, later requests get UNAVAILABLE.
  for (const auto& model : Loaded()) model->Drain();
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
  wakeup_.Notify();
}

void ModelManager::ReloadAndWait() {
  std::unique_lock<std::mutex> lock(mu_);
  if (fixed_) return;
  const uint64_t wanted = ++reloads_requested_;
  wakeup_.Notify();
  reload_done_.wait(lock, [&] { return reloads_done_ >= wanted || stop_; });
}

void ModelManager::SetChangeListener(std::function<void()> listener) {
  monitor_.SetChangeListener(std::move(listener));
}

void ModelManager::SetEventListener(std::function<void(EventMessage)> listener) {
  monitor_.SetEventListener(std::move(listener));
}

uint64_t ModelManager::rule_checks_done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rule_checks_done_;
}

bool ModelManager::WaitForRuleChecks(uint64_t count, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return rule_checked_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return rule_checks_done_ >= count || stop_;
  }) && rule_checks_done_ >= count;
}

bool ModelManager::WaitUntil(
    const std::function<bool(const std::vector<ModelVersionStatus>&)>& holds,
    absl::Duration timeout) const {
  return monitor_.WaitUntil([&] { return holds(Statuses()); }, timeout);
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

std::vector<std::shared_ptr<ServingModel>> ModelManager::Loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ServingModel>> loaded;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) loaded.push_back(slot.model);
    }
  }
  for (const Retired& retired : retired_) {
    if (auto serving = retired.serving.lock()) loaded.push_back(std::move(serving));
  }
  return loaded;
}

void ModelManager::Run() {
  const bool polling = options_.poll_interval > absl::ZeroDuration();
  absl::Time next_poll = polling ? clock_.Now() + options_.poll_interval : absl::InfiniteFuture();
  absl::Time next_rule_check = clock_.Now() + options_.rule_check_interval;
  for (;;) {
    const uint64_t seen = wakeup_.generation();
    ReleaseUnused();  // versions whose last request is done
    bool watching = false;
    uint64_t reload = 0;  // the request a reload now serves (0: none)
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      watching = WatchingLocked();
      if (reloads_requested_ > reloads_started_) reload = reloads_requested_;
    }
    const absl::Time now = clock_.Now();
    if (watching && now >= next_rule_check) {
      CheckRules();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++rule_checks_done_;
      }
      rule_checked_.notify_all();
      next_rule_check = clock_.Now() + options_.rule_check_interval;
      continue;
    }
    if (reload != 0 || now >= next_poll) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        reload = reloads_requested_;
        reloads_started_ = reload;
      }
      Reconcile();
      ReleaseUnused();
      {
        std::lock_guard<std::mutex> lock(mu_);
        reloads_done_ = reload;
      }
      reload_done_.notify_all();
      if (polling) next_poll = clock_.Now() + options_.poll_interval;
      continue;
    }
    const absl::Time wake_at = watching ? std::min(next_poll, next_rule_check) : next_poll;
    wakeup_.WaitForChange(seen, wake_at == absl::InfiniteFuture()
                                    ? absl::InfiniteDuration()
                                    : std::max(absl::ZeroDuration(), wake_at - clock_.Now()));
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
  std::set<int64_t> tried;  // loaded or refused in this pass: not tried again in it
  for (;;) {
    const VersionPlan plan = PlanVersions(model, HeldVersions(model, tried),
                                          DefaultVersion(model.name), options_.repository);
    if (!AcceptPolicy(model.name, plan.policy_problem)) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t version : plan.retire_gone) RetireLocked(model.name, version);
    }
    for (const auto& [version, reason] : plan.fail) {
      SetState(model.name, version, ModelVersionState::kFailed, reason);
    }
    if (plan.load == 0) {
      Route(model, plan);
      return;
    }
    tried.insert(plan.load);
    LoadOne(model.name, plan.load);
  }
}

std::map<int64_t, HeldVersion> ModelManager::HeldVersions(const RepositoryModel& model,
                                                          const std::set<int64_t>& tried) const {
  struct Known {
    ModelVersionState state;
    std::string stamp;
    std::string reason;
  };
  std::map<int64_t, Known> known;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto entry = models_.find(model.name);
    if (entry == models_.end()) return {};
    for (const auto& [version, slot] : entry->second.versions) {
      known.emplace(version, Known{slot.state, slot.stamp, slot.reason});
    }
  }
  std::map<int64_t, HeldVersion> held;
  for (const auto& [version, slot] : known) {
    if (slot.state == ModelVersionState::kAvailable) {
      held.emplace(version, HeldVersion{true, ""});
    } else if (slot.state == ModelVersionState::kFailed &&
               (tried.count(version) > 0 || !ContainsVersion(model.versions, version) ||
                slot.stamp ==
                    VersionDirStamp(VersionDir(options_.repository, model.name, version)))) {
      held.emplace(version, HeldVersion{false, slot.reason});
    }
  }
  return held;
}

bool ModelManager::AcceptPolicy(const std::string& model, const std::string& problem) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = EntryLocked(model);
  if (!problem.empty()) {
    if (entry.policy_error != problem)
      LogWarning("%s; model %s keeps its versions", problem, model);
    entry.policy_error = problem;
    return false;
  }
  entry.policy_error.clear();
  return true;
}

void ModelManager::Route(const RepositoryModel& model, const VersionPlan& plan) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = EntryLocked(model.name);
    SetDefaultVersionLocked(model.name, entry, plan.default_version);
    for (int64_t version : plan.retire) RetireLocked(model.name, version);
    entry.promote_when = model.policy.promote_when;
    SetRollbackWindowLocked(entry, model.policy.rollback);
  }
  UpdateShadow(model.name, plan.shadow_version, model.policy.shadow_fraction, plan.shadow_problem);
}

ModelManager::Entry& ModelManager::EntryLocked(const std::string& model) {
  return models_.try_emplace(model).first->second;
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
