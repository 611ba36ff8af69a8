// ModelManager: the shadow tap, promotions, rollbacks and rollback windows
// (see model_manager.h); the rules themselves are in promotion_rules.h.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "server/repository/model_manager.h"

namespace matid {
namespace {

void LogEvent(const EventMessage& event, const std::string& detail) {
  LogInfo("model %s: %s version %d -> %d (%s: %s)%s", event.model, event.type, event.from_version,
          event.to_version, event.trigger, event.reason, detail);
}

std::map<std::string, double> OutcomeFigures(const OutcomeSnapshot& outcomes,
                                             const RollbackRule& rule) {
  return {
      {"images", static_cast<double>(outcomes.answered + outcomes.failed)},
      {"errors", static_cast<double>(outcomes.failed)},
      {"low_confidence", static_cast<double>(outcomes.AnsweredBelow(rule.low_confidence_below))}};
}

}  // namespace

void ModelManager::Rescan(Caller caller) {
  if (caller == Caller::kOperator) {
    ReloadAndWait();
    return;
  }
  Reconcile();
  ReleaseUnused();
}

absl::Status ModelManager::Promote(const std::string& model) {
  return PromoteShadow(model, "admin", "an operator promoted it", Caller::kOperator);
}

absl::Status ModelManager::Rollback(const std::string& model) {
  return RollBack(model, "admin", "an operator rolled it back", {}, Caller::kOperator);
}

absl::Status ModelManager::PromoteShadow(const std::string& model, const std::string& trigger,
                                         const std::string& reason, Caller caller) {
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  if (!scanned->policy_status.ok()) {
    return absl::FailedPreconditionError(scanned->policy_status.message());
  }
  const VersionPolicy& policy = scanned->policy;
  const int64_t shadow = policy.shadow_version;
  if (shadow == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", model, "' has no shadow version to promote (set one with matid-admin shadow)"));
  }
  std::shared_ptr<const ShadowTap> tap;
  int64_t primary = 0;
  std::string problem;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry& entry = models_[model];
    if (entry.tap != nullptr && entry.shadow_version == shadow) tap = entry.tap;
    primary = entry.default_version;
    problem = entry.shadow_problem;
  }
  if (tap == nullptr || primary == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model, "': shadow version ", shadow, " is not running",
                     problem.empty() ? "" : absl::StrCat(" (", problem, ")")));
  }
  const ShadowSnapshot compared = tap->comparison().Snapshot();
  VersionPolicy promoted;
  promoted.versions = {shadow};
  promoted.rollback = {primary, shadow, absl::Now() + policy.rollback_when.window,
                       policy.rollback_when};
  if (absl::Status written = WritePolicy(model, promoted); !written.ok()) return written;
  policy_lock.unlock();
  Rescan(caller);
  if (DefaultVersion(model) != shadow) {
    return absl::InternalError(absl::StrCat("model '", model, "': version ", shadow,
                                            " was promoted but does not serve; see the log"));
  }
  EventMessage event;
  event.type = "promotion";
  event.model = model;
  event.from_version = primary;
  event.to_version = shadow;
  event.trigger = trigger;
  event.reason = reason;
  event.figures = {{"compared", static_cast<double>(compared.compared)},
                   {"agreement", compared.agreement()},
                   {"shadow_p99_ms", absl::ToDoubleMilliseconds(compared.latency_p99)},
                   {"window_seconds", absl::ToDoubleSeconds(policy.rollback_when.window)}};
  LogEvent(event, absl::StrCat("; version ", primary, " stays loaded for a rollback until ",
                               absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", promoted.rollback.until,
                                                absl::UTCTimeZone())));
  Report(std::move(event));
  return absl::OkStatus();
}

absl::Status ModelManager::RollBack(const std::string& model, const std::string& trigger,
                                    const std::string& reason,
                                    std::map<std::string, double> figures, Caller caller) {
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  const RollbackWindow window = scanned->policy.rollback;
  if (!scanned->policy_status.ok() || window.version == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model, "' has no open rollback window (a promotion opens one)"));
  }
  VersionPolicy back;
  back.versions = {window.version};
  if (absl::Status written = WritePolicy(model, back); !written.ok()) return written;
  policy_lock.unlock();
  Rescan(caller);
  if (DefaultVersion(model) != window.version) {
    return absl::InternalError(absl::StrCat("model '", model, "': rolled back to version ",
                                            window.version, " but it does not serve; see the log"));
  }
  EventMessage event;
  event.type = "rollback";
  event.model = model;
  event.from_version = window.promoted_version;
  event.to_version = window.version;
  event.trigger = trigger;
  event.reason = reason;
  event.figures = std::move(figures);
  LogEvent(event, "");
  Report(std::move(event));
  return absl::OkStatus();
}

void ModelManager::CloseWindow(const std::string& model, const RollbackWindow& window) {
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok() || !scanned->policy_status.ok()) return;
  VersionPolicy policy = scanned->policy;
  if (policy.rollback.version != window.version || policy.rollback.until != window.until) return;
  policy.rollback = RollbackWindow();
  if (!WritePolicy(model, policy).ok()) return;
  policy_lock.unlock();
  OutcomeSnapshot outcomes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry& entry = models_[model];
    const auto promoted = entry.versions.find(window.promoted_version);
    if (promoted != entry.versions.end() && promoted->second.model != nullptr) {
      outcomes = promoted->second.model->outcomes().Since(entry.rollback_baseline);
    }
  }
  Rescan(Caller::kManagerThread);
  EventMessage event;
  event.type = "rollback_window_closed";
  event.model = model;
  event.from_version = window.version;
  event.to_version = window.promoted_version;
  event.trigger = "policy";
  event.reason = absl::StrFormat("no rollback within %s", absl::FormatDuration(window.rule.window));
  event.figures = OutcomeFigures(outcomes, window.rule);
  LogEvent(event, absl::StrCat("; version ", window.version, " unloaded"));
  Report(std::move(event));
}

bool ModelManager::WatchingLocked() const {
  for (const auto& [name, entry] : models_) {
    if (entry.rollback.version != 0 || (entry.promote_when.has_value() && entry.tap != nullptr)) {
      return true;
    }
  }
  return false;
}

void ModelManager::CheckRules() {
  struct Watch {
    std::string model;
    RollbackWindow window;
    std::shared_ptr<const ServingModel> promoted;  // while it is the default
    OutcomeSnapshot baseline;
    std::optional<PromotionRule> promote_when;
    std::shared_ptr<const ShadowTap> tap;
  };
  std::vector<Watch> watches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, entry] : models_) {
      Watch watch{name,     entry.rollback, nullptr, entry.rollback_baseline, entry.promote_when,
                  entry.tap};
      const auto promoted = entry.versions.find(entry.rollback.promoted_version);
      if (entry.rollback.version != 0 && entry.default_version == entry.rollback.promoted_version &&
          promoted != entry.versions.end()) {
        watch.promoted = promoted->second.model;
      }
      watches.push_back(std::move(watch));
    }
  }
  for (const Watch& watch : watches) {
    absl::Status acted = absl::OkStatus();
    if (watch.window.version != 0 && absl::Now() >= watch.window.until) {
      CloseWindow(watch.model, watch.window);
    } else if (watch.promoted != nullptr) {
      const OutcomeSnapshot outcomes = watch.promoted->outcomes().Since(watch.baseline);
      if (std::optional<std::string> why = RollbackDue(watch.window.rule, outcomes)) {
        acted = RollBack(watch.model, "policy", *why, OutcomeFigures(outcomes, watch.window.rule),
                         Caller::kManagerThread);
      }
    }
    if (watch.promote_when.has_value() && watch.tap != nullptr && watch.window.version == 0) {
      if (std::optional<std::string> why =
              PromotionDue(*watch.promote_when, watch.tap->comparison().Snapshot())) {
        acted = PromoteShadow(watch.model, "policy", *why, Caller::kManagerThread);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = models_[watch.model];
    const std::string problem = acted.ok() ? "" : std::string(acted.message());
    if (!problem.empty() && problem != entry.rule_problem) {
      LogWarning("model %s: %s", watch.model, problem);
    }
    entry.rule_problem = problem;
  }
}

void ModelManager::Report(EventMessage event) {
  if (metrics_ != nullptr) metrics_->RecordModelEvent(event.model, event.type, event.trigger);
  std::function<void(EventMessage)> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = event_listener_;
  }
  if (listener) listener(std::move(event));
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

}  // namespace matid
