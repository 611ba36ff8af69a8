#include "server/repository/model_manager.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/log.h"
#include "server/core/refusal.h"
#include "server/repository/golden_check.h"

namespace matid {
namespace {

bool Contains(const std::vector<int64_t>& versions, int64_t version) {
  return std::find(versions.begin(), versions.end(), version) != versions.end();
}

}  // namespace

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
                                             options.shadow_disagreements_max_files);
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

absl::StatusOr<RepositoryModel> ModelManager::ScanOne(const std::string& model) const {
  if (fixed_) {
    return absl::FailedPreconditionError(
        "the server serves one model from --model_dir: start it with --model_repository");
  }
  auto scan = ScanModelRepository(options_.repository);
  if (!scan.ok()) return scan.status();
  std::vector<std::string> names;
  for (RepositoryModel& candidate : *scan) {
    if (candidate.name == model) return std::move(candidate);
    names.push_back(candidate.name);
  }
  return absl::NotFoundError(absl::StrCat("model '", model, "' is not in ", options_.repository,
                                          "; models: ", absl::StrJoin(names, ", ")));
}

absl::Status ModelManager::WritePolicy(const std::string& model,
                                       const VersionPolicy& policy) const {
  const std::string path = absl::StrCat(options_.repository, "/", model, "/", kVersionPolicyFile);
  const std::string text = VersionPolicyJson(policy);
  if (absl::Status written = WriteFileAtomically(path, text); !written.ok()) return written;
  LogInfo("%s",
          absl::StrCat("model ", model, ": ", path, " now says ", text.substr(0, text.size() - 1)));
  return absl::OkStatus();
}

int64_t ModelManager::DefaultVersion(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto entry = models_.find(model);
  return entry == models_.end() ? 0 : entry->second.default_version;
}

absl::Status ModelManager::Pin(const std::string& model, std::vector<int64_t> versions) {
  return ChangeVersions(model, [&versions](const RepositoryModel&) { return versions; });
}

absl::Status ModelManager::Load(const std::string& model, int64_t version) {
  return ChangeVersions(model, [&](const RepositoryModel& scanned) {
    std::vector<int64_t> versions = scanned.policy.versions;
    const int64_t serving = DefaultVersion(model);
    if (scanned.policy.latest() && serving != 0) versions.push_back(serving);
    versions.push_back(version);
    return versions;
  });
}

absl::Status ModelManager::Unload(const std::string& model, int64_t version) {
  return ChangeVersions(
      model,
      [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<std::vector<int64_t>>> {
        if (scanned.policy.latest()) {
          if (DefaultVersion(model) != version) return std::nullopt;  // not served
          return absl::FailedPreconditionError(
              absl::StrCat("model '", model, "' serves its latest version ", version,
                           " by policy: pin the versions to serve instead (matid-admin pin)"));
        }
        std::vector<int64_t> versions = scanned.policy.versions;
        versions.erase(std::remove(versions.begin(), versions.end(), version), versions.end());
        if (versions.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "version ", version, " is the only one model '", model,
              "' serves: pin another first, or go back to the latest (matid-admin pin ", model,
              ")"));
        }
        return versions;
      });
}

absl::Status ModelManager::ChangeVersions(const std::string& model, const VersionChoice& choose) {
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  auto chosen = choose(*scanned);
  if (!chosen.ok()) return chosen.status();
  if (!chosen->has_value()) return absl::OkStatus();
  std::vector<int64_t> versions = **std::move(chosen);
  for (int64_t version : versions) {
    if (!Contains(scanned->versions, version)) {
      return absl::NotFoundError(
          absl::StrCat("model '", model, "' has no version folder ", version,
                       "; versions: ", absl::StrJoin(scanned->versions, ", ")));
    }
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  VersionPolicy policy = scanned->policy;  // its shadow stays as it is
  policy.versions = versions;
  absl::Status written = WritePolicy(model, policy);
  policy_lock.unlock();
  if (!written.ok()) return written;
  ReloadAndWait();
  // Back to latest always succeeds: it serves the highest version that loads.
  for (const ModelVersionStatus& status : Statuses()) {
    if (status.model == model && status.state == ModelVersionState::kFailed &&
        Contains(versions, std::stoll(status.version))) {
      // Put the policy back, so the file says what serves, unless another
      // change has written it since.
      bool restored = false;
      {
        std::lock_guard<std::mutex> restore_lock(policy_mu_);
        auto now = ScanOne(model);
        restored = scanned->policy_status.ok() && now.ok() && now->policy.versions == versions &&
                   WritePolicy(model, scanned->policy).ok();
      }
      if (restored) ReloadAndWait();  // not under policy_mu_: the rules take it
      return absl::FailedPreconditionError(absl::StrCat("model '", model, "' version ",
                                                        status.version, " FAILED: ", status.reason,
                                                        " (version_policy.json left as it was)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ModelManager::SetShadow(const std::string& model, int64_t version, double fraction,
                                     std::optional<PromotionRule> promote_when,
                                     std::optional<RollbackRule> rollback_when) {
  if (promote_when.has_value()) {
    if (absl::Status valid = ValidatePromotionRule(*promote_when); !valid.ok()) return valid;
  }
  if (rollback_when.has_value()) {
    if (absl::Status valid = ValidateRollbackRule(*rollback_when); !valid.ok()) return valid;
  }
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  if (version != 0 && !Contains(scanned->versions, version)) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no version folder ", version,
                     "; versions: ", absl::StrJoin(scanned->versions, ", ")));
  }
  if (version != 0 && !(fraction > 0 && fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shadow fraction ", fraction, " must be in (0, 1]"));
  }
  VersionPolicy policy = scanned->policy;
  policy.shadow_version = version;
  policy.shadow_fraction = version != 0 ? fraction : 0;
  policy.promote_when = version != 0 ? promote_when : std::nullopt;
  policy.rollback_when =
      version != 0 && rollback_when.has_value() ? *rollback_when : RollbackRule();
  absl::Status written = WritePolicy(model, policy);
  policy_lock.unlock();
  if (!written.ok()) return written;
  ReloadAndWait();
  if (version == 0) return absl::OkStatus();
  std::string problem;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry& entry = models_[model];
    if (entry.tap != nullptr && entry.shadow_version == version) return absl::OkStatus();
    problem = entry.shadow_problem.empty() ? "it did not start" : entry.shadow_problem;
  }
  if (scanned->policy_status.ok() && WritePolicy(model, scanned->policy).ok()) ReloadAndWait();
  return absl::FailedPreconditionError(
      absl::StrCat("model '", model, "': ", problem, " (version_policy.json left as it was)"));
}

absl::StatusOr<ShadowReport> ModelManager::Shadow(const std::string& model) const {
  std::shared_ptr<const ShadowTap> tap;
  ShadowReport report;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto found = models_.find(model);
    if (found == models_.end()) {
      return absl::NotFoundError(absl::StrCat("model '", model, "' is not served"));
    }
    const Entry& entry = found->second;
    tap = entry.tap;
    auto primary = entry.tap_primary.lock();
    auto shadow = entry.tap_shadow.lock();
    if (tap == nullptr || primary == nullptr || shadow == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", model, "' has no shadow version",
                       entry.shadow_problem.empty() ? " (set one with matid-admin shadow)"
                                                    : absl::StrCat(": ", entry.shadow_problem)));
    }
    report.model = model;
    report.primary_version = primary->identity().version;
    report.shadow_version = shadow->identity().version;
    report.fraction = entry.shadow_fraction;
    report.labels = primary->info().labels;
    report.promote_when = entry.promote_when;
    if (disagreements_ != nullptr) report.disagreements_dir = disagreements_->dir();
  }
  report.comparison = tap->comparison().Snapshot();
  return report;
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
        Contains(model.versions, entry.default_version)) {
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
      if (slot.state == ModelVersionState::kAvailable && !Contains(wanted, version) &&
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
    if (!Contains(model.versions, version)) gone.push_back(version);
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
    if (!Contains(model.versions, version)) {
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
  if (target == 0 || Contains(wanted, target)) return target;
  if (!Contains(model.versions, target) || !EnsureLoaded(model.name, target)) return 0;
  return target;
}

// The shadow version, if the policy names one: loaded beside the serving
// versions, never routed to by default.
ModelManager::ShadowChoice ModelManager::LoadShadowVersion(const RepositoryModel& model,
                                                           const std::vector<int64_t>& wanted) {
  ShadowChoice choice;
  choice.wanted = model.policy.shadow_version;
  if (choice.wanted == 0 || Contains(wanted, choice.wanted)) return choice;
  if (!Contains(model.versions, choice.wanted)) {
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

void ModelManager::UpdateShadow(const std::string& model, int64_t shadow_version, double fraction,
                                std::string problem) {
  std::shared_ptr<ServingModel> primary;
  std::shared_ptr<ServingModel> shadow;
  std::shared_ptr<ServingModel> old_primary;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = models_[model];
    if (entry.default_version != 0) primary = entry.versions[entry.default_version].model;
    if (shadow_version != 0) shadow = entry.versions[shadow_version].model;
    if (primary == nullptr || shadow == nullptr) shadow_version = 0;
    if (shadow_version == 0) shadow.reset();
    entry.shadow_problem = problem;
    if (entry.tap_primary.lock() == primary && entry.tap_shadow.lock() == shadow &&
        entry.shadow_version == shadow_version && entry.shadow_fraction == fraction) {
      return;  // as it is
    }
    old_primary = entry.tap_primary.lock();
  }
  if (old_primary != nullptr && old_primary != primary) old_primary->SetShadow(nullptr);
  std::shared_ptr<const ShadowTap> tap;
  if (shadow != nullptr) {
    auto comparison =
        std::make_shared<ShadowComparison>(static_cast<int>(primary->info().labels.size()));
    ShadowCounters counters = metrics_ != nullptr ? metrics_->ShadowCountersFor(
                                                        primary->info(), shadow->identity().version)
                                                  : ShadowCounters();
    BatcherOptions batcher = options_.serving.batcher;
    batcher.idle_priority = options_.shadow_idle_priority;
    auto created =
        ShadowTap::Create(primary->info(), primary->identity().version, shadow, fraction, batcher,
                          std::move(comparison), std::move(counters), disagreements_);
    if (created.ok()) {
      tap = *std::move(created);
      LogInfo("%s", absl::StrCat("model ", model, ": version ", shadow_version, " shadows version ",
                                 primary->identity().version, " on ", fraction, " of its images"));
    } else {
      problem = absl::StrCat("shadow version ", shadow_version,
                             " cannot shadow: ", created.status().message());
      LogWarning("%s", absl::StrCat("model ", model, ": ", problem));
    }
  } else if (!problem.empty()) {
    LogWarning("%s", absl::StrCat("model ", model, ": ", problem));
  }
  if (primary != nullptr) primary->SetShadow(tap);
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = models_[model];
  entry.tap = std::move(tap);
  entry.tap_primary = primary;
  entry.tap_shadow = shadow;
  entry.shadow_version = shadow_version;
  entry.shadow_fraction = fraction;
  entry.shadow_problem = problem;
}

bool ModelManager::EnsureLoaded(const std::string& model, int64_t version) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (models_[model].versions[version].state == ModelVersionState::kAvailable) return true;
  }
  // Only the manager thread changes slots, so the state read above holds.
  const std::string dir = VersionDir(options_.repository, model, version);
  const std::string stamp = VersionDirStamp(dir);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    if (slot.state == ModelVersionState::kFailed && slot.stamp == stamp) return false;
    slot.stamp = stamp;
  }
  std::error_code ignored;
  const int64_t bytes =
      static_cast<int64_t>(std::filesystem::file_size(dir + "/" + options_.model_file, ignored));
  if (absl::Status room = MakeRoom(model, ignored ? 0 : bytes); !room.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      Slot& slot = models_[model].versions[version];
      if (slot.reason != room.message()) {
        LogWarning("%s", absl::StrCat("model ", model, " version ", version, " ", room.message()));
      }
      slot.stamp.clear();  // memory may free up: try again on the next rescan
    }
    SetState(model, version, ModelVersionState::kFailed, std::string(room.message()));
    return false;
  }
  SetState(model, version, ModelVersionState::kLoading, "");
  NotifyChanged();
  LogInfo("%s", absl::StrCat("model ", model, " version ", version, ": loading ", dir));
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ServingModel>> serving = absl::UnknownError("not loaded");
  {
    // The loader works at lower priority on a thread of its own (the torch
    // backend's loading thread); the new version's batcher workers, started
    // on this thread below, serve at normal priority.
    absl::StatusOr<std::unique_ptr<ModelBackend>> backend = loader_(dir);
    serving = backend.ok() ? ServingModel::Create(options_.serving, *std::move(backend), model,
                                                  absl::StrCat(version), metrics_)
                           : backend.status();
  }
  if (serving.ok()) {  // before it serves: its golden images, if it has any
    if (absl::Status golden = CheckGoldenImages(dir, **serving); !golden.ok()) serving = golden;
  }
  if (metrics_ != nullptr) metrics_->RecordModelLoad(model, absl::StrCat(version), serving.ok());
  if (!serving.ok()) {
    LogWarning("%s", absl::StrCat("model ", model, " version ", version,
                                  " FAILED: ", serving.status().message()));
    SetState(model, version, ModelVersionState::kFailed, std::string(serving.status().message()));
    return false;
  }
  LogInfo("%s",
          absl::StrCat("model ", model, " version ", version, ": AVAILABLE (",
                       (*serving)->identity().variant, ", sha256 ", (*serving)->identity().sha256,
                       ") after ", absl::FormatDuration(absl::Now() - start)));
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    slot.model = std::shared_ptr<ServingModel>(*std::move(serving));
    slot.bytes = ignored ? 0 : bytes;
  }
  SetState(model, version, ModelVersionState::kAvailable, "");
  return true;
}

void ModelManager::SetState(const std::string& model, int64_t version, ModelVersionState state,
                            const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    slot.state = state;
    slot.reason = reason;
  }
  if (metrics_ != nullptr) {
    metrics_->SetModelVersionState(model, absl::StrCat(version), ModelVersionStateName(state));
  }
}

void ModelManager::RetireLocked(const std::string& model, int64_t version) {
  Entry& entry = models_[model];
  auto slot = entry.versions.find(version);
  if (slot == entry.versions.end()) return;
  if (entry.default_version == version) entry.default_version = 0;
  if (slot->second.model == nullptr) {  // FAILED or never loaded: nothing to release
    entry.versions.erase(slot);
    if (metrics_ != nullptr) metrics_->SetModelVersionState(model, absl::StrCat(version), "");
    return;
  }
  LogInfo("%s", absl::StrCat("model ", model, " version ", version,
                             ": UNLOADING (released when its last request is done)"));
  const ModelIdentity identity = slot->second.model->identity();
  retired_.push_back({model, version, std::move(slot->second.model), slot->second.bytes, identity});
  entry.versions.erase(slot);
  if (metrics_ != nullptr) {
    metrics_->SetModelVersionState(model, absl::StrCat(version), "UNLOADING");
  }
}

void ModelManager::ReleaseUnused() {
  // Taken out of their entries under the lock; the entries stay listed
  // (UNLOADING, counted in the memory budget) until the memory is freed.
  std::vector<std::shared_ptr<ServingModel>> releasing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Retired& retired : retired_) {
      // Only this list holds it, and nothing can take a new reference (it
      // is out of routing): its last request is done.
      if (retired.serving != nullptr && retired.serving.use_count() == 1) {
        releasing.push_back(std::move(retired.serving));
      }
    }
  }
  if (releasing.empty()) return;
  releasing.clear();  // drains (nothing is queued) and frees each model
  // Hand the freed weights back to the kernel: the server keeps freed memory
  // on its heaps (malloc_tuning.h), so without this every arena a load
  // touched would hold its high-water mark across swaps.
  malloc_trim(0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->serving != nullptr) {
        ++it;
        continue;
      }
      LogInfo("%s", absl::StrCat("model ", it->model, " version ", it->version, ": released"));
      const auto entry = models_.find(it->model);
      const bool reloaded = entry != models_.end() && entry->second.versions.count(it->version) > 0;
      if (metrics_ != nullptr && !reloaded) {
        metrics_->SetModelVersionState(it->model, absl::StrCat(it->version), "");
      }
      it = retired_.erase(it);
    }
    for (auto it = models_.begin(); it != models_.end();) {
      it = it->second.versions.empty() && it->second.default_version == 0 ? models_.erase(it)
                                                                          : std::next(it);
    }
  }
  NotifyChanged();
}

int64_t ModelManager::LoadedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t total = 0;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) total += slot.bytes;
    }
  }
  for (const Retired& retired : retired_) total += retired.bytes;
  return total;
}

absl::Status ModelManager::MakeRoom(const std::string& model, int64_t needed) {
  const int64_t limit = options_.max_model_memory_bytes;
  auto over = [&] { return limit > 0 && LoadedBytes() + needed > limit; };
  auto refusal = [&](absl::string_view why) {
    constexpr int64_t kMiB = 1 << 20;
    return absl::ResourceExhaustedError(
        absl::StrCat("not loaded: its ", (needed + kMiB - 1) / kMiB, " MiB ", why,
                     " would exceed --max_model_memory_mb=", limit / kMiB));
  };
  if (!over()) return absl::OkStatus();
  if (!options_.unload_first_over_memory) {
    return refusal(absl::StrCat(
        "beside the ", LoadedBytes() >> 20,
        " MiB loaded (--unload_first_over_memory unloads the serving version first, answering "
        "UNAVAILABLE meanwhile)"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = models_[model];
    std::vector<int64_t> loaded;
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) loaded.push_back(version);
    }
    LogInfo("%s", absl::StrCat("model ", model, ": unloading ", absl::StrJoin(loaded, ", "),
                               " first to make room (--unload_first_over_memory)"));
    for (int64_t version : loaded) RetireLocked(model, version);
  }
  NotifyChanged();
  // Their admitted requests finish, then they are released.
  for (int i = 0; i < 6000 && over(); ++i) {
    ReleaseUnused();
    if (!over()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return over() ? refusal("even with the model's other versions unloaded") : absl::OkStatus();
}

void ModelManager::NotifyChanged() {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = listener_;
  }
  if (listener) listener();
}

}  // namespace matid
