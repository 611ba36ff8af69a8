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

namespace {

BatcherOptions ShadowBatcherOptions(const ModelManagerOptions& options) {
  BatcherOptions batcher = options.serving.batcher;
  batcher.idle_priority = options.shadow_idle_priority;
  return batcher;
}

}  // namespace

ModelManager::ModelManager(const ModelManagerOptions& options, BackendLoader loader,
                           ServerMetrics* metrics, bool fixed,
                           std::shared_ptr<DisagreementFolder> disagreements)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : RealClock()),
      loader_(std::move(loader)),
      metrics_(metrics),
      fixed_(fixed),
      monitor_(metrics),
      leases_(VersionLeases::Create([this] { wakeup_.Notify(); })),
      table_(options.default_model, fixed, leases_.get(), &monitor_),
      promotions_({ShadowBatcherOptions(options), &clock_, &table_, &monitor_, metrics,
                   std::move(disagreements),
                   [this](const std::string& model, const PolicyStore::Change& change) {
                     return UpdatePolicy(model, change);
                   },
                   [this](Caller caller) { Rescan(caller); }}) {
  clock_subscription_ = clock_.Subscribe([this] { wakeup_.Notify(); });
}

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::CreateFixed(
    const ServingOptions& options, std::unique_ptr<ModelBackend> backend, ServerMetrics* metrics) {
  ModelManagerOptions manager_options;
  manager_options.serving = options;
  std::unique_ptr<ModelManager> manager(
      new ModelManager(manager_options, nullptr, metrics, /*fixed=*/true, nullptr));
  auto serving = ServingModel::Create(options, std::move(backend), "", "", metrics);
  if (!serving.ok()) return serving.status();
  const ModelIdentity identity = (*serving)->identity();
  manager->table_.InstallFixed(identity.name, *std::move(serving));
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
  std::shared_ptr<DisagreementFolder> disagreements;
  if (!options.shadow_disagreements_dir.empty()) {
    auto folder = DisagreementFolder::Create(options.shadow_disagreements_dir,
                                             options.shadow_disagreements_max_files,
                                             options.shadow_disagreements_max_mb);
    if (!folder.ok()) return folder.status();
    disagreements = *std::move(folder);
  }
  std::unique_ptr<ModelManager> manager(new ModelManager(
      options, std::move(loader), metrics, /*fixed=*/false, std::move(disagreements)));
  manager->policies_ = std::make_unique<PolicyStore>(options.repository);
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
  // The first poll and rule check count from now, not from whenever the
  // thread gets to run (a test's clock may have moved by then).
  manager->thread_ = std::thread([m = manager.get(), now = manager->clock_.Now()] { m->Run(now); });
  return manager;
}

ModelManager::~ModelManager() {
  Shutdown();
  clock_.Unsubscribe(clock_subscription_);
  // The table's leases and the shadow taps' are the last ones (Shutdown
  // drained every request): dropping them hands each version back, to be
  // freed here.
  promotions_.Clear();
  table_.Clear();
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
  for (const auto& model : table_.Loaded()) model->Drain();
}

absl::StatusOr<std::shared_ptr<const ServingModel>> ModelManager::Resolve(absl::string_view model,
                                                                          int64_t version) const {
  return table_.Resolve(model, version);
}

std::shared_ptr<const ServingModel> ModelManager::DefaultModel() const {
  auto model = Resolve("", 0);
  return model.ok() ? *std::move(model) : nullptr;
}

std::vector<ModelVersionStatus> ModelManager::Statuses() const { return table_.Statuses(); }

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
  for (const auto& model : table_.Loaded()) depth += model->batcher().queue_depth();
  return depth;
}

int ModelManager::in_flight() const {
  int count = 0;
  for (const auto& model : table_.Loaded()) count += model->batcher().in_flight();
  return count;
}

void ModelManager::Run(absl::Time started) {
  const bool polling = options_.poll_interval > absl::ZeroDuration();
  absl::Time next_poll = polling ? started + options_.poll_interval : absl::InfiniteFuture();
  absl::Time next_rule_check = started + options_.rule_check_interval;
  for (;;) {
    const uint64_t seen = wakeup_.generation();
    ReleaseUnused();  // versions whose last request is done
    bool watching = false;
    uint64_t reload = 0;  // the request a reload now serves (0: none)
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (reloads_requested_ > reloads_started_) reload = reloads_requested_;
    }
    watching = promotions_.Watching();
    const absl::Time now = clock_.Now();
    if (watching && now >= next_rule_check) {
      promotions_.CheckRules();
      // Read before the check is counted: a caller waiting for the count may
      // move a fake clock at once, and that move is the next interval's.
      next_rule_check = clock_.Now() + options_.rule_check_interval;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++rule_checks_done_;
      }
      rule_checked_.notify_all();
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
      if (polling) next_poll = clock_.Now() + options_.poll_interval;  // before it is counted
      {
        std::lock_guard<std::mutex> lock(mu_);
        reloads_done_ = reload;
      }
      reload_done_.notify_all();
      continue;
    }
    const absl::Time wake_at = watching ? std::min(next_poll, next_rule_check) : next_poll;
    wakeup_.WaitForChange(
        seen, wake_at == absl::InfiniteFuture()
                  ? absl::InfiniteDuration()
                  : clock_.RealWaitFor(std::max(absl::ZeroDuration(), wake_at - clock_.Now())));
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
  for (const std::string& name : table_.RetireModelsExcept(present)) promotions_.Forget(name);
  NotifyChanged();
}

void ModelManager::ReconcileModel(const RepositoryModel& model) {
  std::set<int64_t> tried;  // loaded or refused in this pass: not tried again in it
  for (;;) {
    const VersionPlan plan = PlanVersions(model, HeldVersions(model, tried),
                                          table_.DefaultVersion(model.name), options_.repository);
    if (!AcceptPolicy(model.name, plan.policy_problem)) return;
    table_.Retire(model.name, plan.retire_gone);
    for (const auto& [version, reason] : plan.fail) {
      table_.SetState(model.name, version, ModelVersionState::kFailed, reason);
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
  std::map<int64_t, HeldVersion> held;
  const std::map<int64_t, VersionRecord> records = table_.Records(model.name);
  for (const auto& [version, record] : records) {
    if (record.state == ModelVersionState::kAvailable) {
      held.emplace(version, HeldVersion{true, ""});
    } else if (tried.count(version) > 0 ||
               (record.state == ModelVersionState::kFailed &&
                (!ContainsVersion(model.versions, version) ||
                 record.stamp ==
                     VersionDirStamp(VersionDir(options_.repository, model.name, version))))) {
      held.emplace(version, HeldVersion{false, record.reason});
    }
  }
  // Tried in this pass and not AVAILABLE: not tried again in it, whatever
  // became of it (so a pass always ends).
  for (int64_t version : tried) held.try_emplace(version, HeldVersion{false, ""});
  return held;
}

bool ModelManager::AcceptPolicy(const std::string& model, const std::string& problem) {
  table_.AddModel(model);
  std::lock_guard<std::mutex> lock(mu_);
  std::string& logged = policy_errors_.try_emplace(model).first->second;
  if (!problem.empty()) {
    if (logged != problem) LogWarning("%s; model %s keeps its versions", problem, model);
    logged = problem;
    return false;
  }
  logged.clear();
  return true;
}

void ModelManager::Route(const RepositoryModel& model, const VersionPlan& plan) {
  table_.Route(model.name, plan.default_version, plan.retire);
  promotions_.Apply(model.name, model.policy, plan.shadow_version, plan.shadow_problem);
}

void ModelManager::Rescan(Caller caller) {
  if (caller == Caller::kOperator) {
    ReloadAndWait();
    return;
  }
  Reconcile();
  ReleaseUnused();
}

absl::Status ModelManager::Promote(const std::string& model) {
  return promotions_.Promote(model, "admin", "an operator promoted it", Caller::kOperator);
}

absl::Status ModelManager::Rollback(const std::string& model) {
  return promotions_.RollBack(model, "admin", "an operator rolled it back", {}, Caller::kOperator);
}

absl::StatusOr<ShadowReport> ModelManager::Shadow(const std::string& model) const {
  return promotions_.Report(model);
}

}  // namespace matid
